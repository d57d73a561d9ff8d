"""Benchmark: BLS12-381 costs per backend (arkworks, blst, py_ecc), and one duty's threshold work.

Rows (median ms per operation; every iteration uses a fresh message and fresh signatures, so no
decoded signature or hashed message is reused; public keys are decoded once, as a node does when it
loads its cluster lock):
  sign, verify, partial verify (a verify under a share pubkey), batch verify of N partials of one
  message (one random linear combination), combine of M partials (Lagrange in G2, decoding included;
  {1, 2, 3} needs only additions, {1, 2, 4} one full multiplication),
  and the per-duty cost for N = 4, 7, 10 (M = ceil(2N/3)): combine the M lowest partials and verify
  the result (`bls.verify_and_combine`'s fast path: peer partials are checked one by one only when
  the result fails). As in the node, its own VC's partial was
  already checked against the decided data when it arrived (that step is not timed here; it leaves
  H(m) and the own partial decoded). Two comparison rows: the same duty unbatched (each peer partial
  verified alone, then the result), and "cold" (nothing checked before: all N partials batched and
  H(m) computed inside). Batch weights are 64-bit, the runtime having set a batch secret
  (`bls.use_batch_secret`); one row shows the 4-node duty with public 128-bit weights instead.
Ratios are py_ecc's time over the backend's. Partials are made with the fastest backend (the bytes
are identical on every backend, which the tests check).

    python bench/bls.py [--iterations 40] [--pyecc-iterations 3] [--backends arkworks,blst,pyecc]
Targets (issue 8): the default backend >= 120x py_ecc on verify; a 4-node duty < 5 ms.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from itertools import count

from covalidator.model.crypto import bls, shamir

SECRET = 0x2A2A2A2A2A2A2A2A2A2A2A2A2A2A
SIZES = (4, 7, 10)
_fresh = count()
# CPU time of this process by default: the machine is shared, and every backend here is single-threaded,
# so CPU time is what the operation costs whatever else runs (on an idle machine it equals wall time).
clock: Callable[[], float] = time.process_time


def fresh_message() -> bytes:
    return next(_fresh).to_bytes(32, "big")


def median_ms(run: Callable[[], object], iterations: int) -> float:
    samples = []
    for _ in range(iterations):
        start = clock()
        run()
        samples.append(clock() - start)
    return statistics.median(samples) * 1000


class Cluster:
    def __init__(self, n: int) -> None:
        self.n, self.m = n, math.ceil(2 * n / 3)
        maker = bls.load_backend("blst")
        self.shares = bls.split(SECRET, self.m, n, shamir.coefficients_from_seed(b"bench", self.m - 1))
        self.pubkeys = {i: maker.sk_to_pk(s) for i, s in self.shares.items()}
        self.group = maker.sk_to_pk(SECRET)
        self._maker = maker

    def duties(self) -> Iterator[tuple[bytes, dict[int, bytes]]]:
        """An endless supply of (fresh message, every node's partial signature of it)."""
        while True:
            message = fresh_message()
            yield message, {i: self._maker.sign(s, message) for i, s in self.shares.items()}


def measure(name: str, iterations: int) -> dict[str, float]:
    backend = bls.use_backend(name)
    bls.use_batch_secret(os.urandom(32))  # as the runtime does at start-up: 64-bit batch weights
    results: dict[str, float] = {}
    clusters = {n: Cluster(n) for n in SIZES}
    for c in clusters.values():  # a node decodes its lock's keys once, at start-up
        for pk in [c.group, *c.pubkeys.values()]:
            backend.pubkey_point(pk)
    four = clusters[4]
    supply = four.duties()
    results["sign"] = median_ms(lambda: bls.sign(SECRET, fresh_message()), iterations)

    maker = bls.load_backend("blst")
    for label, pubkey, secret in (
        ("verify", four.group, SECRET),
        ("partial verify", four.pubkeys[2], four.shares[2]),
    ):
        samples = []
        for _ in range(iterations):
            message = fresh_message()
            signature = maker.sign(secret, message)
            start = clock()
            assert bls.verify(pubkey, message, signature)
            samples.append(clock() - start)
        results[label] = statistics.median(samples) * 1000

    for n, c in clusters.items():
        stream = c.duties()
        samples = []
        for _ in range(iterations):
            message, partials = next(stream)
            items = [bls.SignedItem(c.pubkeys[i], message, partials[i]) for i in range(1, n + 1)]
            start = clock()
            assert bls.batch_verify(items)
            samples.append(clock() - start)
        results[f"batch verify {n} partials"] = statistics.median(samples) * 1000

    # {1, 2, 4}: Lagrange coefficients 8/3, -2, 1/3: the one 4-node signer set whose combination needs
    # a full scalar multiplication (by 3^-1 mod r); the others are additions of small multiples.
    for label, signers in (("combine 3 partials", (1, 2, 3)), ("combine 3 partials {1, 2, 4}", (1, 2, 4))):
        samples = []
        for _ in range(iterations):
            message, partials = next(supply)
            chosen = {i: partials[i] for i in signers}
            start = clock()
            bls.combine(chosen, 3)
            samples.append(clock() - start)
        results[label] = statistics.median(samples) * 1000

    own = 1  # this node's share index
    for n, c in clusters.items():
        stream = c.duties()
        batched, unbatched, cold = [], [], []
        for _ in range(iterations):
            # The node checked its own VC's partial against the decided data when it arrived (not timed:
            # it is the VC step, and it leaves H(m) and the own partial decoded, as in the node).
            message, partials = next(stream)
            assert bls.verify_partial(c.pubkeys[own], message, partials[own])
            start = clock()
            result = bls.verify_and_combine(c.group, c.pubkeys, message, partials, c.m, verified={own})
            batched.append(clock() - start)
            assert result.signature is not None and not result.invalid

            message, partials = next(stream)
            assert bls.verify_partial(c.pubkeys[own], message, partials[own])
            start = clock()
            for i in range(2, n + 1):
                assert bls.verify(c.pubkeys[i], message, partials[i])
            combined = bls.combine({i: partials[i] for i in range(1, c.m + 1)}, c.m)
            assert bls.verify(c.group, message, combined)
            unbatched.append(clock() - start)

            message, partials = next(stream)  # nothing checked or hashed before: all N in the batch
            start = clock()
            assert bls.verify_and_combine(c.group, c.pubkeys, message, partials, c.m).signature is not None
            cold.append(clock() - start)
        results[f"per duty N={n} (M={c.m})"] = statistics.median(batched) * 1000
        results[f"  N={n} unbatched"] = statistics.median(unbatched) * 1000
        results[f"  N={n} cold (all N partials, H(m))"] = statistics.median(cold) * 1000

    if name != "pyecc":  # py_ecc would take minutes per sample here
        results.update(slot_floor(iterations))

    # The same 4-node duty without a batch secret: weights public, so 128-bit.
    bls.use_batch_secret(None)
    stream, samples = clusters[4].duties(), []
    for _ in range(iterations):
        message, partials = next(stream)
        assert bls.verify_partial(four.pubkeys[own], message, partials[own])
        start = clock()
        bls.verify_and_combine(four.group, four.pubkeys, message, partials, four.m, verified={own})
        samples.append(clock() - start)
    results["  N=4 without batch secret"] = statistics.median(samples) * 1000
    return results


def slot_floor(iterations: int, validators: int = 125) -> dict[str, float]:
    """The BLS a 4-node cluster's node must do per attestation in a busy slot, as the node does it:
    `validators` validators of one committee sign ONE attestation data; the node checks its VC's
    partials in one batch (`find_invalid`, what `vc.on_vc_submission` does), then combines and checks
    every validator's M partials in one batch (`verify_and_combine_many`, what `parsig.try_combine`
    does). Per validator: the crypto floor a node's CPU per duty is compared with."""
    own = 1
    makers = []
    for v in range(validators):
        secret = SECRET + v
        shares = bls.split(secret, 3, 4, shamir.coefficients_from_seed(b"slot%d" % v, 2))
        pubkeys = {i: bls.sk_to_pk(s) for i, s in shares.items()}
        makers.append((bls.sk_to_pk(secret), shares, pubkeys))
    signer = bls.load_backend("blst")
    check, combine = [], []
    for _ in range(max(3, iterations // 8)):
        message = fresh_message()
        signed = [(g, pk, {i: signer.sign(s, message) for i, s in sh.items()}) for g, sh, pk in makers]
        own_items = [bls.SignedItem(pk[own], message, p[own]) for _, pk, p in signed]
        start = clock()
        assert not bls.find_invalid(own_items)
        check.append(clock() - start)
        jobs = [bls.CombineJob(g, pk, message, p, 3, {own}) for g, pk, p in signed]
        start = clock()
        assert all(c.signature is not None for c in bls.verify_and_combine_many(jobs))
        combine.append(clock() - start)
    per = 1000 / validators
    return {
        f"slot of {validators}, per validator: own VC partial checked": statistics.median(check) * per,
        f"slot of {validators}, per validator: combine + verify": statistics.median(combine) * per,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=40, help="samples per row for the fast backends")
    parser.add_argument(
        "--pyecc-iterations", type=int, default=3, help="samples per row for py_ecc (seconds each)"
    )
    parser.add_argument("--backends", default="arkworks,blst,pyecc")
    parser.add_argument(
        "--clock", choices=["cpu", "wall"], default="cpu", help="CPU time of this process, or wall time"
    )
    args = parser.parse_args()
    global clock
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    names = [b.strip() for b in args.backends.split(",")]
    print(
        f"# {platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"{platform.machine()}; {args.clock} time; load average {os.getloadavg()[0]:.2f} at start"
    )
    table: dict[str, dict[str, float]] = {}
    for name in names:
        iterations = args.pyecc_iterations if name == "pyecc" else args.iterations
        start = time.perf_counter()
        table[name] = measure(name, iterations)
        elapsed = time.perf_counter() - start
        library = bls.load_backend(name).library()
        print(f"# {name}: {library}, {iterations} samples per row, {elapsed:.0f} s")
    rows = list(next(iter(table.values())))
    print("| operation (median ms) " + "".join(f"| {n} " for n in names) + "|")
    print("|---" * (len(names) + 1) + "|")
    for row in rows:
        cells = []
        for name in names:
            value = table[name].get(row)
            if value is None:
                cells.append("-")
                continue
            reference = table.get("pyecc", {}).get(row)
            ratio = f" ({reference / value:,.0f}x)" if reference is not None and name != "pyecc" else ""
            cells.append(f"{value:,.3f}{ratio}" if value < 1 else f"{value:,.2f}{ratio}")
        print(f"| {row} " + "".join(f"| {c} " for c in cells) + "|")
    default = bls.DEFAULT_BACKEND
    if default in table:
        duty = table[default]["per duty N=4 (M=3)"]
        print(
            f"\n{default}: 4-node per-duty cost {duty:.2f} ms (target < 5 ms): {'OK' if duty < 5 else 'MISSED'}"
        )
        if "pyecc" in table:
            speedup = table["pyecc"]["verify"] / table[default]["verify"]
            print(
                f"{default}: verify {speedup:.0f}x faster than py_ecc (target >= 120x): {'OK' if speedup >= 120 else 'MISSED'}"
            )


if __name__ == "__main__":
    main()
