"""EIP-3076 slashing protection: may this validator sign this attestation or block?

Pure rules, no storage. Every predicate here is written with `model.logic`, so it evaluates on Python
values at run time and builds Z3 terms in `proofs/slashing.py`, which proves these very functions.

Vocabulary (the consensus specs' and EIP-3076's):
- an attestation record is (source_epoch, target_epoch, signing_root); a block record is
  (slot, signing_root); a signing root may be unknown (None; in Z3 a negative integer);
- two records are the *same message* when their signing roots are both known and equal (and, for
  attestations, source and target are equal too): re-signing the same message is never slashable;
- double vote: two different attestations with the same target epoch;
- surround vote: source_1 < source_2 and target_2 < target_1 (the first surrounds the second);
- double proposal: two different blocks for the same slot.

A *complete* DB keeps every record; its checks are `check_attestation` / `check_block` against the
records plus the EIP's low watermarks (the minimum source, target and slot in the DB): refuse
source < min source, target <= min target, slot <= min slot, except the exact re-signing of a message
already in the DB. A *minimal* DB keeps only the watermarks left by minification
(max source, max target, max slot) and refuses anything not strictly beyond them
(`check_attestation_minimal` / `check_block_minimal`); `proofs/slashing.py` shows that whatever it
accepts the complete DB accepts too.

The store only hands `check_attestation` the records that can matter (same target, and the nearest
target below and above): on a history without slashable pairs, sorted by target, sources never
decrease (a "staircase"), so those neighbours are the strongest witnesses; `proofs/slashing.py`
proves that checking them gives the same verdict as checking the whole history.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from covalidator.model.logic import AllOf, And, AnyOf, Not, Or, is_symbolic

# Rule functions accept Python ints/bytes at run time and Z3 terms in proofs.
Term = Any

UINT64_MAX = 2**64 - 1


@dataclass(frozen=True)
class SignedAttestation:
    source_epoch: int
    target_epoch: int
    signing_root: bytes | None = None


@dataclass(frozen=True)
class SignedBlock:
    slot: int
    signing_root: bytes | None = None


class Refusal(StrEnum):
    """Why a message is refused; the CLI and the node model name these."""

    SOURCE_EXCEEDS_TARGET = "source_exceeds_target"
    DOUBLE_VOTE = "double_vote"
    SURROUNDING_VOTE = "surrounding_vote"  # the new attestation surrounds a recorded one
    SURROUNDED_VOTE = "surrounded_vote"  # a recorded attestation surrounds the new one
    SOURCE_BELOW_MIN = "source_below_low_watermark"
    TARGET_NOT_ABOVE_MIN = "target_not_above_low_watermark"
    DOUBLE_PROPOSAL = "double_proposal"
    SLOT_NOT_ABOVE_MIN = "slot_not_above_low_watermark"


@dataclass(frozen=True)
class Verdict:
    """The answer to "may I sign this?": safe, or the rule it breaks and the record it conflicts with."""

    safe: bool
    refusal: Refusal | None = None
    conflict: SignedAttestation | SignedBlock | None = None
    repeat: bool = False  # safe because the identical message is already recorded: nothing to add
    detail: str = ""

    def describe(self) -> str:
        if self.safe:
            return "safe (repeat of a recorded message)" if self.repeat else "safe"
        assert self.refusal is not None
        if self.conflict is not None:
            return f"{self.refusal.value} with recorded {_describe(self.conflict)}"
        return f"{self.refusal.value} ({self.detail})" if self.detail else self.refusal.value


def _describe(record: SignedAttestation | SignedBlock | None) -> str:
    if isinstance(record, SignedAttestation):
        root = "0x" + record.signing_root.hex() if record.signing_root is not None else "none"
        return f"attestation source={record.source_epoch} target={record.target_epoch} signing_root={root}"
    if isinstance(record, SignedBlock):
        root = "0x" + record.signing_root.hex() if record.signing_root is not None else "none"
        return f"block slot={record.slot} signing_root={root}"
    return "watermark"


# ---------------------------------------------------------------------------------------------------
# The rules, dual-executable.


def is_known_root(root: Term) -> Term:
    """A signing root is known (bytes at run time; a non-negative integer in Z3)."""
    if is_symbolic(root):
        return root >= 0
    return root is not None


def is_same_root(root_1: Term, root_2: Term) -> Term:
    return And(is_known_root(root_1), is_known_root(root_2), root_1 == root_2)


def is_same_attestation(s1: Term, t1: Term, r1: Term, s2: Term, t2: Term, r2: Term) -> Term:
    return And(s1 == s2, t1 == t2, is_same_root(r1, r2))


def is_double_vote(s1: Term, t1: Term, r1: Term, s2: Term, t2: Term, r2: Term) -> Term:
    return And(t1 == t2, Not(is_same_attestation(s1, t1, r1, s2, t2, r2)))


def is_surround_vote(s1: Term, t1: Term, s2: Term, t2: Term) -> Term:
    """The first attestation surrounds the second."""
    return And(s1 < s2, t2 < t1)


def is_slashable_attestation_pair(s1: Term, t1: Term, r1: Term, s2: Term, t2: Term, r2: Term) -> Term:
    """The consensus specs' `is_slashable_attestation_data`, in either order."""
    return Or(
        is_double_vote(s1, t1, r1, s2, t2, r2),
        is_surround_vote(s1, t1, s2, t2),
        is_surround_vote(s2, t2, s1, t1),
    )


def is_attestation_below_watermark(s: Term, t: Term, min_source: Term, min_target: Term) -> Term:
    """EIP-3076 low watermarks: source < min source, or target <= min target."""
    return Or(s < min_source, t <= min_target)


def is_same_block(slot_1: Term, r1: Term, slot_2: Term, r2: Term) -> Term:
    return And(slot_1 == slot_2, is_same_root(r1, r2))


def is_slashable_block_pair(slot_1: Term, r1: Term, slot_2: Term, r2: Term) -> Term:
    """Double proposal: the same slot, not the same block."""
    return And(slot_1 == slot_2, Not(is_same_block(slot_1, r1, slot_2, r2)))


def is_block_below_watermark(slot: Term, min_slot: Term) -> Term:
    return slot <= min_slot


def is_attestation_beyond_minimal(s: Term, t: Term, max_source: Term, max_target: Term) -> Term:
    """What a minimal (watermark-only) DB accepts: source >= max source and target > max target."""
    return And(s <= t, s >= max_source, t > max_target)


def is_block_beyond_minimal(slot: Term, max_slot: Term) -> Term:
    return slot > max_slot


# ---------------------------------------------------------------------------------------------------
# Acceptance by a complete DB, dual-executable. `records` is a sequence of (source, target, root)
# tuples at run time, or a symbolic array of unbounded length in proofs/. It may be the whole history
# or, on a staircase history, only the records that can matter (see the module docstring); the
# watermarks are always those of the whole DB, and apply only when it holds at least one record.


def is_attestation_acceptable(
    s: Term, t: Term, root: Term, records: Any, has_watermark: Term, min_source: Term, min_target: Term
) -> Term:
    repeat = AnyOf(records, lambda rec: is_same_attestation(s, t, root, *rec))
    return And(
        s <= t,
        AllOf(records, lambda rec: Not(is_slashable_attestation_pair(s, t, root, *rec))),
        Or(Not(has_watermark), repeat, Not(is_attestation_below_watermark(s, t, min_source, min_target))),
    )


def is_block_acceptable(slot: Term, root: Term, records: Any, has_watermark: Term, min_slot: Term) -> Term:
    repeat = AnyOf(records, lambda rec: is_same_block(slot, root, *rec))
    return And(
        AllOf(records, lambda rec: Not(is_slashable_block_pair(slot, root, *rec))),
        Or(Not(has_watermark), repeat, Not(is_block_below_watermark(slot, min_slot))),
    )


# ---------------------------------------------------------------------------------------------------
# Checks with reasons (run time): the decision is the dual predicate above; the reason is found after.


@dataclass(frozen=True)
class AttestationWatermark:
    min_source: int
    min_target: int


def attestation_watermark(records: Iterable[SignedAttestation]) -> AttestationWatermark | None:
    records = list(records)
    if not records:
        return None
    return AttestationWatermark(min(r.source_epoch for r in records), min(r.target_epoch for r in records))


def check_attestation(
    candidate: SignedAttestation,
    records: Iterable[SignedAttestation],
    watermark: AttestationWatermark | None,
) -> Verdict:
    s, t, root = candidate.source_epoch, candidate.target_epoch, candidate.signing_root
    records = list(records)
    tuples = [(r.source_epoch, r.target_epoch, r.signing_root) for r in records]
    mins = (watermark.min_source, watermark.min_target) if watermark is not None else (0, 0)
    repeat = any(is_same_attestation(s, t, root, *rec) for rec in tuples)
    if is_attestation_acceptable(s, t, root, tuples, watermark is not None, *mins):
        return Verdict(True, repeat=repeat)
    if s > t:
        return Verdict(False, Refusal.SOURCE_EXCEEDS_TARGET)
    # Reasons in a fixed priority, so the verdict does not depend on the order of the records.
    for refusal in (Refusal.DOUBLE_VOTE, Refusal.SURROUNDING_VOTE, Refusal.SURROUNDED_VOTE):
        for r in records:
            if _breaks(refusal, candidate, r):
                return Verdict(False, refusal, r)
    assert watermark is not None, "refused without a conflicting record or a watermark"
    if s < watermark.min_source:
        return Verdict(False, Refusal.SOURCE_BELOW_MIN, detail=f"min source epoch {watermark.min_source}")
    return Verdict(False, Refusal.TARGET_NOT_ABOVE_MIN, detail=f"min target epoch {watermark.min_target}")


def _breaks(refusal: Refusal, c: SignedAttestation, r: SignedAttestation) -> bool:
    if refusal is Refusal.DOUBLE_VOTE:
        return bool(
            is_double_vote(
                c.source_epoch, c.target_epoch, c.signing_root, r.source_epoch, r.target_epoch, r.signing_root
            )
        )
    if refusal is Refusal.SURROUNDING_VOTE:
        return bool(is_surround_vote(c.source_epoch, c.target_epoch, r.source_epoch, r.target_epoch))
    return bool(is_surround_vote(r.source_epoch, r.target_epoch, c.source_epoch, c.target_epoch))


def check_block(candidate: SignedBlock, records: Iterable[SignedBlock], min_slot: int | None) -> Verdict:
    records = list(records)
    tuples = [(r.slot, r.signing_root) for r in records]
    repeat = any(is_same_block(candidate.slot, candidate.signing_root, *rec) for rec in tuples)
    if is_block_acceptable(
        candidate.slot, candidate.signing_root, tuples, min_slot is not None, min_slot or 0
    ):
        return Verdict(True, repeat=repeat)
    for r in records:
        if is_slashable_block_pair(candidate.slot, candidate.signing_root, r.slot, r.signing_root):
            return Verdict(False, Refusal.DOUBLE_PROPOSAL, r)
    return Verdict(False, Refusal.SLOT_NOT_ABOVE_MIN, detail=f"min slot {min_slot}")


def is_staircase(history: Iterable[SignedAttestation]) -> bool:
    """Sorted by target, sources never decrease and targets are distinct (after removing repeats).

    Every history without slashable attestation pairs is a staircase; the store uses the fast
    neighbour check only for staircases and checks every record otherwise.
    """
    by_target: dict[int, SignedAttestation] = {}
    for r in history:
        seen = by_target.get(r.target_epoch)
        if seen is not None and seen != r:
            return False
        by_target[r.target_epoch] = r
    ordered = [by_target[t] for t in sorted(by_target)]
    return all(a.source_epoch <= b.source_epoch for a, b in itertools.pairwise(ordered))


# ---------------------------------------------------------------------------------------------------
# A minimal DB: only watermarks (after EIP-3076 minification).


@dataclass(frozen=True)
class MinimalRecord:
    max_source: int | None = None
    max_target: int | None = None
    max_slot: int | None = None


def minify(attestations: Iterable[SignedAttestation], blocks: Iterable[SignedBlock]) -> MinimalRecord:
    atts, blks = list(attestations), list(blocks)
    return MinimalRecord(
        max((a.source_epoch for a in atts), default=None),
        max((a.target_epoch for a in atts), default=None),
        max((b.slot for b in blks), default=None),
    )


def check_attestation_minimal(candidate: SignedAttestation, minimal: MinimalRecord) -> Verdict:
    """The decision is `is_attestation_beyond_minimal` (theorem minification_soundness); the reason is
    found after."""
    s, t = candidate.source_epoch, candidate.target_epoch
    if minimal.max_source is None or minimal.max_target is None:
        accepted = is_attestation_beyond_minimal(s, t, s, -1)  # no watermark: only source <= target
    else:
        accepted = is_attestation_beyond_minimal(s, t, minimal.max_source, minimal.max_target)
    if accepted:
        return Verdict(True)
    if s > t:
        return Verdict(False, Refusal.SOURCE_EXCEEDS_TARGET)
    if minimal.max_source is not None and s < minimal.max_source:
        return Verdict(False, Refusal.SOURCE_BELOW_MIN, detail=f"watermark source epoch {minimal.max_source}")
    return Verdict(False, Refusal.TARGET_NOT_ABOVE_MIN, detail=f"watermark target epoch {minimal.max_target}")


def check_block_minimal(candidate: SignedBlock, minimal: MinimalRecord) -> Verdict:
    if minimal.max_slot is not None and not is_block_beyond_minimal(candidate.slot, minimal.max_slot):
        return Verdict(False, Refusal.SLOT_NOT_ABOVE_MIN, detail=f"watermark slot {minimal.max_slot}")
    return Verdict(True)
