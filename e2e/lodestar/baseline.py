"""Baseline devnet WITHOUT covalidator: one Lodestar dev beacon node, four Lodestar validator
clients (two interop keys each), each VC talking to the BN through a recording proxy.

    .venv/bin/python e2e/lodestar/baseline.py [--out DIR] [--altair-epoch 0] [--finalized 4]
                                              [--max-seconds 480]

Everything runs on 127.0.0.1 with free ports; every process started is stopped by its pid in a
`finally` (VCs: SIGINT, SIGKILL after a grace period; the BN: SIGTERM, then SIGINT, SIGINT, then
SIGKILL, logging which signal ended it). The run is bounded by --max-seconds and stops earlier once
the BN's finalized epoch reaches --finalized.

Writes into DIR: bn/ (BN log, data), vc<i>/ (VC logs, data, keystore copies), proxy/vc<i>.jsonl
(the recordings), epochs.jsonl (per-epoch snapshots taken from the BN during the run: committees,
attester/proposer duties, participation flags), judge.json (what the BN says at the end) and
summary.json (figures: memory, CPU, time to finality, participation).

Throw-away tooling for learning the baseline; covalidator's `make e2e` will be built on what it finds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from judge import http  # the one JSON-over-HTTP helper of the e2e scripts

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PY = sys.executable
SLOTS_PER_EPOCH = 8  # minimal preset
SECONDS_PER_SLOT = 6


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def proc_status(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) // 1024  # MiB
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        out["cpu_s"] = (int(fields[11]) + int(fields[12])) // os.sysconf("SC_CLK_TCK")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        pass
    return out


class Procs:
    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.mem_peak: dict[str, int] = {}
        self.last_status: dict[str, dict[str, int]] = {}
        self.stop_notes: dict[str, str] = {}

    def start(self, name: str, argv: list[str], cwd: Path, logfile: Path, env: dict[str, str]) -> None:
        log(f"start {name}: {' '.join(argv)}")
        with logfile.open("wb") as out:
            self.procs[name] = subprocess.Popen(
                argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )

    def sample(self) -> None:
        for name, p in self.procs.items():
            if p.poll() is None:
                st = proc_status(p.pid)
                if st:
                    self.last_status[name] = st
                    self.mem_peak[name] = max(
                        self.mem_peak.get(name, 0), st.get("VmHWM", 0), st.get("VmRSS", 0)
                    )

    def alive(self, name: str) -> bool:
        return name in self.procs and self.procs[name].poll() is None

    def stop(self, name: str, signals: list[tuple[int, float]]) -> None:
        p = self.procs.get(name)
        if p is None or p.poll() is not None:
            return
        self.sample()
        steps = []
        for sig, grace in signals:
            try:
                os.kill(p.pid, sig)  # by pid only
            except ProcessLookupError:
                break
            t0 = time.time()
            try:
                p.wait(timeout=grace)
                steps.append(
                    f"{signal.Signals(sig).name}: exited rc={p.returncode} after {time.time() - t0:.1f}s"
                )
                break
            except subprocess.TimeoutExpired:
                steps.append(f"{signal.Signals(sig).name}: still running after {grace:.0f}s")
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
            steps.append("SIGKILL")
        self.stop_notes[name] = "; ".join(steps)
        log(f"stopped {name}: {self.stop_notes[name]}")


def snapshot_epoch(bn: str, epoch: int, indices: list[str]) -> dict[str, Any]:
    """What the BN says about an epoch while it is current (some endpoints serve only recent epochs)."""
    snap: dict[str, Any] = {"epoch": epoch, "t": round(time.time(), 3)}
    snap["committees"] = http("GET", f"{bn}/eth/v1/beacon/states/head/committees?epoch={epoch}")
    snap["attester_duties"] = http("POST", f"{bn}/eth/v1/validator/duties/attester/{epoch}", indices)
    snap["proposer_duties"] = http("GET", f"{bn}/eth/v1/validator/duties/proposer/{epoch}")
    snap["sync_duties"] = http("POST", f"{bn}/eth/v1/validator/duties/sync/{epoch}", indices)
    if epoch >= 1:
        snap["liveness_prev"] = http(
            "GET",
            f"{bn}/eth/v1/validator/liveness?epoch={epoch - 1}&" + "&".join(f"indices={i}" for i in indices),
        )
    status, state = http("GET", f"{bn}/eth/v2/debug/beacon/states/head", timeout=20)
    if status == 200:
        d = state["data"]
        snap["state"] = {
            "version": state.get("version"),
            "slot": d["slot"],
            "previous_epoch_participation": d.get("previous_epoch_participation"),
            "current_epoch_participation": d.get("current_epoch_participation"),
            "previous_epoch_attestations_count": len(d.get("previous_epoch_attestations", []) or []),
            "current_epoch_attestations_count": len(d.get("current_epoch_attestations", []) or []),
            "inactivity_scores": d.get("inactivity_scores"),
            "balances": d.get("balances"),
            "justification_bits": d.get("justification_bits"),
            "finalized_checkpoint": d.get("finalized_checkpoint"),
        }
    else:
        snap["state"] = {"status": status, "body": state}
    return snap


def judge(bn: str, head_slot: int, indices: list[str]) -> dict[str, Any]:
    j: dict[str, Any] = {"head_slot": head_slot}
    j["finality_checkpoints"] = http("GET", f"{bn}/eth/v1/beacon/states/head/finality_checkpoints")[1]
    j["pool_attester_slashings"] = http("GET", f"{bn}/eth/v1/beacon/pool/attester_slashings")[1]
    j["pool_proposer_slashings"] = http("GET", f"{bn}/eth/v1/beacon/pool/proposer_slashings")[1]
    j["pool_voluntary_exits"] = http("GET", f"{bn}/eth/v1/beacon/pool/voluntary_exits")[1]
    j["sync_committees_head"] = http("GET", f"{bn}/eth/v1/beacon/states/head/sync_committees")
    j["validators_head"] = http("GET", f"{bn}/eth/v1/beacon/states/head/validators")[1]
    j["committees_epoch0_via_slot_state"] = http("GET", f"{bn}/eth/v1/beacon/states/0/committees?epoch=0")
    j["attester_duties_epoch0_late"] = http("POST", f"{bn}/eth/v1/validator/duties/attester/0", indices)
    j["proposer_duties_epoch0_late"] = http("GET", f"{bn}/eth/v1/validator/duties/proposer/0")
    blocks = []
    for slot in range(1, head_slot + 1):
        status, blk = http("GET", f"{bn}/eth/v2/beacon/blocks/{slot}")
        if status != 200:
            blocks.append({"slot": slot, "status": status})
            continue
        msg = blk["data"]["message"]
        body = msg["body"]
        sa = body.get("sync_aggregate")
        blocks.append(
            {
                "slot": slot,
                "version": blk.get("version"),
                "proposer_index": msg["proposer_index"],
                "attestations": [
                    {
                        "slot": a["data"]["slot"],
                        "index": a["data"]["index"],
                        "bits": a["aggregation_bits"],
                        "source": a["data"]["source"]["epoch"],
                        "target": a["data"]["target"]["epoch"],
                    }
                    for a in body["attestations"]
                ],
                "sync_bits": sa["sync_committee_bits"] if sa else None,
                "attester_slashings": len(body["attester_slashings"]),
                "proposer_slashings": len(body["proposer_slashings"]),
                "graffiti": body["graffiti"],
            }
        )
    j["blocks"] = blocks
    status, state = http("GET", f"{bn}/eth/v2/debug/beacon/states/head", timeout=30)
    if status == 200:
        d = state["data"]
        j["head_state"] = {
            k: d.get(k)
            for k in (
                "slot",
                "previous_epoch_participation",
                "current_epoch_participation",
                "inactivity_scores",
                "justification_bits",
                "finalized_checkpoint",
                "current_justified_checkpoint",
                "slashings",
            )
        }
        j["head_state"]["version"] = state.get("version")
    else:
        j["head_state"] = {"status": status, "body": state}
    return j


def figures(j: dict[str, Any], epochs: list[dict[str, Any]], indices: list[str]) -> dict[str, Any]:
    """Judge-style figures from the BN's own answers: attester duties (taken while each epoch was
    current), proposer duties, blocks (attestations, sync aggregates, slashings), pools, finality."""
    head_slot = j["head_slot"]
    last_full_epoch = head_slot // SLOTS_PER_EPOCH - 1
    committee: dict[tuple[int, int], list[int]] = {}  # (slot, committee index) -> validator by position
    proposer: dict[int, int] = {}
    for snap in epochs:
        status, duties = snap["attester_duties"]
        if status == 200:
            for d in duties["data"]:
                key = (int(d["slot"]), int(d["committee_index"]))
                members = committee.setdefault(key, [-1] * int(d["committee_length"]))
                members[int(d["validator_committee_index"])] = int(d["validator_index"])
        status, duties = snap["proposer_duties"]
        if status == 200:
            for d in duties["data"]:
                proposer[int(d["slot"])] = int(d["validator_index"])
    included: set[tuple[int, int]] = set()  # (validator, attestation slot)
    unknown_committees = 0
    sync_members: list[int] = []
    status, sc = j.get("sync_committees_head", (0, None))
    if status == 200:
        sync_members = [int(v) for v in sc["data"]["validators"]]
    sync_included = 0
    sync_expected = 0
    blocks_by_slot = {b["slot"]: b for b in j["blocks"]}
    for b in j["blocks"]:
        if "proposer_index" not in b:
            continue
        for a in b["attestations"]:
            members = committee.get((int(a["slot"]), int(a["index"])))
            if members is None:
                unknown_committees += 1
                continue
            bits = int.from_bytes(bytes.fromhex(a["bits"][2:]), "little")
            for pos, v in enumerate(members):
                if bits >> pos & 1:
                    included.add((v, int(a["slot"])))
        if (
            b["sync_bits"] is not None and sync_members and b["slot"] >= 2
        ):  # block 1 signs over slot 0: no messages
            bits = int.from_bytes(bytes.fromhex(b["sync_bits"][2:]), "little")
            sync_expected += len(sync_members)
            sync_included += bin(bits).count("1")
    expected_att = [
        (v, s)
        for (s, _), members in committee.items()
        for v in members
        if SLOTS_PER_EPOCH <= s < (last_full_epoch + 1) * SLOTS_PER_EPOCH
    ]
    proposals = [s for s in proposer if SLOTS_PER_EPOCH <= s <= head_slot]
    proposed = [
        s
        for s in proposals
        if "proposer_index" in blocks_by_slot.get(s, {})
        and int(blocks_by_slot[s]["proposer_index"]) == proposer[s]
    ]
    pool_slashings = len(j["pool_attester_slashings"]["data"]) + len(j["pool_proposer_slashings"]["data"])
    block_slashings = sum(
        b.get("attester_slashings", 0) + b.get("proposer_slashings", 0) for b in j["blocks"]
    )
    return {
        "finalized_epoch": int(j["finality_checkpoints"]["data"]["finalized"]["epoch"]),
        "head_slot": head_slot,
        "validators": len(indices),
        "attestation_epochs": [1, last_full_epoch],
        "attestations_expected": len(expected_att),
        "attestations_included": sum(1 for x in expected_att if x in included),
        "attestations_included_by_validator": {
            v: sum(1 for x in expected_att if x[0] == int(v) and x in included) for v in indices
        },
        "attestations_unknown_committee": unknown_committees,
        "blocks_expected": len(proposals),
        "blocks_proposed": len(proposed),
        "missed_slots": [b["slot"] for b in j["blocks"] if "proposer_index" not in b],
        "sync_committee_bits_expected": sync_expected,
        "sync_committee_bits_included": sync_included,
        "slashings": pool_slashings + block_slashings,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path)
    ap.add_argument("--lodestar", type=Path, default=ROOT / ".cache/lodestar/bin/lodestar")
    ap.add_argument("--altair-epoch", type=int, default=0)
    ap.add_argument("--finalized", type=int, default=4, help="stop once the finalized epoch reaches this")
    ap.add_argument("--max-seconds", type=float, default=480)
    ap.add_argument("--genesis-delay", type=float, default=25)
    ap.add_argument(
        "--check-mismatch", action="store_true", help="also start a VC without --params and see it exit"
    )
    args = ap.parse_args()

    t_start = time.time()
    out = args.out or Path(f"/tmp/covalidator-lodestar-{time.strftime('%Y%m%d-%H%M%S')}")
    if out.exists():
        raise SystemExit(f"{out} exists: use a fresh --out")
    out.mkdir(parents=True)
    if not args.lodestar.exists():
        subprocess.run([str(HERE / "install.sh")], check=True)
    lodestar = str(args.lodestar)
    env = {**os.environ, "LODESTAR_PRESET": "minimal"}
    rest_port, p2p_port, *proxy_ports = free_ports(6)
    bn = f"http://127.0.0.1:{rest_port}"
    params = [
        "--params.SECONDS_PER_SLOT",
        str(SECONDS_PER_SLOT),
        "--params.ALTAIR_FORK_EPOCH",
        str(args.altair_epoch),
    ]

    subprocess.run(
        [PY, str(HERE / "make_keystores.py"), str(out / "keys")], check=True, stdout=subprocess.DEVNULL
    )
    indices = [str(i) for i in range(8)]

    procs = Procs()
    summary: dict[str, Any] = {
        "out": str(out),
        "ports": {"rest": rest_port, "p2p": p2p_port, "proxies": proxy_ports},
    }
    epochs_file = (out / "epochs.jsonl").open("w")
    try:
        genesis_time = int(time.time() + args.genesis_delay)
        summary["genesis_time"] = genesis_time
        (out / "bn").mkdir()
        procs.start(
            "bn",
            [
                lodestar,
                "dev",
                "--genesisValidators",
                "8",
                "--genesisTime",
                str(genesis_time),
                *params,
                "--rest.address",
                "127.0.0.1",
                "--rest.port",
                str(rest_port),
                "--listenAddress",
                "127.0.0.1",
                "--port",
                str(p2p_port),
                "--discv5",
                "false",
                "--rest.namespace",
                "*",  # debug namespace too: /eth/v2/debug/beacon/states (participation flags)
                "--dataDir",
                str(out / "bn/data"),
            ],
            out / "bn",
            out / "bn/bn.log",
            env,
        )
        deadline = time.time() + 90
        while True:
            if not procs.alive("bn"):
                raise SystemExit(f"BN exited early, see {out / 'bn/bn.log'}")
            try:
                if http("GET", f"{bn}/eth/v1/node/version", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise SystemExit("BN REST did not come up in 90 s")
            time.sleep(0.5)
        summary["bn_rest_up_s"] = round(time.time() - t_start, 1)
        summary["bn_version"] = http("GET", f"{bn}/eth/v1/node/version")[1]
        log(f"BN REST up after {summary['bn_rest_up_s']} s; genesis in {genesis_time - time.time():.0f} s")

        (out / "proxy").mkdir()
        procs.start(
            "proxy",
            [
                PY,
                str(HERE / "record_proxy.py"),
                "--upstream",
                bn,
                "--genesis-time",
                str(genesis_time),
                "--seconds-per-slot",
                str(SECONDS_PER_SLOT),
                *[
                    f"--listen=127.0.0.1:{port}={out / 'proxy' / f'vc{i}.jsonl'}"
                    for i, port in enumerate(proxy_ports)
                ],
            ],
            out / "proxy",
            out / "proxy/proxy.log",
            env,
        )
        for port in proxy_ports:
            for _ in range(50):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.2)

        if args.check_mismatch:
            mm = out / "vc-mismatch"
            shutil.copytree(out / "keys/vc0", mm / "keys")
            procs.start(
                "vc-mismatch",
                [
                    lodestar,
                    "validator",
                    "--network",
                    "dev",
                    "--dataDir",
                    str(mm / "data"),
                    "--beaconNodes",
                    bn,
                    "--importKeystores",
                    str(mm / "keys"),
                    "--importKeystoresPassword",
                    str(out / "keys/password.txt"),
                ],
                mm,
                mm / "vc.log",
                env,
            )

        for i, port in enumerate(proxy_ports):
            vc_dir = out / f"vc{i}"
            shutil.copytree(out / f"keys/vc{i}", vc_dir / "keys")  # --importKeystores leaves .lock files
            procs.start(
                f"vc{i}",
                [
                    lodestar,
                    "validator",
                    "--network",
                    "dev",
                    *params,
                    "--dataDir",
                    str(vc_dir / "data"),
                    "--beaconNodes",
                    f"http://127.0.0.1:{port}",
                    "--importKeystores",
                    str(vc_dir / "keys"),
                    "--importKeystoresPassword",
                    str(out / "keys/password.txt"),
                ],
                vc_dir,
                vc_dir / "vc.log",
                env,
            )

        if args.check_mismatch:
            try:
                procs.procs["vc-mismatch"].wait(timeout=60)
                summary["vc_mismatch"] = {
                    "rc": procs.procs["vc-mismatch"].returncode,
                    "log_tail": (out / "vc-mismatch/vc.log").read_text(errors="replace").splitlines()[-6:],
                }
            except subprocess.TimeoutExpired:
                summary["vc_mismatch"] = {"rc": None, "note": "still running after 60 s"}
                procs.stop("vc-mismatch", [(signal.SIGINT, 10)])

        last_epoch = -1
        head_slot = 0
        finalized = 0
        finality_at: dict[int, dict[str, float]] = {}
        while time.time() - t_start < args.max_seconds:
            procs.sample()
            for name in list(procs.procs):
                if name != "vc-mismatch" and not procs.alive(name):
                    raise SystemExit(
                        f"{name} exited (rc={procs.procs[name].returncode}); see its log in {out}"
                    )
            now = time.time()
            if now >= genesis_time:
                try:
                    head_slot = int(
                        http("GET", f"{bn}/eth/v1/beacon/headers/head")[1]["data"]["header"]["message"][
                            "slot"
                        ]
                    )
                    fc = http("GET", f"{bn}/eth/v1/beacon/states/head/finality_checkpoints")[1]["data"]
                    finalized = int(fc["finalized"]["epoch"])
                except (OSError, KeyError, TypeError) as exc:
                    log(f"poll failed: {exc!r}")
                    time.sleep(1)
                    continue
                if finalized and finalized not in finality_at:
                    finality_at[finalized] = {
                        "head_slot": head_slot,
                        "since_genesis_s": round(now - genesis_time, 1),
                    }
                    log(
                        f"finalized epoch {finalized} at head slot {head_slot} ({now - genesis_time:.0f} s after genesis)"
                    )
                clock_epoch = int((now - genesis_time) // SECONDS_PER_SLOT) // SLOTS_PER_EPOCH
                if (
                    clock_epoch > last_epoch
                    and (now - genesis_time) % (SECONDS_PER_SLOT * SLOTS_PER_EPOCH) > 1.5
                ):
                    last_epoch = clock_epoch
                    snap = snapshot_epoch(bn, clock_epoch, indices)
                    epochs_file.write(json.dumps(snap) + "\n")
                    epochs_file.flush()
                    log(
                        f"epoch {clock_epoch}: head slot {head_slot}, finalized {finalized}, "
                        f"mem {{{', '.join(f'{k}: {v}' for k, v in procs.mem_peak.items())}}} MiB"
                    )
                if finalized >= args.finalized:
                    break
            time.sleep(2)
        summary["stopped_after_s"] = round(time.time() - t_start, 1)
        summary["head_slot"] = head_slot
        summary["finalized_epoch"] = finalized
        summary["finality_at"] = finality_at
        log("judging from the BN's API ...")
        j = judge(bn, head_slot, indices)
        (out / "judge.json").write_text(json.dumps(j, indent=1))
        epochs_file.flush()
        epochs = [json.loads(line) for line in (out / "epochs.jsonl").read_text().splitlines()]
        summary["figures"] = figures(j, epochs, indices)
        log(f"figures: {json.dumps(summary['figures'])}")
    finally:
        epochs_file.close()
        procs.sample()
        summary["status_before_stop"] = dict(procs.last_status)
        for name in [n for n in procs.procs if n.startswith("vc")]:
            procs.stop(name, [(signal.SIGINT, 15)])
        procs.stop("bn", [(signal.SIGTERM, 8), (signal.SIGINT, 8), (signal.SIGINT, 20)])
        procs.stop("proxy", [(signal.SIGINT, 10)])
        summary["mem_peak_mib"] = procs.mem_peak
        summary["stop"] = procs.stop_notes
        summary["wall_s"] = round(time.time() - t_start, 1)
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
        log(f"summary: {out / 'summary.json'}")
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
