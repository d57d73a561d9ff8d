"""Benchmark: model CPU of one QBFT instance carrying a 1,000-validator value, for N = 4, 7, 10, 13.

One consensus instance runs per (slot, duty kind) and carries every cluster validator's data: here a
canonical-JSON map of 1,000 validator pubkeys to Beacon-API AttestationData (~0.4 MB). Each instance
runs all N co-validators' `qbft.step` in one process over a loss-free network (FIFO delivery), from
inputs to every node deciding; what is timed is the model's CPU (process time): hashing the body at
each node, justification and quorum checks, state updates. The validity predicate is the caller's
(the node model checks Beacon data and slashing rules with it) and is kept constant-time here; the
cost of parsing the value once (json.loads), which such a predicate may pay, is printed beside.

    python bench/qbft.py [--instances 30] [--validators 1000] [--nodes 4,7,10,13]
Target (issue 4): an N=4 instance with a 1,000-validator value decides in < 5 ms of model CPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import deque

from covalidator.model.duty import DutyId, DutyKind
from covalidator.model.qbft import instance as qbft
from covalidator.model.qbft.events import Broadcast, Decide, InputValue, Received, Send
from covalidator.model.qbft.messages import Envelope, Value, canonical_json, make_value

TARGET_MS = 5.0


def attestation_value(validators: int, slot: int, variant: int) -> Value:
    """What a beacon node returns for `validators` attesters of one slot, as one canonical value."""
    epoch = slot // 32
    data = {}
    for v in range(validators):
        pubkey = "0x" + (v.to_bytes(4, "big") * 12).hex()
        data[pubkey] = {
            "slot": str(slot),
            "index": str(v % 64),
            "beacon_block_root": "0x" + f"{slot:08x}{variant:056x}",
            "source": {"epoch": str(epoch - 1), "root": "0x" + f"{epoch - 1:064x}"},
            "target": {"epoch": str(epoch), "root": "0x" + f"{epoch:064x}"},
        }
    return make_value(canonical_json(data))


def is_valid(value: Value) -> bool:
    return value.body[:1] == b"{"


def run_instance(n: int, slot: int, values: list[Value]) -> tuple[float, int, int]:
    """CPU seconds of all N nodes' steps, messages sent, value bytes sent; every node must decide."""
    duty = DutyId(slot, DutyKind.ATTESTER)
    states: dict[int, qbft.InstanceState] = {}
    queue: deque[tuple[int, Envelope]] = deque()
    decided: dict[int, str] = {}
    messages = body_bytes = 0
    start = time.process_time()
    for i in range(1, n + 1):
        states[i], _ = qbft.init(qbft.InstanceConfig(duty, n, i, start_ms=0, expiry_ms=12_000))

    def run(i: int, event: InputValue | Received) -> None:
        nonlocal messages, body_bytes
        states[i], actions = qbft.step(states[i], event, is_valid)
        for action in actions:
            if isinstance(action, Broadcast):
                peers = [p for p in range(1, n + 1) if p != i]
                queue.extend((p, action.envelope) for p in peers)
                messages += len(peers)
                body_bytes += len(peers) * len(action.envelope.body or b"")
            elif isinstance(action, Send):
                queue.append((action.to, action.envelope))
                messages += 1
            elif isinstance(action, Decide):
                decided[i] = action.value.hash

    for i in range(1, n + 1):
        run(i, InputValue(duty, values[i - 1]))
    while queue:
        to, env = queue.popleft()
        run(to, Received(env))
    cpu = time.process_time() - start
    assert len(decided) == n and len(set(decided.values())) == 1, "every node decides the same value"
    return cpu, messages, body_bytes


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--instances", type=int, default=30)
    parser.add_argument("--validators", type=int, default=1_000)
    parser.add_argument("--nodes", default="4,7,10,13")
    args = parser.parse_args()
    sizes = [int(x) for x in args.nodes.split(",")]

    values = [attestation_value(args.validators, 1_000_000 + k, k) for k in range(max(sizes))]
    body = values[0].body
    parse_start = time.process_time()
    for _ in range(10):
        json.loads(body)
    parse_ms = (time.process_time() - parse_start) / 10 * 1000
    print(
        f"value: {args.validators} validators, {len(body) / 1e6:.2f} MB canonical JSON; json.loads of it: {parse_ms:.2f} ms"
    )
    print()
    print(
        "| N | instances/s | model CPU per instance (all N nodes) p50 / p99 | per node | messages/instance | value bytes sent/instance |"
    )
    print("|---|---|---|---|---|---|")
    p50_n4 = None
    for n in sizes:
        run_instance(n, 0, values[:n])  # warm-up
        cpus, msgs, sent = [], 0, 0
        for k in range(args.instances):
            cpu, m, b = run_instance(n, 1_000_000 + k, values[:n])
            cpus.append(cpu)
            msgs, sent = m, b
        p50 = statistics.median(cpus) * 1000
        p99 = sorted(cpus)[min(len(cpus) - 1, int(0.99 * len(cpus)))] * 1000
        if n == 4:
            p50_n4 = p50
        print(
            f"| {n} | {1000 / p50:,.0f} | {p50:.2f} ms / {p99:.2f} ms | {p50 / n:.2f} ms | {msgs} | {sent / 1e6:.2f} MB |"
        )
    if p50_n4 is not None:
        verdict = "met" if p50_n4 < TARGET_MS else "MISSED"
        print(f"\ntarget: N=4 instance < {TARGET_MS} ms of model CPU: {p50_n4:.2f} ms, {verdict}")


if __name__ == "__main__":
    main()
