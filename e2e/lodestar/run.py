"""`make e2e`: a Lodestar devnet run through a 4-node covalidator cluster, judged from the BN's API.

    .venv/bin/python e2e/lodestar/run.py [--mode signer|middleware|direct] [--out DIR] [--finalized 3]
                                         [--max-seconds 600] [--faults]

Installs Lodestar 1.5.1 (install.sh, cached), creates a 3-of-4 cluster from interop keys 0..7 (all
8 genesis validators are distributed), starts the topology of `devnet.py` in the chosen mode (signer:
keyless VCs with covalidator as their external signer, BN as published; middleware: VCs with share
keystores, patched BN; direct: VCs with the full keys straight to the BN, no covalidator), runs until
the BN finalizes `--finalized` or the bound passes, judges (`judge.py`), stops every process it
started, and prints the figures as one JSON object on the last line. Exit 0 when the judgement passes, 1
when it does not or the run broke; without node/npm it skips (exit 0) unless CI=true (exit 1).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from devnet import MODES, SECONDS_PER_SLOT, SLOTS_PER_EPOCH, Devnet
from judge import Duties, dv_indices, http, judge
from stalls import StallWatch

from covalidator.runtime.devnet.processes import ChildFailed, Children

HERE = Path(__file__).resolve().parent
SNAPSHOT_AT_S = 1.5  # into each epoch: its duties (the BN serves only current and next epochs)


def log(message: str) -> None:
    print(f"[e2e {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def install_lodestar(ci: bool) -> Path | None:
    """The wrapper's path; None (after one line saying what to install) when node or npm is missing."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        outcome = "e2e FAILED (CI=true)" if ci else "e2e skipped"
        log(f"{outcome}: {' and '.join(missing)} not found: install node >= 20 and npm (https://nodejs.org/)")
        return None
    done = subprocess.run([str(HERE / "install.sh")], stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(
            f"e2e FAILED: e2e/lodestar/install.sh exited with code {done.returncode} (see above)"
        )
    return Path(done.stdout.strip().splitlines()[-1])


def group_pubkeys(devnet: Devnet) -> list[str]:
    lock = json.loads((devnet.node_dir(0) / "cluster-lock.json").read_text())
    return [v["distributed_public_key"] for v in lock["distributed_validators"]]


FAULT_NODE = 1
FAULT_AT_SLOT = 20  # epoch 2, slot 4: mid-epoch, after the first justification could happen


def inject_fault(devnet: Devnet, since_genesis: float, fault: dict[str, Any]) -> None:
    """The fault run: node 1 SIGKILLed mid-epoch, restarted on its data folder a slot later."""
    kill_at = FAULT_AT_SLOT * SECONDS_PER_SLOT + 1.0
    if "killed_at_s" not in fault and since_genesis >= kill_at:
        devnet.kill_node(FAULT_NODE)
        fault["killed_at_s"] = round(since_genesis, 1)
        log(
            f"fault: node{FAULT_NODE} SIGKILLed at {since_genesis:.1f} s after genesis (slot {FAULT_AT_SLOT})"
        )
    elif (
        "killed_at_s" in fault
        and "restarted_at_s" not in fault
        and since_genesis >= kill_at + SECONDS_PER_SLOT
    ):
        devnet.restart_node(FAULT_NODE)
        fault["restarted_at_s"] = round(since_genesis, 1)
        log(f"fault: node{FAULT_NODE} restarted at {since_genesis:.1f} s after genesis")


EXIT_OPERATORS = (0, 1, 2)  # three of four operators exit validator 0 (M = 3)
EXITING = ("active_exiting", "exited_unslashed", "withdrawal_possible", "withdrawal_done")


def exit_validator(devnet: Devnet, exit_state: dict[str, Any]) -> None:
    """Operators 0, 1, 2 run `lodestar validator voluntary-exit` for the cluster's validator 0 through
    their nodes, one after the other. In signer mode the first two are told to wait for more operators
    (412: the command fails), the third gets the group signature; the nodes submit the exit either way."""
    group = group_pubkeys(devnet)[0]
    results = []
    for i in EXIT_OPERATORS:
        code, tail = devnet.voluntary_exit(i, group)
        results.append({"operator": i, "exit_code": code, "output": tail[-200:]})
        log(f"operator {i}: lodestar validator voluntary-exit -> exit code {code}")
    exit_state.update(requested_at_s=round(time.time() - devnet.genesis_time), operators=results)


def validator_index(bn: str, pubkey: str) -> int:
    status, body = http("GET", f"{bn}/eth/v1/beacon/states/head/validators/{pubkey}")
    if status != 200:
        raise RuntimeError(f"the BN does not know {pubkey} (http {status})")
    return int(body["data"]["index"])


def exit_status(bn: str, index: int) -> str:
    status, body = http("GET", f"{bn}/eth/v1/beacon/states/head/validators/{index}")
    return str(body["data"]["status"]) if status == 200 else f"http {status}"


def run(
    devnet: Devnet,
    finalized_target: int,
    deadline: float,
    faults: bool = False,
    exit_epoch: int | None = None,
) -> dict[str, Any]:
    with StallWatch() as watch:
        result = observe(devnet, finalized_target, deadline, faults, exit_epoch, watch)
    return result


def observe(
    devnet: Devnet,
    finalized_target: int,
    deadline: float,
    faults: bool,
    exit_epoch: int | None,
    watch: StallWatch,
) -> dict[str, Any]:
    devnet.create_cluster()
    devnet.start_bn()
    log(f"BN up at {devnet.bn_url}; genesis in {devnet.genesis_time - time.time():.0f} s")
    devnet.start_recorder()
    devnet.start_nodes()
    if devnet.mode != "direct":
        log(f"4 covalidator nodes up, peers connected; genesis in {devnet.genesis_time - time.time():.0f} s")
    devnet.start_vcs()
    margin = devnet.genesis_time - time.time()
    log(f"4 Lodestar VCs up ({devnet.mode} mode); genesis in {margin:.0f} s")
    bn = devnet.bn_url
    dv = dv_indices(bn, group_pubkeys(devnet))
    duties = Duties()
    head_slot = finalized = 0
    epoch_s = SECONDS_PER_SLOT * SLOTS_PER_EPOCH
    fault: dict[str, Any] = {}
    finalized_at: int | None = None  # the head slot when the target epoch was first finalized
    exit_state: dict[str, Any] = {}
    exit_index = validator_index(bn, group_pubkeys(devnet)[0]) if exit_epoch is not None else -1
    noted = 0
    while time.time() < deadline:
        devnet.check()
        for start, end in watch.stalls[noted:]:
            log(
                f"the machine stood still for {end - start:.1f} s ({start - devnet.genesis_time:.0f} s after genesis)"
            )
        noted = len(watch.stalls)
        since = time.time() - devnet.genesis_time
        if faults:
            inject_fault(devnet, since, fault)
        if exit_epoch is not None and not exit_state and since >= exit_epoch * epoch_s + SECONDS_PER_SLOT:
            exit_validator(devnet, exit_state)
        if exit_state and "status" not in exit_state:
            now = exit_status(bn, exit_index)
            if now in EXITING:
                exit_state.update(status=now, seen_at_s=round(time.time() - devnet.genesis_time))
                log(f"the BN shows validator {exit_index} {now}")
        if since >= 0:
            epoch = int(since // epoch_s)
            if epoch not in duties.epochs and since % epoch_s >= SNAPSHOT_AT_S:
                duties.snapshot(bn, epoch, sorted(dv))
            status, head = http("GET", f"{bn}/eth/v1/beacon/headers/head")
            status2, checkpoints = http("GET", f"{bn}/eth/v1/beacon/states/head/finality_checkpoints")
            if status == 200 and status2 == 200:
                slot = int(head["data"]["header"]["message"]["slot"])
                now_final = int(checkpoints["data"]["finalized"]["epoch"])
                if slot // SLOTS_PER_EPOCH != head_slot // SLOTS_PER_EPOCH or now_final != finalized:
                    log(f"head slot {slot}, finalized epoch {now_final} ({since:.0f} s after genesis)")
                head_slot, finalized = slot, now_final
            if finalized >= finalized_target and finalized_at is None:
                finalized_at = head_slot
            if finalized_at is not None and (exit_epoch is None or "status" in exit_state):
                break
        time.sleep(2.0)
    log("judging from the BN's API ...")
    recordings = [devnet.recording(i) for i in range(len(devnet.nodes))]
    result = judge(bn, head_slot, duties, dv, recordings, watch.stalls, devnet.genesis_time, SECONDS_PER_SLOT)
    result = {"mode": devnet.mode, **result, "finalized_at_head_slot": finalized_at}
    result["genesis_margin_s"] = round(margin, 1)
    if exit_epoch is not None:
        result["exit"] = {"validator_index": exit_index, **exit_state}
        if "status" not in exit_state:
            result["passed"] = False
            seen = exit_status(bn, exit_index)
            result["failures"] = [
                *result["failures"],
                f"validator {exit_index} never showed an exit (status {seen})",
            ]
    if faults:
        result["fault"] = {"node": FAULT_NODE, **fault}
        if "restarted_at_s" not in fault:
            result["passed"] = False
            result["failures"] = [*result["failures"], "the fault was not injected (the run ended first)"]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="a fresh folder for the run, kept (default: a temp one, removed if passed)",
    )
    parser.add_argument(
        "--mode", choices=MODES, default="signer", help="signer, middleware, or direct (no covalidator)"
    )
    parser.add_argument("--finalized", type=int, default=3, help="stop once the BN finalizes this epoch")
    parser.add_argument("--max-seconds", type=float, default=600, help="bound on the run, install excluded")
    parser.add_argument("--genesis-delay", type=float, default=40, help="seconds from BN start to genesis")
    parser.add_argument(
        "--faults",
        action="store_true",
        help=f"SIGKILL node{FAULT_NODE} at slot {FAULT_AT_SLOT}, restart it a slot later",
    )
    parser.add_argument(
        "--exit",
        type=int,
        default=None,
        metavar="EPOCH",
        help="at this epoch, operators 0-2 run `lodestar validator voluntary-exit` for validator 0 through "
        "their nodes; the run also waits until the BN shows it exiting",
    )
    args = parser.parse_args()

    ci = os.environ.get("CI", "").lower() == "true"
    began = time.time()
    lodestar = install_lodestar(ci)
    if lodestar is None:
        return 1 if ci else 0
    out = args.out or Path(tempfile.mkdtemp(prefix="covalidator-e2e-"))
    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()):
        log(f"{out} is not empty: give a fresh --out")
        return 1
    log(f"run folder {out} (Lodestar installed in {time.time() - began:.0f} s)")
    os.environ["LODESTAR_PRESET"] = "minimal"
    started = time.time()
    result: dict[str, Any] = {"passed": False}
    with Children(out, stop_timeout_s=20.0) as children:
        devnet = Devnet(out, lodestar, children, args.genesis_delay, args.mode)
        try:
            result = run(devnet, args.finalized, started + args.max_seconds, args.faults, args.exit)
        except ChildFailed as error:
            result = {"passed": False, "failures": [f"the devnet broke: {error}"]}
        except Exception as error:  # a BN answer the judge could not read, ...: still one JSON line
            result = {"passed": False, "failures": [f"the e2e harness failed: {error!r}"]}
        finally:
            stops = devnet.stop()
            log("stopped: " + "; ".join(f"{name}: {how}" for name, how in stops.items()))
    result["run_seconds"] = round(time.time() - started)
    result["folder"] = str(out)
    (out / "summary.json").write_text(json.dumps(result, indent=1))
    if args.out is None and result["passed"]:
        shutil.rmtree(out, ignore_errors=True)  # ~30 MB a run; a failed run, or --out, is kept
        result["folder"] = None
    print(json.dumps(result), flush=True)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
