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
import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

from covalidator.runtime.devnet.local_cluster import NODE_CODE_ENV, ClusterSpec, LocalCluster
from covalidator.runtime.devnet.processes import Children, get_json
from covalidator.runtime.devnet.summary import read_node_trace, summarize

TICKS = os.sysconf("SC_CLK_TCK")
READY_MARGIN_S = 2.0


def cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of a live process (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


THREAD_ROLES = {"cov-step": "step", "cov-store": "store"}  # the names the node gives them in the OS


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of a live process by thread role: the step thread (the model and its BLS), the
    store's I/O thread, the event loop (the main thread: HTTP, peers, traces, metrics) and the rest."""
    roles: dict[str, float] = {"step": 0.0, "store": 0.0, "loop": 0.0, "other": 0.0}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, IndexError, ValueError):
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            seconds = (int(fields[11]) + int(fields[12])) / TICKS
            role = "loop" if task.name == str(pid) else THREAD_ROLES.get(name, "other")
            roles[role] += seconds
    return roles


def sample_cpu(pids: list[int], last: dict[int, float]) -> None:
    """Note each process's CPU seconds while it lives (a VC ends by itself: its last sample counts)."""
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            last[pid] = cpu_seconds(pid)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def store_commit_p99_ms(metrics_url: str | None) -> float | None:
    """The p99 of a node's durable store commits, as Prometheus' histogram_quantile bounds it: the
    upper edge of the bucket holding the 99th percentile (covalidator_store_commit_seconds)."""
    if metrics_url is None:
        return None
    try:
        with urllib.request.urlopen(f"{metrics_url}/metrics", timeout=3) as response:
            text = response.read().decode()
    except OSError:
        return None
    buckets = []
    for line in text.splitlines():
        match = re.match(r'covalidator_store_commit_seconds_bucket\{.*le="([^"]+)".*\} ([0-9.e+]+)', line)
        if match:
            buckets.append((float(match.group(1)), float(match.group(2))))
    if not buckets or buckets[-1][1] == 0:
        return None
    total = max(count for _, count in buckets)
    edge = next(le for le, count in sorted(buckets) if count >= 0.99 * total)
    return 1000 * edge


def peer_bytes_sent(api_port: int) -> int:
    """Bytes a node sent to its peers (its transport's counters, from its status)."""
    status = get_json(f"http://127.0.0.1:{api_port}/covalidator/v1/status")
    peers = (((status or {}).get("data") or {}).get("peers") or {}).get("peers") or {}
    return sum(int(p.get("bytes_sent", 0)) for p in peers.values())


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
            others = {"bn": [cluster.bn.pid] if cluster.bn else [], "vc": [vc.pid for vc in cluster.vcs]}
            sleep_until(cluster.genesis_time)
            cpu0 = [cpu_seconds(p) for p in pids]
            threads0 = [thread_cpu(p) for p in pids]
            other0 = {k: [cpu_seconds(p) for p in v] for k, v in others.items()}
            last: dict[int, float] = {}
            sent0 = [peer_bytes_sent(port) for port in cluster.api_ports]
            t0 = time.time()
            report: dict[str, Any] | None = None
            give_up = cluster.end_time() + 60
            while True:
                cluster.check()
                sample_cpu([*others["bn"], *others["vc"]], last)
                report = cluster.report() or report
                done = report is not None and report.get("finished") and time.time() >= cluster.end_time()
                if (done and cluster.vcs_done()) or time.time() > give_up:
                    break
                time.sleep(1.0)
            cpu1 = [cpu_seconds(p) for p in pids]
            threads1 = [thread_cpu(p) for p in pids]
            sample_cpu([*others["bn"], *others["vc"]], last)
            other1 = {k: [last[p] for p in v] for k, v in others.items()}
            sent1 = [peer_bytes_sent(port) for port in cluster.api_ports]
            commits = [store_commit_p99_ms(url) for url in cluster.monitoring]
            rss = [peak_rss_mb(p) for p in pids]
            slots_run = (time.time() - t0) / spec.seconds_per_slot
            epochs_run = slots_run / spec.slots_per_epoch
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
            # per 1,000 validator-epochs: a node's CPU per epoch over thousands of validators
            "cpu_s_per_node_kvalidator_epoch": round(sum(cpu) / len(cpu) / (spec.validators / 1000), 2),
            # the mean node's CPU per epoch by thread (a thread that ended in between is not counted)
            "cpu_s_per_node_epoch_by_thread": {
                role: round(
                    sum(b[role] - a[role] for a, b in zip(threads0, threads1, strict=True))
                    / len(pids)
                    / epochs_run,
                    2,
                )
                for role in threads0[0]
            },
            "bn_cpu_s_per_epoch": round(
                sum(b - a for a, b in zip(other0["bn"], other1["bn"], strict=True)) / epochs_run, 2
            ),
            "vc_cpu_s_per_epoch_mean": round(
                sum(b - a for a, b in zip(other0["vc"], other1["vc"], strict=True))
                / max(1, len(others["vc"]))
                / epochs_run,
                2,
            ),
            "peer_kb_sent_per_node_slot": round(
                sum(b - a for a, b in zip(sent0, sent1, strict=True)) / len(sent0) / slots_run / 1024, 1
            ),
            "store_commit_p99_ms": max((c for c in commits if c is not None), default=None),
            "success_by_kind": {
                kind: f"{figures['succeeded']}/{figures['duties']}"
                for kind, figures in sorted(summary["by_kind"].items())
            },
            "e2e_ms_p50_by_kind": {
                kind: figures.get("p50")
                for kind, figures in sorted(report["latency_ms"].items())
                if kind != "all"
            },
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


def scale_table(rows: list[dict[str, Any]]) -> str:
    """The issue-17 figures per row: success and end-to-end latency per kind, CPU per 1,000
    validator-epochs, the BN's and VCs' CPU apart, peer traffic and store commits."""
    lines = [
        "| validators | preset, slot s | success by kind | e2e p50 / p99 ms by kind | CPU s / node / 1,000 validator-epochs "
        "| BN CPU s / epoch | VC CPU s / epoch | peer KB / node / slot | store commit p99 ms |",
        "|" + "---|" * 9,
    ]
    for r in rows:
        kinds = ", ".join(f"{k} {v}" for k, v in r["success_by_kind"].items())
        latency = ", ".join(
            f"{k} {r['e2e_ms_p50_by_kind'].get(k)} / {v}" for k, v in r["e2e_ms_p99_by_kind"].items()
        )
        lines.append(
            f"| {r['validators']:,} | {r['preset']}, {r['seconds_per_slot']} | {kinds} | {latency} "
            f"| {r['cpu_s_per_node_kvalidator_epoch']} | {r['bn_cpu_s_per_epoch']} | {r['vc_cpu_s_per_epoch_mean']} "
            f"| {r['peer_kb_sent_per_node_slot']} | {r['store_commit_p99_ms']} |"
        )
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


def node_code_path(checkout: Path) -> Path:
    """A folder to put first on the nodes' PYTHONPATH: a `covalidator` package whose model/, runtime/,
    sim/ and proofs/ are the checkout's (links), as the project's own package maps them."""
    root = Path(tempfile.mkdtemp(prefix="node-code-"))
    package = root / "covalidator"
    package.mkdir()
    for name in ("__init__.py", "__main__.py"):
        shutil.copy(checkout / "covalidator" / name, package / name)
    for name in ("model", "runtime", "sim", "proofs"):
        (package / name).symlink_to((checkout / name).resolve())
    return root


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
    parser.add_argument(
        "--node-code",
        type=Path,
        default=None,
        help="a checkout (git worktree) whose code the nodes run (create-cluster and run), the devnet "
        "BN, VCs and this bench staying this one's: a before/after of the node's code under one devnet",
    )
    args = parser.parse_args()
    if args.node_code is not None:
        os.environ[NODE_CODE_ENV] = str(node_code_path(args.node_code))
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
    print(scale_table(rows))
    if args.signer:
        print(sign_table(rows))


if __name__ == "__main__":
    main()
