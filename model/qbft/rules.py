"""QBFT's safety rules: fault tolerance, quorum, signing threshold, leader, and the justification checks.

Decides *whether* a set of messages is enough: a quorum, a justified PRE-PREPARE, a justified
ROUND-CHANGE, a commit certificate. It keeps no state and sends nothing (that is `qbft`).

Every predicate is written with `model.logic` (And/Or/If/Sum/...) over plain values, so it runs twice:
on Python ints/strings in `qbft.step`, and on Z3 terms in `proofs/qbft.py`, which proves quorum
intersection and agreement about *these* functions (ARCHITECTURE.md, "rules that run twice").

Justifications reach the predicates as *slots*: one slot per possible sender 1..N, filled from the
messages by `round_change_slots` / `vote_slots`. Those two functions are where a concrete justification
is rejected for a duplicate or out-of-range sender, a foreign instance, or a message of the wrong type;
after them, distinct senders hold by construction, which is exactly how the proofs model a quorum (one
Boolean "present" per node).

    F = floor((N - 1) / 3)         Byzantine co-validators tolerated
    Q = ceil((N + F + 1) / 2)      QBFT quorum: two quorums share >= F + 1 nodes, so an honest one
    M = ceil(2N / 3)               M-of-N signing threshold (Shamir): >= F + 1 shares, so an honest one
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

from covalidator.model.duty import DutyId
from covalidator.model.logic import And, CeilDiv, FloorDiv, If, Implies, Or, Sum
from covalidator.model.qbft.messages import NO_HASH, NOT_PREPARED, Message, MsgType

QuorumSize = Callable[[Any], Any]


def fault_tolerance(n: Any) -> Any:
    """F: the number of Byzantine co-validators an N-node cluster tolerates."""
    return FloorDiv(n - 1, 3)


def quorum_size(n: Any) -> Any:
    """Q = ceil((N + F + 1) / 2), the size of a QBFT quorum (equals ceil(2N/3) for every N >= 1)."""
    return CeilDiv(n + fault_tolerance(n) + 1, 2)


def signing_threshold(n: Any) -> Any:
    """M = ceil(2N / 3): partial signatures needed to combine the validator's signature."""
    return CeilDiv(2 * n, 3)


def is_safe_threshold(n: Any, m: Any, fault_tolerance: QuorumSize = fault_tolerance) -> Any:
    """M-of-N signing is safe with F Byzantine co-validators: M <= N, and any two signing sets of M
    share at least F + 1 nodes (2M - N >= F + 1, i.e. M > (N + F) / 2), so an honest one that
    persisted both messages and refused the second (theorem dv_safety, proved for exactly these)."""
    return And(m >= 1, m <= n, 2 * m - n >= fault_tolerance(n) + 1)


def smallest_safe_threshold(n: int) -> int:
    """The least M `is_safe_threshold` accepts for N (equals `signing_threshold(N)`, the default)."""
    return next(m for m in range(1, n + 1) if is_safe_threshold(n, m))


def threshold_refusal(n: int, m: int) -> str | None:
    """None for a safe M-of-N; else one line naming the bound and why (the lock, create-cluster and
    the node's configuration all refuse with it)."""
    if is_safe_threshold(n, m):
        return None
    f = fault_tolerance(n)
    if not 1 <= m <= n:
        return f"threshold {m} is outside [1, N] for N = {n} operators"
    low = smallest_safe_threshold(n)
    return (
        f"threshold {m} is unsafe for N = {n} operators: two signing sets of {m} share only 2M - N = "
        f"{2 * m - n} operator(s), fewer than F + 1 = {f + 1} (F = {f} Byzantine tolerated), so two "
        f"slashable messages could both be signed; M must exceed (N + F) / 2 = {(n + f) / 2:g}: use "
        f"{low}..{n} (theorem dv_safety)"
    )


def is_quorum(count: Any, n: Any, quorum_size: QuorumSize = quorum_size) -> Any:
    return count >= quorum_size(n)


def is_round_change_jump(count: Any, n: Any, fault_tolerance: QuorumSize = fault_tolerance) -> Any:
    """F + 1 ROUND-CHANGEs for higher rounds include an honest one: safe to jump ahead."""
    return count >= fault_tolerance(n) + 1


def leader(slot: int, kind_index: int, round: int, n: int) -> int:
    """The share index (1..N) that proposes in `round`: ((slot + kind_index + round) mod N) + 1."""
    return (slot + kind_index + round) % n + 1


# --- slots: one per possible sender; how the proofs see a set of messages -----------------------------


class RoundChangeSlot(NamedTuple):
    present: Any  # bool: a ROUND-CHANGE from this sender is in the set
    round: Any
    prepared_round: Any
    prepared_hash: Any


class VoteSlot(NamedTuple):
    present: Any  # bool: a PREPARE/COMMIT from this sender is in the set
    round: Any
    value: Any


def round_change_slots(n: int, instance: DutyId, messages: Iterable[Message]) -> list[RoundChangeSlot] | None:
    """ROUND-CHANGEs as N slots; None when a sender is duplicated, out of range, or a message is foreign."""
    slots = [RoundChangeSlot(False, 0, NOT_PREPARED, NO_HASH)] * n
    for m in messages:
        if m.type != MsgType.ROUND_CHANGE or m.instance != instance or not 1 <= m.sender <= n:
            return None
        if slots[m.sender - 1].present:
            return None
        slots[m.sender - 1] = RoundChangeSlot(True, m.round, m.prepared_round, m.prepared_hash)
    return slots


def vote_slots(n: int, instance: DutyId, kind: MsgType, messages: Iterable[Message]) -> list[VoteSlot] | None:
    """PREPAREs or COMMITs as N slots; None when a sender is duplicated, out of range, or foreign."""
    slots = [VoteSlot(False, 0, NO_HASH)] * n
    for m in messages:
        if m.type != kind or m.instance != instance or not 1 <= m.sender <= n:
            return None
        if slots[m.sender - 1].present:
            return None
        slots[m.sender - 1] = VoteSlot(True, m.round, m.value_hash)
    return slots


def count_present(slots: Sequence[RoundChangeSlot] | Sequence[VoteSlot]) -> Any:
    return Sum(*[s.present for s in slots])


def highest_prepared_round(rcs: Sequence[RoundChangeSlot]) -> Any:
    """The highest prepared round reported in the set (0 = none prepared): the paper's HighestPrepared."""
    highest: Any = NOT_PREPARED
    for s in rcs:
        highest = If(And(s.present, s.prepared_round > highest), s.prepared_round, highest)
    return highest


def is_vote_quorum(
    n: Any, round: Any, value: Any, votes: Sequence[VoteSlot], quorum_size: QuorumSize = quorum_size
) -> Any:
    """A quorum of votes (PREPAREs or COMMITs, already of one type) all for `round` and `value`."""
    return And(
        is_quorum(count_present(votes), n, quorum_size),
        *[Implies(v.present, And(v.round == round, v.value == value)) for v in votes],
    )


def is_justified_round_change(
    n: Any,
    round: Any,
    prepared_round: Any,
    prepared_hash: Any,
    prepares: Sequence[VoteSlot],
    quorum_size: QuorumSize = quorum_size,
) -> Any:
    """A ROUND-CHANGE is acceptable if it claims nothing prepared, or proves its claim with a quorum of
    PREPAREs for an earlier round."""
    return Or(
        prepared_round == NOT_PREPARED,
        And(
            prepared_round >= 1,
            prepared_round < round,
            is_vote_quorum(n, prepared_round, prepared_hash, prepares, quorum_size),
        ),
    )


def is_justified_proposal(
    n: Any,
    round: Any,
    value: Any,
    rcs: Sequence[RoundChangeSlot],
    prepares: Sequence[VoteSlot],
    quorum_size: QuorumSize = quorum_size,
) -> Any:
    """JustifyPrePrepare (Moniz, Algorithm 4): round 1 needs nothing; a later round needs a quorum of
    ROUND-CHANGEs for that round and either
      J1: none of them prepared anything (any valid value may be proposed), or
      J2: the value is the one prepared in the highest prepared round among them, proven by a quorum of
          PREPAREs for that round and value.
    (That the sender is the round's leader is checked by the caller.)"""
    highest = highest_prepared_round(rcs)
    rc_quorum = And(
        is_quorum(count_present(rcs), n, quorum_size),
        *[Implies(s.present, s.round == round) for s in rcs],
    )
    j1 = highest == NOT_PREPARED
    j2 = And(
        highest >= 1,
        highest < round,
        Or(*[And(s.present, s.prepared_round == highest, s.prepared_hash == value) for s in rcs]),
        is_vote_quorum(n, highest, value, prepares, quorum_size),
    )
    return Or(round == 1, And(rc_quorum, Or(j1, j2)))


def is_commit_certificate(
    n: Any, round: Any, value: Any, commits: Sequence[VoteSlot], quorum_size: QuorumSize = quorum_size
) -> Any:
    """A DECIDED message is acceptable only with a quorum of COMMITs for its round and value."""
    return is_vote_quorum(n, round, value, commits, quorum_size)


class Rules(NamedTuple):
    """The rule functions `qbft.step` uses; tests plant bugs by replacing one (see the simulator)."""

    quorum_size: QuorumSize = quorum_size
    fault_tolerance: QuorumSize = fault_tolerance
    is_round_change_jump: Callable[..., Any] = is_round_change_jump
    is_justified_proposal: Callable[..., Any] = is_justified_proposal
    is_justified_round_change: Callable[..., Any] = is_justified_round_change
    is_commit_certificate: Callable[..., Any] = is_commit_certificate


RULES = Rules()
