"""EIP-3076 theorems, proved with Z3 on the functions of `model/slashing.py` themselves.

Histories have UNBOUNDED length: a history is a triple of Z3 arrays (source, target, signing root)
indexed 0..n-1 with n a symbolic integer; the model's `AllOf`/`AnyOf` turn into quantifiers over that
index (`SymbolicHistory` below), so `is_attestation_acceptable` is the very function the store's
check calls, applied to a history of any length. Signing roots are integers, negative meaning unknown.

What "slashable" means is NOT taken from the model: `spec_is_slashable_attestation_data` and
`spec_is_slashable_block_pair` below transcribe the consensus specs' `is_slashable_attestation_data`
and the proposer-slashing condition, so a wrong model rule cannot make its own theorem true.

Theorems:
1. attestation_inductive_safety / block_inductive_safety: a history with no slashable pair, extended
   by a message the check accepts, still has no slashable pair.
2. minification_soundness (attestations, blocks): whatever a minimal DB (watermarks = max source,
   max target, max slot) accepts, the complete DB accepts too.
3. neighbour_check_sufficiency: on a staircase history (sorted by target, sources never decrease:
   every history without slashable pairs is one), checking the same-target record and the nearest
   targets below and above gives the same verdict as checking every record. The store relies on it.
4. pruning_soundness (attestations, blocks): after dropping every record below a cut-off (keeping at
   least one), what the pruned DB accepts with its own low watermarks forms no slashable pair with any
   record of the full history. (On a staircase the target watermark is what matters: a source below
   the watermark already surrounds the kept record with the least target.)
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from types import ModuleType
from typing import Any

import z3

from covalidator.model.slashing import rules
from covalidator.proofs.harness import ProofResult, Theorem, all_of, check_valid

_fresh = itertools.count()


class SymbolicHistory:
    """Records 0..n-1 of Z3 arrays; optionally only those satisfying `member(i)`."""

    def __init__(
        self,
        arrays: tuple[z3.ArrayRef, ...],
        n: z3.ArithRef,
        member: Callable[[z3.ArithRef], z3.BoolRef] | None = None,
    ) -> None:
        self.arrays, self.n, self.member = arrays, n, member

    @classmethod
    def fresh(cls, name: str, width: int) -> SymbolicHistory:
        arrays = tuple(z3.Array(f"{name}_{k}", z3.IntSort(), z3.IntSort()) for k in range(width))
        return cls(arrays, z3.Int(f"{name}_n"))

    def at(self, i: Any) -> tuple[z3.ArithRef, ...]:
        return tuple(a[i] for a in self.arrays)

    def _in(self, i: z3.ArithRef) -> z3.BoolRef:
        inside = z3.And(i >= 0, i < self.n)
        return z3.And(inside, self.member(i)) if self.member else inside

    def forall(self, pred: Callable[..., Any]) -> z3.BoolRef:
        i = z3.Int(f"i{next(_fresh)}")
        return z3.ForAll([i], z3.Implies(self._in(i), pred(self.at(i))))

    def exists(self, pred: Callable[..., Any]) -> z3.BoolRef:
        i = z3.Int(f"i{next(_fresh)}")
        return z3.Exists([i], z3.And(self._in(i), pred(self.at(i))))

    def forall_pairs(self, pred: Callable[..., Any]) -> z3.BoolRef:
        i, j = z3.Int(f"i{next(_fresh)}"), z3.Int(f"j{next(_fresh)}")
        return z3.ForAll(
            [i, j], z3.Implies(z3.And(self._in(i), self._in(j), i != j), pred(self.at(i), self.at(j)))
        )

    def appended(self, record: tuple[Any, ...]) -> SymbolicHistory:
        assert self.member is None
        arrays = tuple(z3.Store(a, self.n, v) for a, v in zip(self.arrays, record, strict=True))
        return SymbolicHistory(arrays, self.n + 1)

    def restricted(self, member: Callable[[z3.ArithRef], z3.BoolRef]) -> SymbolicHistory:
        return SymbolicHistory(self.arrays, self.n, member)

    def are_lower_bounds(self, lows: tuple[Any, ...], fields: tuple[int, ...]) -> z3.BoolRef:
        """`lows[k]` is the minimum of field `fields[k]` over the (non-empty) history."""
        parts = []
        for low, f in zip(lows, fields, strict=True):
            parts.append(self.forall(lambda rec, low=low, f=f: rec[f] >= low))
            parts.append(self.exists(lambda rec, low=low, f=f: rec[f] == low))
        return z3.And(*parts)


# --- the consensus specs' definitions, transcribed independently of model/ -------------------------


def spec_is_slashable_attestation_data(d1: tuple[Any, ...], d2: tuple[Any, ...]) -> z3.BoolRef:
    """is_slashable_attestation_data(data_1, data_2): data differ and same target, or 1 surrounds 2.
    Two attestation data are equal when source, target and the (known) signing root are equal."""
    (s1, t1, r1), (s2, t2, r2) = d1, d2
    equal = z3.And(s1 == s2, t1 == t2, r1 >= 0, r2 >= 0, r1 == r2)
    return z3.Or(z3.And(z3.Not(equal), t1 == t2), z3.And(s1 < s2, t2 < t1))


def spec_slashable_either_order(d1: tuple[Any, ...], d2: tuple[Any, ...]) -> z3.BoolRef:
    return z3.Or(spec_is_slashable_attestation_data(d1, d2), spec_is_slashable_attestation_data(d2, d1))


def spec_is_slashable_block_pair(b1: tuple[Any, ...], b2: tuple[Any, ...]) -> z3.BoolRef:
    """Proposer slashing: two different block headers for the same slot."""
    (slot_1, r1), (slot_2, r2) = b1, b2
    return z3.And(slot_1 == slot_2, z3.Not(z3.And(r1 >= 0, r2 >= 0, r1 == r2)))


# --- theorems ------------------------------------------------------------------------------------------


def attestation_inductive_safety(model: ModuleType = rules) -> ProofResult:
    h = SymbolicHistory.fresh("att", 3)
    s, t, r, min_s, min_t = z3.Ints("s t r min_s min_t")
    extended = h.appended((s, t, r))
    return check_valid(
        "attestation_inductive_safety",
        "no slashable attestation pair + accepted attestation => still none (any history length)",
        [
            h.n >= 0,
            h.forall_pairs(lambda a, b: z3.Not(spec_slashable_either_order(a, b))),
            model.is_attestation_acceptable(s, t, r, h, h.n > 0, min_s, min_t),
        ],
        extended.forall_pairs(lambda a, b: z3.Not(spec_slashable_either_order(a, b))),
    )


def block_inductive_safety(model: ModuleType = rules) -> ProofResult:
    h = SymbolicHistory.fresh("blk", 2)
    slot, r, min_slot = z3.Ints("slot r min_slot")
    extended = h.appended((slot, r))
    return check_valid(
        "block_inductive_safety",
        "no double proposal + accepted block => still none (any history length)",
        [
            h.n >= 0,
            h.forall_pairs(lambda a, b: z3.Not(spec_is_slashable_block_pair(a, b))),
            model.is_block_acceptable(slot, r, h, h.n > 0, min_slot),
        ],
        extended.forall_pairs(lambda a, b: z3.Not(spec_is_slashable_block_pair(a, b))),
    )


def minification_soundness(model: ModuleType = rules) -> ProofResult:
    atts, blks = SymbolicHistory.fresh("att", 3), SymbolicHistory.fresh("blk", 2)
    s, t, r, min_s, min_t, max_s, max_t = z3.Ints("s t r min_s min_t max_s max_t")
    slot, br, min_slot, max_slot = z3.Ints("slot br min_slot max_slot")
    attestations = check_valid(
        "minification_soundness.attestations",
        "minimal DB accepts attestation => complete DB accepts it",
        [
            atts.n >= 0,
            z3.Implies(atts.n > 0, atts.are_lower_bounds((min_s, min_t), (0, 1))),
            atts.forall(lambda rec: z3.And(rec[0] <= max_s, rec[1] <= max_t)),
            model.is_attestation_beyond_minimal(s, t, max_s, max_t),
        ],
        model.is_attestation_acceptable(s, t, r, atts, atts.n > 0, min_s, min_t),
    )
    blocks = check_valid(
        "minification_soundness.blocks",
        "minimal DB accepts block => complete DB accepts it",
        [
            blks.n >= 0,
            z3.Implies(blks.n > 0, blks.are_lower_bounds((min_slot,), (0,))),
            blks.forall(lambda rec: rec[0] <= max_slot),
            model.is_block_beyond_minimal(slot, max_slot),
        ],
        model.is_block_acceptable(slot, br, blks, blks.n > 0, min_slot),
    )
    return all_of(
        "minification_soundness",
        "whatever the minified (watermark-only) DB accepts, the full DB accepts",
        [attestations, blocks],
    )


def staircase(h: SymbolicHistory) -> z3.BoolRef:
    """Sorted by target, sources never decrease; records sharing a target are identical."""
    return h.forall_pairs(
        lambda a, b: z3.And(
            z3.Implies(a[1] < b[1], a[0] <= b[0]),
            z3.Implies(a[1] == b[1], z3.And(a[0] == b[0], a[2] == b[2])),
        )
    )


def neighbour_check_sufficiency(
    model: ModuleType = rules, neighbours: tuple[str, ...] = ("same", "below", "above")
) -> ProofResult:
    h = SymbolicHistory.fresh("att", 3)
    s, t, r, min_s, min_t, p, q = z3.Ints("s t r min_s min_t p q")
    has_p, has_q, has_wm = z3.Bools("has_below has_above has_watermark")
    i = z3.Int("k")
    in_h = z3.And(i >= 0, i < h.n)
    T = h.arrays[1]
    nearest = [
        # p is the record with the greatest target below t, if any; q the least target above t.
        z3.Implies(
            has_p,
            z3.And(
                p >= 0, p < h.n, T[p] < t, z3.ForAll([i], z3.Implies(z3.And(in_h, T[i] < t), T[i] <= T[p]))
            ),
        ),
        z3.Implies(z3.Not(has_p), z3.ForAll([i], z3.Implies(in_h, T[i] >= t))),
        z3.Implies(
            has_q,
            z3.And(
                q >= 0, q < h.n, T[q] > t, z3.ForAll([i], z3.Implies(z3.And(in_h, T[i] > t), T[i] >= T[q]))
            ),
        ),
        z3.Implies(z3.Not(has_q), z3.ForAll([i], z3.Implies(in_h, T[i] <= t))),
    ]
    picks = {
        "same": lambda k: T[k] == t,
        "below": lambda k: z3.And(has_p, k == p),
        "above": lambda k: z3.And(has_q, k == q),
    }
    relevant = h.restricted(lambda k: z3.Or(*[picks[name](k) for name in neighbours]))
    full = model.is_attestation_acceptable(s, t, r, h, has_wm, min_s, min_t)
    picked = model.is_attestation_acceptable(s, t, r, relevant, has_wm, min_s, min_t)
    return check_valid(
        "neighbour_check_sufficiency",
        "on a staircase history, same-target + nearest below/above records decide like the whole history",
        [h.n >= 0, staircase(h), *nearest],
        full == picked,
    )


def pruning_soundness(model: ModuleType = rules) -> ProofResult:
    h = SymbolicHistory.fresh("att", 3)
    s, t, r, cut, kmin_s, kmin_t = z3.Ints("s t r cut kept_min_s kept_min_t")
    kept = h.restricted(lambda k: h.arrays[1][k] >= cut)
    attestations = check_valid(
        "pruning_soundness.attestations",
        "pruned staircase DB (targets >= cut, its own low watermarks) accepts => no slashable pair with the full history",
        [
            h.n > 0,
            staircase(h),
            kept.exists(lambda rec: z3.BoolVal(True)),
            kept.are_lower_bounds((kmin_s, kmin_t), (0, 1)),
            model.is_attestation_acceptable(s, t, r, kept, True, kmin_s, kmin_t),
        ],
        h.forall(lambda rec: z3.Not(spec_slashable_either_order((s, t, r), rec))),
    )
    b = SymbolicHistory.fresh("blk", 2)
    slot, br, bcut, kmin_slot = z3.Ints("slot br bcut kept_min_slot")
    bkept = b.restricted(lambda k: b.arrays[0][k] >= bcut)
    blocks = check_valid(
        "pruning_soundness.blocks",
        "pruned block DB (slots >= cut, its own low watermark) accepts => no double proposal with the full history",
        [
            b.n > 0,
            b.forall_pairs(lambda x, y: z3.Not(spec_is_slashable_block_pair(x, y))),
            bkept.exists(lambda rec: z3.BoolVal(True)),
            bkept.are_lower_bounds((kmin_slot,), (0,)),
            model.is_block_acceptable(slot, br, bkept, True, kmin_slot),
        ],
        b.forall(lambda rec: z3.Not(spec_is_slashable_block_pair((slot, br), rec))),
    )
    return all_of(
        "pruning_soundness",
        "low watermarks after pruning refuse all the full history would refuse",
        [attestations, blocks],
    )


THEOREMS = [
    Theorem(
        "attestation_inductive_safety",
        "no slashable attestation pair is ever recorded",
        attestation_inductive_safety,
    ),
    Theorem("block_inductive_safety", "no double proposal is ever recorded", block_inductive_safety),
    Theorem(
        "minification_soundness",
        "minimal (watermark) DB never accepts more than the complete DB",
        minification_soundness,
    ),
    Theorem(
        "neighbour_check_sufficiency",
        "the store's neighbour query decides like a full scan",
        neighbour_check_sufficiency,
    ),
    Theorem("pruning_soundness", "pruning with low watermarks stays safe", pruning_soundness),
]
