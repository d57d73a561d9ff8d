"""Benchmark: a 4-node cluster on loopback (devnet BN, 4 `covalidator run` processes, 4 devnet VCs)
for each validator count asked; prints one table row per count.

Figures: duty success rate (all kinds, and attestations alone) as the devnet BN's judge counts them;
consensus p50/p99 (the nodes' `consensus_duration_ms`, from their traces); end-to-end p99 (duty start
to the first valid combined signature at the BN, `/devnet/report`); CPU seconds per node per epoch
(user + system from /proc/<pid>/stat between genesis and the run's end, start-up excluded); peak RSS
per node (VmHWM). Not a test: it prints figures.

    python bench/cluster.py                     # 100 and 1000 validators, 1 epoch, 4 s slots
    python bench/cluster.py --validators 100,1000,5000 --epochs 2 --json
    python bench/cluster.py --signer            # signer mode: keyless VCs, the nodes' signer APIs
    python bench/cluster.py --preset mainnet --slot-seconds 12 --validators 1000 --epochs 2   # mainnet timing

In signer mode each VC times every Remote Signing request (send to group signature received): the
table adds those latencies per request type, p50 / p99 over the 4 VCs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from covalidator.runtime.devnet.local_cluster import ClusterSpec, LocalCluster
from covalidator.runtime.devnet.processes import Children
from covalidator.runtime.devnet.summary import read_node_trace, summarize

TICKS = os.sysconf("SC_CLK_TCK")
READY_MARGIN_S = 2.0


def cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of a live process (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def sleep_until(at: float) -> None:
    time.sleep(max(0.0, at - time.time()))


def run_one(spec: ClusterSpec, folder: Path) -> dict[str, Any]:
    for attempt in range(3):
        with Children(folder) as children:
            cluster = LocalCluster(spec, folder, children)
            if attempt:
                cluster.clean()
            began = time.monotonic()
            lead = cluster.start()
            ready_s = time.monotonic() - began
            if lead < READY_MARGIN_S and attempt < 2:
                print(
                    f"  not ready before genesis (lead {lead:.1f} s): again, later genesis", file=sys.stderr
                )
                spec = replace(spec, genesis_delay_s=round(spec.genesis_delay_s - lead + 10))
                continue
            pids = [node.pid for node in cluster.nodes]
            sleep_until(cluster.genesis_time)
            cpu0 = [cpu_seconds(p) for p in pids]
            t0 = time.time()
            report: dict[str, Any] | None = None
            give_up = cluster.end_time() + 60
            while True:
                cluster.check()
                report = cluster.report() or report
                done = report is not None and report.get("finished") and time.time() >= cluster.end_time()
                if (done and cluster.vcs_done()) or time.time() > give_up:
                    break
                time.sleep(1.0)
            cpu1 = [cpu_seconds(p) for p in pids]
            rss = [peak_rss_mb(p) for p in pids]
            epochs_run = (time.time() - t0) / (spec.seconds_per_slot * spec.slots_per_epoch)
            children.stop_all()
        assert report is not None, "the devnet BN never answered its report"
        summary = summarize(report, [read_node_trace(d) for d in cluster.trace_dirs()])
        attester = summary["by_kind"].get("attester", {"duties": 0, "succeeded": 0})
        cpu = [(b - a) / epochs_run for a, b in zip(cpu0, cpu1, strict=True)]
        return {
            "validators": spec.validators,
            "epochs": spec.epochs,
            "seconds_per_slot": spec.seconds_per_slot,
            "preset": spec.preset,
            "ready_s": round(ready_s, 1),
            "duties": summary["duties"],
            "success": summary["succeeded"] / max(1, summary["duties"]),
            "attestation_success": attester["succeeded"] / max(1, attester["duties"]),
            "failed_by_reason": summary["failed_by_reason"],
            "consensus_ms_p50": summary["consensus_ms_p50"],
            "consensus_ms_p99": summary["consensus_ms_p99"],
            "e2e_ms_p50": summary["e2e_ms_p50"],
            "e2e_ms_p99": summary["e2e_ms_p99"],
            "attestation_e2e_ms_p99": report["latency_ms"].get("attester", {}).get("p99"),
            "e2e_ms_p99_by_kind": {
                kind: figures.get("p99")
                for kind, figures in sorted(report["latency_ms"].items())
                if kind != "all"
            },
            "cpu_s_per_node_epoch": round(max(cpu), 2),
            "cpu_s_per_node_epoch_mean": round(sum(cpu) / len(cpu), 2),
            "peak_rss_mb": round(max(rss)),
            "slashable_pairs": summary["slashable_pairs"],
            "invalid_signatures": summary["invalid_signatures"],
            "sign_ms": sign_latencies(folder, spec.nodes) if spec.signer else {},
        }
    raise RuntimeError("the cluster was never ready before genesis")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def sign_latencies(folder: Path, nodes: int) -> dict[str, dict[str, float]]:
    """Signer mode: request type -> count, p50 and p99 ms of the VCs' signing requests."""
    merged: dict[str, list[float]] = {}
    for i in range(nodes):
        stats = folder / f"vc{i}.stats.json"
        if stats.is_file():
            for kind, values in json.loads(stats.read_text()).get("sign_ms", {}).items():
                merged.setdefault(kind, []).extend(values)
    return {
        kind: {"n": len(v), "p50": percentile(v, 0.5), "p99": percentile(v, 0.99)}
        for kind, v in sorted(merged.items())
    }


def sign_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| validators | request type | requests | p50 ms | p99 ms |", "|---|---|---|---|---|"]
    for r in rows:
        for kind, f in r["sign_ms"].items():
            lines.append(f"| {r['validators']:,} | {kind} | {f['n']:,} | {f['p50']} | {f['p99']} |")
    return "\n".join(lines)


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| validators | duties | success | attestations | consensus p50 / p99 ms | e2e p99 ms (attestations) "
        "| CPU s / node / epoch (max, mean) | peak RSS MB | slashable / invalid |"
    )
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        lines.append(
            f"| {r['validators']:,} | {r['duties']:,} | {100 * r['success']:.2f} % "
            f"| {100 * r['attestation_success']:.2f} % | {r['consensus_ms_p50']} / {r['consensus_ms_p99']} "
            f"| {r['e2e_ms_p99']} ({r['attestation_e2e_ms_p99']}) | {r['cpu_s_per_node_epoch']}, {r['cpu_s_per_node_epoch_mean']} "
            f"| {r['peak_rss_mb']} | {r['slashable_pairs']} / {r['invalid_signatures']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--validators", default="100,1000", help="comma-separated counts")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seconds-per-slot", "--slot-seconds", type=int, default=4)
    parser.add_argument(
        "--preset",
        choices=("minimal", "mainnet"),
        default="minimal",
        help="the devnet chain's preset: mainnet has 32-slot epochs (with --slot-seconds 12: mainnet timing)",
    )
    parser.add_argument("--keep", type=Path, default=None, help="run in this folder and keep it")
    parser.add_argument("--json", action="store_true", help="also print each row as a JSON line")
    parser.add_argument("--signer", action="store_true", help="signer mode (keyless VCs)")
    args = parser.parse_args()
    os.environ.setdefault("COVALIDATOR_MONITORING", "127.0.0.1:0")  # no fixed ports: the machine is shared
    rows = []
    for count in (int(v) for v in args.validators.split(",")):
        folder = (args.keep / f"v{count}") if args.keep else Path(tempfile.mkdtemp(prefix=f"bench-v{count}-"))
        folder.mkdir(parents=True, exist_ok=True)
        spec = ClusterSpec(
            nodes=4,
            validators=count,
            epochs=args.epochs,
            seconds_per_slot=args.seconds_per_slot,
            genesis_delay_s=20 + count / 20,
            signer=args.signer,
            preset=args.preset,
        )
        print(
            f"{count} validators: {args.epochs} epoch(s) of {args.seconds_per_slot} s slots ({args.preset})",
            file=sys.stderr,
        )
        row = run_one(spec, folder)
        rows.append(row)
        if args.json:
            print(json.dumps(row), flush=True)
        if row["failed_by_reason"]:
            print(f"  failed: {row['failed_by_reason']}", file=sys.stderr)
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    print(table(rows))
    if args.signer:
        print(sign_table(rows))


if __name__ == "__main__":
    main()
