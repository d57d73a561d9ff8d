"""Benchmark: durable check-and-record throughput of the slashing DB.

Setup: V validators with E epochs of attestation history each (bulk-generated inside SQLite), then
B batches of K attestations (one slot's decided values), each checked and recorded in ONE durable
transaction (WAL, synchronous=FULL: fsync at every commit). Prints p50/p99 batch latency, checks/s,
and the cost of one check in the common case and for an out-of-order target.

    python bench/slashing.py [--validators 10000] [--epochs 1000] [--batches 100] [--batch-size 1000]
Target (issue 3): a 1,000-attestation batch checked and durably recorded in < 50 ms.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from covalidator.model.slashing.rules import SignedAttestation
from covalidator.runtime.store import Store, _enc


def populate(store: Store, validators: int, epochs: int) -> float:
    start = time.perf_counter()
    db = store._db
    db.execute("BEGIN IMMEDIATE")
    db.executemany(
        "INSERT INTO validators (pubkey) VALUES (?)", ((i.to_bytes(48, "big"),) for i in range(validators))
    )
    db.execute(
        "INSERT INTO attestation_bounds SELECT id, ?, ?, ? FROM validators", (_enc(0), _enc(1), _enc(epochs))
    )
    # in target order, as a chain's history accumulates (the table is clustered by target epoch)
    db.execute(
        "INSERT INTO signed_attestations (target_epoch, validator_id, source_epoch, signing_root)"
        " WITH RECURSIVE e(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM e WHERE n < ?)"
        " SELECT e.n + ?, v.id, e.n - 1 + ?, randomblob(32) FROM e, validators v ORDER BY 1, 2",
        (epochs, -(2**63), -(2**63)),
    )
    db.execute("COMMIT")
    return time.perf_counter() - start


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--validators", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=1_000)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=1_000)
    parser.add_argument("--dir", default=None, help="where to put the DB (default: a temp dir on disk)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir or os.environ.get("TMPDIR")) as tmp:
        path = Path(tmp) / "bench.sqlite"
        store = Store(path, b"\x00" * 32)
        seconds = populate(store, args.validators, args.epochs)
        rows = args.validators * args.epochs
        size_mb = path.stat().st_size / 1e6
        print(
            f"history: {args.validators} validators x {args.epochs} epochs = {rows:,} attestations "
            f"in {seconds:.1f} s ({size_mb:,.0f} MB)"
        )

        rng = random.Random(1)
        latencies = []
        checks = 0
        per_epoch = -(-args.validators // args.batch_size)  # batches until every validator attested once
        for batch in range(args.batches):
            epoch = args.epochs + 1 + batch // per_epoch
            start_index = (batch % per_epoch) * args.batch_size
            count = min(args.batch_size, args.validators - start_index)
            items = [(start_index + k).to_bytes(48, "big") for k in range(count)]
            batch_items = [(pk, SignedAttestation(epoch - 1, epoch, rng.randbytes(32))) for pk in items]
            t0 = time.perf_counter()
            verdicts = store.check_batch(batch_items, record=True)
            latencies.append(time.perf_counter() - t0)
            checks += len(verdicts)
            assert all(v.safe for v in verdicts), "the benchmark's attestations must all be safe"

        total = sum(latencies)
        p50, p99 = percentile(latencies, 0.50) * 1e3, percentile(latencies, 0.99) * 1e3
        print(f"batches: {args.batches} x {args.batch_size} attestations, one durable transaction each")
        print(
            f"  batch latency p50 {p50:.1f} ms, p99 {p99:.1f} ms, mean {statistics.mean(latencies) * 1e3:.1f} ms"
        )
        print(f"  throughput {checks / total:,.0f} checks/s (checked + recorded + fsync'ed)")
        target = 50.0
        print(
            f"  target p99 < {target:.0f} ms per 1,000-attestation batch: ratio p99/target = {p99 / target:.2f}"
        )

        # Out-of-order candidates (older than the newest record) step between the bounds.
        pk = (0).to_bytes(48, "big")
        reps = 50
        for label, att in (
            ("newest target + 1 (the common case)", SignedAttestation(args.epochs + 300, args.epochs + 301)),
            (
                "target in the middle of the history",
                SignedAttestation(args.epochs // 2, args.epochs // 2 + 1),
            ),
        ):
            t0 = time.perf_counter()
            for _ in range(reps):
                store.check_attestation(pk, att, record=False)
            print(f"single dry-run check, {label}: {(time.perf_counter() - t0) / reps * 1e3:.3f} ms")
        store.close()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
