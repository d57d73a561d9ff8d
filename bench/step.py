"""Benchmark: the model's CPU over a recorded run, step by step, with nothing else in the process.

A node's step thread does `model.node.step` on each event (the model and its BLS). A bench run's
trace (`bench/cluster.py --keep DIR`: DIR/v1000/data0/trace) holds every event that node stepped; here
they are read and decoded first, then stepped again through a fresh model, and only the steps are
timed (process time). The model is deterministic, so two runs on the same trace do the same work:
unlike a live cluster run (which spreads by 10-25 % between runs on this machine), this compares two
versions of the model's code to about 1 %. Each step's actions are compared with the recorded ones,
so a change that alters behaviour fails here rather than reporting a false speed-up (`--no-check`
for a model whose actions changed on purpose).

    python bench/step.py TRACE_DIR [--repeat 3] [--profile N] [--no-check] [--bls]

Prints the CPU of all steps, per epoch of the trace's span (genesis to its last event), and per event kind.
`--bls` also counts and times, in one more run, every call the steps make to the BLS backend's group
operations (decoding, subgroup checks, multiplications, multi-scalar multiplications, hashing to G2,
pairings): the crypto a node does for its duties, against the rest of the step (the model's Python).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import os
import pstats
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from covalidator.model.cluster.lock import parse_lock
from covalidator.model.crypto import bls
from covalidator.model.node.codec import encode
from covalidator.model.node.events import PeerMessage, Started
from covalidator.model.node.state import NodeState
from covalidator.model.node.step import step
from covalidator.runtime.node_setup import node_config
from covalidator.runtime.trace import read_trace


def load(path: Path) -> tuple[Any, list[tuple[int, Any, tuple[Any, ...]]]]:
    trace = read_trace(path)
    header = trace.header
    if header.lock is None:
        sys.exit(f"{path}: the trace does not hold the cluster lock")
    lock = parse_lock(header.lock)
    config = node_config(lock, header.share_index, header.spec, header.genesis, header.config)
    records: list[tuple[int, Any, tuple[Any, ...]]] = []
    started = False
    for recorded in trace.steps():
        if recorded.actions is None:
            continue
        started = started or isinstance(recorded.event, Started)
        if started:
            records.append((recorded.ms, recorded.event, recorded.actions))
    return config, records


def arrived(event: Any) -> None:
    """What the runtime does, off the step thread, when a peer's partials arrive uncompressed (as
    nodes send their own: runtime/peers.py): each point is remembered as on the curve. Untimed here,
    as in a node (it is the event loop's ~10 us per partial)."""
    if not isinstance(event, PeerMessage) or event.payload.partials is None:
        return
    for item in event.payload.partials.partials:
        with contextlib.suppress(ValueError, bls.BlsError):
            compressed = bytes.fromhex(item.signature[2:])
            point = bls.backend().g2_decode_unchecked(compressed)
            xy = bls.backend().g2_xy(point)
            if xy is not None:
                bls.signature_from_uncompressed(xy)


def run(
    config: Any,
    records: list[tuple[int, Any, tuple[Any, ...]]],
    *,
    check: bool = True,
    arrive: Callable[[Any], None] = arrived,
) -> tuple[float, dict[str, float]]:
    """Every event stepped through a fresh model; (total process seconds, seconds per event kind)."""
    state = NodeState(config)
    by_kind: dict[str, float] = defaultdict(float)
    total = 0.0
    outputs: list[tuple[int, tuple[Any, ...]]] = []
    for index, (_, event, _) in enumerate(records):
        arrive(event)
        begin = time.process_time()
        state, actions = step(state, event)
        spent = time.process_time() - begin
        total += spent
        by_kind[type(event).__name__] += spent
        outputs.append((index, actions))
    for index, actions in (
        outputs if check else ()
    ):  # checked after timing: the comparison costs more than the steps
        recorded = records[index][2]
        if tuple(encode(a) for a in actions) != tuple(encode(a) for a in recorded):
            sys.exit(f"step {index} ({type(records[index][1]).__name__}): actions differ from the trace's")
    return total, by_kind


# The backend's group operations (model/crypto/backends/base.py) a step may reach; the Backend's own
# algorithms (verify, batch_verify, g2_interpolate ...) are Python around them and are not counted.
PRIMITIVES = (
    "g1_decode", "g2_decode", "g2_decode_unchecked", "g2_from_xy", "g2_xy", "g1_encode", "g2_encode",
    "g2_in_subgroup", "g1_mul", "g2_mul", "g2_mul_in_g2", "g1_add", "g2_add", "g2_neg", "g1_msm",
    "g2_msm", "hash_to_g2", "pairings_equal",
)  # fmt: skip


def count_bls(backend: Any) -> tuple[dict[str, list[float]], list[bool]]:
    """Wrap `backend`'s group operations (on the instance): name -> [calls, process seconds], and the
    flag that, while set, counts nothing (it is set inside a counted call: one made inside another
    counts in the outer only)."""
    counts: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    inside = [False]

    def wrap(name: str, operation: Any) -> Any:
        def counted(*args: Any) -> Any:
            if inside[0]:
                return operation(*args)
            inside[0] = True
            begin = time.process_time()
            try:
                return operation(*args)
            finally:
                count = counts[name]
                count[0] += 1
                count[1] += time.process_time() - begin
                inside[0] = False

        return counted

    for name in PRIMITIVES:
        setattr(backend, name, wrap(name, getattr(backend, name)))
    return counts, inside


def bls_share(config: Any, records: list[tuple[int, Any, tuple[Any, ...]]], epochs: float) -> None:
    """One more run with the backend's calls counted (not the runtime's `arrived`, untimed above)."""
    counts, paused = count_bls(bls.backend())

    def uncounted(event: Any) -> None:
        paused[0] = True
        try:
            arrived(event)
        finally:
            paused[0] = False

    total, _ = run(config, records, check=False, arrive=uncounted)
    crypto = sum(seconds for _, seconds in counts.values())
    print(
        f"BLS in the steps: {crypto:.3f} of {total:.3f} s ({crypto / total:.0%}), {crypto / epochs:.3f} s per epoch"
    )
    print(f"  {'operation':16s} {'calls/epoch':>11s} {'us/call':>8s} {'s/epoch':>8s}")
    for name, (calls, seconds) in sorted(counts.items(), key=lambda kv: -kv[1][1]):
        if calls:
            print(f"  {name:16s} {calls / epochs:11.0f} {seconds / calls * 1e6:8.1f} {seconds / epochs:8.3f}")
    print(f"the rest of the steps (the model's Python): {(total - crypto) / epochs:.3f} s per epoch")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace", type=Path)
    parser.add_argument("--repeat", type=int, default=3, help="runs, each in a fresh process (best is kept)")
    parser.add_argument(
        "--no-check",
        action="store_true",
        help="do not compare the actions with the trace's (a model whose actions changed on purpose)",
    )
    parser.add_argument("--once", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--profile", type=int, default=0, help="also print the top N functions (cProfile)")
    parser.add_argument("--bls", action="store_true", help="also count the BLS backend's operations")
    parser.add_argument("--bls-once", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    bls.use_batch_secret(os.urandom(32))  # as a node does at start-up: 64-bit batch weights
    config, records = load(args.trace)
    clock = config.chain.clock
    first, last = records[0][0], records[-1][0]
    first = max(first, clock.genesis_time_ms)  # as bench/cluster.py counts: from genesis to the end
    epoch_ms = clock.slots_per_epoch * clock.slot_ms
    epochs = max((last - first) / epoch_ms, 1e-9)
    kinds = Counter(type(event).__name__ for _, event, _ in records)
    if not (args.once or args.bls_once):
        print(
            f"{args.trace}: {len(records)} steps over {epochs:.2f} epochs ({clock.slots_per_epoch} x "
            f"{clock.slot_ms / 1000:g} s), {len(config.validators)} validators"
        )
    if args.bls_once:  # the --bls run, in a fresh process too
        bls_share(config, records, epochs)
        return
    if args.once:  # one run in this process (its memos start empty, as a node's do)
        print(json.dumps(run(config, records, check=not args.no_check)))
        return
    best: tuple[float, dict[str, float]] | None = None
    for attempt in range(args.repeat):
        done = subprocess.run(
            [sys.executable, __file__, str(args.trace), "--once", *(["--no-check"] if args.no_check else [])],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:  # the run's own message (a divergence from the trace, say)
            sys.exit(
                done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
            )
        total, by_kind = json.loads(done.stdout.splitlines()[-1])
        print(f"run {attempt + 1}: {total:.3f} s of steps, {total / epochs:.3f} s per epoch")
        if best is None or total < best[0]:
            best = (total, by_kind)
    assert best is not None
    print(f"best: {best[0]:.3f} s, {best[0] / epochs:.3f} s per epoch; by event (s, count):")
    for kind, spent in sorted(best[1].items(), key=lambda kv: -kv[1]):
        print(f"  {kind:22s} {spent:7.3f}  {kinds[kind]:6d}")
    if args.bls:
        done = subprocess.run(
            [sys.executable, __file__, str(args.trace), "--bls-once"], capture_output=True, text=True
        )
        print(done.stdout.rstrip() if done.returncode == 0 else done.stderr.strip())
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        run(
            config, records, check=False
        )  # this process has run nothing yet: its memos are empty, as in a node
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(args.profile)


if __name__ == "__main__":
    main()
