"""QBFT rules: quorum arithmetic, leader, justification slots and predicates, timers.

The predicates run twice (Python values in `step`, Z3 terms in the proofs); the property at the end
checks that both executions agree on random inputs.
"""

from __future__ import annotations

import math

import z3
from hypothesis import given, settings
from hypothesis import strategies as st

from covalidator.model.duty import DutyId, DutyKind
from covalidator.model.qbft.messages import Message, MsgType
from covalidator.model.qbft.rules import (
    RoundChangeSlot,
    VoteSlot,
    fault_tolerance,
    highest_prepared_round,
    is_commit_certificate,
    is_justified_proposal,
    is_justified_round_change,
    is_quorum,
    is_round_change_jump,
    leader,
    quorum_size,
    round_change_slots,
    signing_threshold,
    vote_slots,
)
from covalidator.model.qbft.timers import round_at, round_deadline

DUTY = DutyId(100, DutyKind.ATTESTER)


def rc(sender: int, round: int, pr: int = 0, ph: str = "") -> Message:
    return Message(MsgType.ROUND_CHANGE, DUTY, sender, round, "", pr, ph)


def vote(kind: MsgType, sender: int, round: int, value: str) -> Message:
    return Message(kind, DUTY, sender, round, value)


def test_quorum_table() -> None:
    # N: (F, Q, M) -- the sizes clusters actually run with
    expected = {
        1: (0, 1, 1),
        3: (0, 2, 2),
        4: (1, 3, 3),
        5: (1, 4, 4),
        7: (2, 5, 5),
        10: (3, 7, 7),
        13: (4, 9, 9),
    }
    for n, (f, q, m) in expected.items():
        assert (fault_tolerance(n), quorum_size(n), signing_threshold(n)) == (f, q, m), n


def test_quorum_formula_for_many_n() -> None:
    for n in range(1, 200):
        f = (n - 1) // 3
        assert fault_tolerance(n) == f
        assert quorum_size(n) == math.ceil((n + f + 1) / 2) == math.ceil(2 * n / 3)
        assert 2 * quorum_size(n) - n >= f + 1  # two quorums share an honest node
        assert quorum_size(n) <= n - f  # the honest nodes alone form a quorum


def test_leader_rotates_over_share_indices() -> None:
    n = 4
    leaders = [leader(10, int(DutyKind.ATTESTER), r, n) for r in range(1, 9)]
    assert leaders == [(10 + 1 + r) % 4 + 1 for r in range(1, 9)]
    assert sorted(leaders[:4]) == [1, 2, 3, 4]
    assert leader(10, int(DutyKind.PROPOSER), 1, n) != leader(10, int(DutyKind.ATTESTER), 1, n)


def test_slots_reject_duplicate_out_of_range_foreign_and_mistyped_senders() -> None:
    n = 4
    assert round_change_slots(n, DUTY, [rc(1, 2), rc(2, 2), rc(3, 2)]) is not None
    assert round_change_slots(n, DUTY, [rc(1, 2), rc(1, 2), rc(3, 2)]) is None  # duplicate sender
    assert round_change_slots(n, DUTY, [rc(1, 2), rc(5, 2)]) is None  # out of range
    assert round_change_slots(n, DUTY, [rc(0, 2)]) is None
    foreign = Message(MsgType.ROUND_CHANGE, DutyId(101, DutyKind.ATTESTER), 2, 2)
    assert round_change_slots(n, DUTY, [rc(1, 2), foreign]) is None
    assert round_change_slots(n, DUTY, [vote(MsgType.PREPARE, 1, 1, "0xa")]) is None
    assert vote_slots(n, DUTY, MsgType.PREPARE, [vote(MsgType.COMMIT, 1, 1, "0xa")]) is None
    slots = vote_slots(n, DUTY, MsgType.PREPARE, [vote(MsgType.PREPARE, 3, 1, "0xa")])
    assert slots is not None and [s.present for s in slots] == [False, False, True, False]


def justified(round: int, value: str, rcs: list[Message], prepares: list[Message], n: int = 4) -> bool:
    rc_slots = round_change_slots(n, DUTY, rcs)
    prepare_slots = vote_slots(n, DUTY, MsgType.PREPARE, prepares)
    assert rc_slots is not None and prepare_slots is not None
    return bool(is_justified_proposal(n, round, value, rc_slots, prepare_slots))


def test_proposal_justification_j1_j2() -> None:
    # round 1 needs nothing
    assert justified(1, "0xany", [], [])
    # J1: a quorum of unprepared ROUND-CHANGEs for the round: any value
    assert justified(3, "0xany", [rc(1, 3), rc(2, 3), rc(4, 3)], [])
    assert not justified(3, "0xany", [rc(1, 3), rc(2, 3)], [])  # not a quorum
    assert not justified(3, "0xany", [rc(1, 3), rc(2, 3), rc(4, 2)], [])  # one is for another round
    # J2: the highest prepared round's value with its prepare quorum
    rcs = [rc(1, 3, 1, "0xold"), rc(2, 3, 2, "0xv"), rc(4, 3)]
    prepares = [vote(MsgType.PREPARE, s, 2, "0xv") for s in (1, 2, 3)]
    assert justified(3, "0xv", rcs, prepares)
    assert not justified(3, "0xw", rcs, prepares)  # not the prepared value
    assert not justified(3, "0xv", rcs, prepares[:2])  # prepares not a quorum
    assert not justified(3, "0xold", rcs, [vote(MsgType.PREPARE, s, 1, "0xold") for s in (1, 2, 3)])  # lower
    assert not justified(
        3, "0xv", rcs, [vote(MsgType.PREPARE, s, 1, "0xv") for s in (1, 2, 3)]
    )  # wrong round
    assert not justified(3, "0xv", rcs, [])  # a prepared claim needs its certificate


def test_round_change_and_commit_certificates() -> None:
    prepares = vote_slots(4, DUTY, MsgType.PREPARE, [vote(MsgType.PREPARE, s, 2, "0xv") for s in (1, 2, 4)])
    assert prepares is not None
    assert is_justified_round_change(4, 3, 0, "", [])
    assert is_justified_round_change(4, 3, 2, "0xv", prepares)
    assert not is_justified_round_change(4, 2, 2, "0xv", prepares)  # prepared round must be earlier
    assert not is_justified_round_change(4, 3, 2, "0xw", prepares)
    commits = vote_slots(4, DUTY, MsgType.COMMIT, [vote(MsgType.COMMIT, s, 5, "0xv") for s in (2, 3, 4)])
    assert commits is not None
    assert is_commit_certificate(4, 5, "0xv", commits)
    assert not is_commit_certificate(4, 5, "0xw", commits)
    assert not is_commit_certificate(4, 4, "0xv", commits)


def test_highest_prepared_round_ignores_absent_slots() -> None:
    slots = [
        RoundChangeSlot(False, 3, 9, "0xa"),
        RoundChangeSlot(True, 3, 2, "0xb"),
        RoundChangeSlot(True, 3, 0, ""),
    ]
    assert highest_prepared_round(slots) == 2


@given(
    st.integers(1, 6),
    st.lists(
        st.tuples(st.booleans(), st.integers(1, 4), st.integers(0, 3), st.integers(0, 2)),
        min_size=5,
        max_size=5,
    ),
    st.lists(st.tuples(st.booleans(), st.integers(0, 3), st.integers(0, 2)), min_size=5, max_size=5),
    st.integers(0, 2),
    st.integers(1, 4),
)
@settings(max_examples=150, deadline=None)
def test_predicates_agree_on_python_values_and_z3_terms(
    n_minus: int,
    rcs: list[tuple[bool, int, int, int]],
    prepares: list[tuple[bool, int, int]],
    value: int,
    round: int,
) -> None:
    """The same function, evaluated concretely and as a Z3 term over constants, gives the same answer."""
    n = 5
    concrete_rcs = [RoundChangeSlot(p, r, pr, ph) for p, r, pr, ph in rcs]
    concrete_prepares = [VoteSlot(p, r, v) for p, r, v in prepares]
    symbolic_rcs = [
        RoundChangeSlot(z3.BoolVal(p), z3.IntVal(r), z3.IntVal(pr), z3.IntVal(ph)) for p, r, pr, ph in rcs
    ]
    symbolic_prepares = [VoteSlot(z3.BoolVal(p), z3.IntVal(r), z3.IntVal(v)) for p, r, v in prepares]
    concrete = is_justified_proposal(n, round, value, concrete_rcs, concrete_prepares)
    symbolic = z3.simplify(
        is_justified_proposal(
            z3.IntVal(n), z3.IntVal(round), z3.IntVal(value), symbolic_rcs, symbolic_prepares
        )
    )
    assert z3.is_true(symbolic) == bool(concrete) and z3.is_false(symbolic) != bool(concrete)
    concrete_q = quorum_size(n_minus + 3)
    assert z3.simplify(quorum_size(z3.IntVal(n_minus + 3))).as_long() == concrete_q


@given(st.integers(0, 10**6), st.integers(1, 40), st.integers(100, 5000), st.integers(0, 500))
def test_round_deadlines_and_round_at_agree(start: int, round: int, duration: int, increase: int) -> None:
    end = round_deadline(start, round, duration, increase)
    begin = round_deadline(start, round - 1, duration, increase) if round > 1 else start
    assert end - begin == duration + (round - 1) * increase
    assert round_at(start, begin, duration, increase) == round
    assert round_at(start, end - 1, duration, increase) == round
    assert round_at(start, end, duration, increase) == round + 1
    assert round_at(start, start - 1, duration, increase) == 1
    if increase == 0:
        assert end == start + round * duration


def test_j2_needs_a_round_change_that_reports_the_proposed_value_itself() -> None:
    """Moniz's J2: the proposed value must be the one a ROUND-CHANGE reports for the highest prepared
    round. A prepare quorum for the value is not enough when the only report of that round names another
    value (a Byzantine node's, say), whatever the order of the two hashes."""
    prepares = [vote(MsgType.PREPARE, s, 2, "0xv") for s in (1, 2, 3)]
    for other in ("0xa", "0xz"):  # below and above "0xv"
        rcs = [rc(1, 3, 2, other), rc(2, 3), rc(4, 3)]
        assert not justified(3, "0xv", rcs, prepares), other
        # the value reported for an EARLIER round is not the highest round's report either
        rcs = [rc(1, 3, 2, other), rc(2, 3, 1, "0xv"), rc(4, 3)]
        assert not justified(3, "0xv", rcs, prepares), other
    assert justified(3, "0xv", [rc(1, 3, 2, "0xa"), rc(2, 3, 2, "0xv"), rc(4, 3)], prepares)
    # the proposal's hash and the report's are equal strings from different messages, not one object
    proposed = "".join(["0x", "v"])
    assert proposed == "0xv" and proposed is not "0xv"  # noqa: F632 - the point of the case
    assert justified(3, proposed, [rc(1, 3, 2, "0xa"), rc(2, 3, 2, "0xv"), rc(4, 3)], prepares)


def test_messages_of_the_instance_are_recognised_by_value_not_identity() -> None:
    """Messages off the network carry their own DutyId objects: equal to the instance, never the same
    object. Slots are built for them (a check by identity would refuse every justification)."""
    same = DutyId(DUTY.slot, DUTY.kind)
    assert same == DUTY and same is not DUTY
    assert round_change_slots(4, same, [rc(1, 3), rc(2, 3)]) is not None
    assert vote_slots(4, same, MsgType.PREPARE, [vote(MsgType.PREPARE, 1, 2, "0xv")]) is not None
    assert round_change_slots(4, DutyId(DUTY.slot + 1, DUTY.kind), [rc(1, 3)]) is None  # another instance


def test_slots_take_only_messages_of_their_own_type() -> None:
    """A PREPARE is never counted as a COMMIT, nor any other type as a vote or a ROUND-CHANGE, whatever
    the order of the types' values."""
    for kind in (MsgType.PREPARE, MsgType.COMMIT):
        for other in MsgType:
            if other is not kind:
                assert vote_slots(4, DUTY, kind, [Message(other, DUTY, 1, 2, "0xv")]) is None, (kind, other)
    for other in MsgType:
        if other is not MsgType.ROUND_CHANGE:
            assert round_change_slots(4, DUTY, [Message(other, DUTY, 1, 2, "0xv")]) is None, other


def test_a_round_change_cannot_claim_a_round_prepared_after_its_own() -> None:
    for prepared in (3, 4, 9):  # the RC's own round (3) or later: nothing can have been prepared there yet
        prepares = vote_slots(
            4, DUTY, MsgType.PREPARE, [vote(MsgType.PREPARE, s, prepared, "0xv") for s in (1, 2, 4)]
        )
        assert prepares is not None
        assert not is_justified_round_change(4, 3, prepared, "0xv", prepares), prepared


@given(
    st.lists(st.tuples(st.booleans(), st.integers(0, 4), st.integers(0, 2)), min_size=4, max_size=4),
    st.integers(0, 5),
    st.integers(0, 2),
    st.integers(1, 5),
)
@settings(max_examples=150, deadline=None)
def test_round_change_and_commit_rules_agree_on_python_values_and_z3_terms(
    prepares: list[tuple[bool, int, int]], prepared_round: int, prepared_hash: int, round: int
) -> None:
    """As for the proposal rule above: the ROUND-CHANGE justification and the commit certificate,
    evaluated concretely and as Z3 terms over constants, agree (nothing prepared included)."""
    concrete = [VoteSlot(p, r, v) for p, r, v in prepares]
    symbolic = [VoteSlot(z3.BoolVal(p), z3.IntVal(r), z3.IntVal(v)) for p, r, v in prepares]
    for rule, args in (
        (is_justified_round_change, (round, prepared_round, prepared_hash)),
        (is_commit_certificate, (round, prepared_hash)),
    ):
        value = bool(rule(4, *args, concrete))
        term = z3.simplify(rule(z3.IntVal(4), *(z3.IntVal(a) for a in args), symbolic))
        assert z3.is_true(term) == value and z3.is_false(term) != value, (rule.__name__, args)


def test_j2_accepts_the_value_of_any_report_of_the_highest_round_at_any_round_number() -> None:
    """Two ROUND-CHANGEs report the same highest prepared round with different values (one of them a
    Byzantine report): the proposal of the value that has its prepare quorum is justified, whichever
    report comes first, and past the small-int range too, where equal round numbers decoded from
    different messages are different objects (a check by identity would refuse it)."""
    for base in (2, 300, 10**6):
        prepares = [vote(MsgType.PREPARE, s, fresh(base), "0xv") for s in (1, 2, 3)]
        orders = (
            [rc(1, base + 1, fresh(base), "0xa"), rc(2, base + 1, fresh(base), "0xv"), rc(4, base + 1)],
            [rc(1, base + 1), rc(2, base + 1, fresh(base), "0xv"), rc(4, base + 1, fresh(base), "0xa")],
        )
        for rcs in orders:
            assert justified(base + 1, "0xv", rcs, prepares), (base, rcs)
            assert not justified(base + 1, "0xa", rcs, prepares), (base, rcs)  # no quorum for the other


def fresh(number: int) -> int:
    """`number` as a new int object, as decoded from the wire."""
    return int(str(number))


def test_a_round_change_jump_needs_one_more_than_the_byzantine_can_send() -> None:
    """F + 1 ROUND-CHANGEs for higher rounds include an honest one, and F do not: for every count, not
    only at the boundary (F from its definition, floor((N - 1) / 3), not from the code)."""
    for n in range(1, 17):
        f = (n - 1) // 3
        for count in range(n + 1):
            assert bool(is_round_change_jump(count, n)) == (count > f), (n, count)


def test_slots_refuse_messages_of_an_earlier_instance_too() -> None:
    """A message of any other instance is foreign, whether its duty sorts before or after this one."""
    others = [
        DutyId(DUTY.slot - 1, DUTY.kind),
        DutyId(DUTY.slot + 1, DUTY.kind),
        *(DutyId(DUTY.slot, kind) for kind in DutyKind if kind is not DUTY.kind),
    ]
    for other in others:
        assert round_change_slots(4, DUTY, [Message(MsgType.ROUND_CHANGE, other, 1, 2)]) is None, other
        for kind in (MsgType.PREPARE, MsgType.COMMIT):
            assert vote_slots(4, DUTY, kind, [Message(kind, other, 1, 2, "0xv")]) is None, (other, kind)


def test_leader_is_charons_rotation_for_every_slot_kind_and_round() -> None:
    """The leader of (slot, duty type, round) among N is ((slot + type + round) mod N) + 1: Charon's
    rotation (core/qbft), so every node names the same one and each round moves to the next."""
    for n in (1, 3, 4, 7, 10):
        for slot in (0, 1, 2, 7, 31, 32, 1_000_003):
            for kind in DutyKind:
                for round in range(1, 9):
                    assert leader(slot, int(kind), round, n) == (slot + int(kind) + round) % n + 1


def test_a_quorum_is_any_count_at_or_above_the_papers_bound() -> None:
    """Moniz's quorum ceil((N + F + 1) / 2), for every count and not only at the boundary."""
    for n in range(1, 17):
        q = math.ceil((n + (n - 1) // 3 + 1) / 2)
        for count in range(n + 1):
            assert bool(is_quorum(count, n)) == (count >= q), (n, count)


def test_a_proposal_needs_round_changes_for_its_own_round_not_a_later_one() -> None:
    """J1 and J2 count ROUND-CHANGEs for the proposal's round: one for a LATER round is not one of them
    (as one for an earlier round is not)."""
    assert not justified(3, "0xany", [rc(1, 3), rc(2, 3), rc(4, 4)], [])
    prepares = [vote(MsgType.PREPARE, s, 2, "0xv") for s in (1, 2, 3)]
    assert not justified(3, "0xv", [rc(1, 3, 2, "0xv"), rc(2, 3), rc(4, 5)], prepares)
    assert justified(3, "0xv", [rc(1, 3, 2, "0xv"), rc(2, 3), rc(4, 3)], prepares)


def test_vote_slots_refuse_senders_out_of_range() -> None:
    for kind in (MsgType.PREPARE, MsgType.COMMIT):
        assert vote_slots(4, DUTY, kind, [vote(kind, 0, 1, "0xv")]) is None
        assert vote_slots(4, DUTY, kind, [vote(kind, 5, 1, "0xv")]) is None
        assert vote_slots(4, DUTY, kind, [vote(kind, 1, 1, "0xv"), vote(kind, 4, 1, "0xv")]) is not None
