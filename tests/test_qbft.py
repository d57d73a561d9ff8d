"""One QBFT instance, rule by rule: each upon-rule fires when it should and only then.

Cluster N = 4 (F = 1, Q = 3), duty attester@100: the leader of round r is ((100 + 1 + r) mod 4) + 1,
so rounds 1, 2, 3, 4 are led by nodes 3, 4, 1, 2.
"""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from covalidator.model.duty import DutyId, DutyKind
from covalidator.model.qbft import instance as qbft
from covalidator.model.qbft.events import (
    Decide,
    Expired,
    InputValue,
    QbftAction,
    QbftEvent,
    Received,
    Send,
    StartTimer,
    TimerFired,
    TimerKind,
)
from covalidator.model.qbft.instance import InstanceConfig
from covalidator.model.qbft.memory import memory_bound, stored_message_count
from covalidator.model.qbft.messages import Envelope, Message, MsgType, Value, make_value
from tests.helpers.qbft_events import (
    BAD,
    DUTY,
    N,
    V,
    W,
    commit,
    config,
    feed,
    fresh,
    is_valid,
    msg,
    pre_prepare,
    prepare,
    prepare_certificate,
    rc_message,
    round_change,
    sent,
    timeout,
)


def test_init_starts_the_round_timer_and_the_expiry_timer() -> None:
    state, actions = qbft.init(config(1))
    assert state.round == 1 and state.decision is None
    assert actions == (
        StartTimer(DUTY, TimerKind.ROUND, 1, 1000),
        StartTimer(DUTY, TimerKind.EXPIRY, 0, 20_000),
    )


def test_round_one_leader_proposes_its_input_and_prepares_it() -> None:
    _, actions = feed(fresh(3), InputValue(DUTY, V))
    [proposal] = sent(actions, MsgType.PRE_PREPARE)
    assert proposal.message == msg(MsgType.PRE_PREPARE, 3, 1, V) and proposal.body == V.body
    assert proposal.justification == ()
    assert [e.message for e in sent(actions, MsgType.PREPARE)] == [msg(MsgType.PREPARE, 3, 1, V)]


def test_a_non_leader_does_not_propose() -> None:
    _, actions = feed(fresh(1), InputValue(DUTY, V))
    assert actions == []


def test_justified_pre_prepare_is_prepared_once() -> None:
    state, actions = feed(fresh(1), pre_prepare(1, V))
    assert [e.message for e in sent(actions, MsgType.PREPARE)] == [msg(MsgType.PREPARE, 1, 1, V)]
    _, again = feed(state, pre_prepare(1, V))
    assert again == []


def test_an_invalid_proposal_is_never_prepared() -> None:
    state, actions = feed(fresh(1), pre_prepare(1, BAD))
    assert sent(actions, MsgType.PREPARE) == []
    assert state.validity[BAD.hash] is False


@pytest.mark.parametrize(
    "event",
    [
        pre_prepare(1, V, sender=2),  # not the leader of round 1
        Received(Envelope(msg(MsgType.PRE_PREPARE, 3, 1, V), W.body)),  # body does not match the hash
        Received(Envelope(msg(MsgType.PRE_PREPARE, 3, 1, V), None)),  # no body
        pre_prepare(2, V, sender=4),  # round 2 without justification (we are in round 1: buffered check)
    ],
)
def test_bad_pre_prepares_are_dropped(event: Received) -> None:
    state, actions = feed(fresh(1), event)
    assert actions == [] and state.dropped == 1


def test_round_two_pre_prepare_needs_a_round_change_quorum() -> None:
    state, _ = feed(fresh(1), timeout(1))
    _, actions = feed(state, pre_prepare(2, V, (rc_message(1, 2), rc_message(2, 2))))
    assert sent(actions, MsgType.PREPARE) == []  # two ROUND-CHANGEs are not a quorum
    justification = (rc_message(1, 2), rc_message(2, 2), rc_message(3, 2))
    _, actions = feed(state, pre_prepare(2, V, justification))
    assert [e.message for e in sent(actions, MsgType.PREPARE)] == [msg(MsgType.PREPARE, 1, 2, V)]


def test_a_proposal_must_carry_the_highest_prepared_value() -> None:
    state, _ = feed(fresh(1), timeout(1))
    rcs = (rc_message(1, 2, (1, V)), rc_message(2, 2), rc_message(3, 2))
    _, actions = feed(state, pre_prepare(2, W, rcs + prepare_certificate(1, V)))
    assert sent(actions, MsgType.PREPARE) == []
    _, actions = feed(state, pre_prepare(2, V, rcs + prepare_certificate(1, V)))
    assert len(sent(actions, MsgType.PREPARE)) == 1


def test_a_quorum_of_prepares_commits_and_records_the_prepared_certificate() -> None:
    state, actions = feed(fresh(1), prepare(2, 1, V), prepare(3, 1, V))
    assert sent(actions, MsgType.COMMIT) == []
    state, actions = feed(state, prepare(4, 1, V))
    assert [e.message for e in sent(actions, MsgType.COMMIT)] == [msg(MsgType.COMMIT, 1, 1, V)]
    assert (state.prepared_round, state.prepared_hash) == (1, V.hash)
    assert [m.sender for m in state.prepared_justification] == [2, 3, 4]


def test_split_prepares_do_not_commit() -> None:
    _, actions = feed(fresh(1), prepare(2, 1, V), prepare(3, 1, W), prepare(4, 1, V))
    assert sent(actions, MsgType.COMMIT) == []


def test_a_quorum_of_commits_decides_once() -> None:
    state, _ = feed(fresh(1), pre_prepare(1, V))
    state, actions = feed(state, commit(2, 1, V), commit(3, 1, V))
    assert not [a for a in actions if isinstance(a, Decide)]
    state, actions = feed(state, commit(4, 1, V))
    [decide] = [a for a in actions if isinstance(a, Decide)]
    assert decide.value == V and decide.round == 1 and [m.sender for m in decide.commits] == [2, 3, 4]
    assert state.decision is not None and state.rounds == {}
    _, actions = feed(state, commit(1, 1, V), prepare(2, 2, V), timeout(1))
    assert actions == []


def test_commits_without_the_body_wait_for_it() -> None:
    state, actions = feed(fresh(1), commit(2, 1, V), commit(3, 1, V), commit(4, 1, V))
    assert actions == []  # cannot decide a value whose body we do not hold
    _, actions = feed(state, pre_prepare(1, V))
    assert [a.value for a in actions if isinstance(a, Decide)] == [V]


def test_a_late_commit_quorum_of_a_past_round_still_decides() -> None:
    state, _ = feed(fresh(1), pre_prepare(1, V), timeout(1), timeout(2))
    assert state.round == 3
    _, actions = feed(state, commit(2, 1, V), commit(3, 1, V), commit(4, 1, V))
    assert [(a.round, a.value) for a in actions if isinstance(a, Decide)] == [(1, V)]


def test_timeout_moves_to_the_next_round_and_sends_a_round_change() -> None:
    state, actions = feed(fresh(1), timeout(1))
    assert state.round == 2
    assert StartTimer(DUTY, TimerKind.ROUND, 2, 2000) in actions
    [rc] = sent(actions, MsgType.ROUND_CHANGE)
    assert rc.message == rc_message(1, 2) and rc.body is None and rc.justification == ()
    _, stale = feed(state, timeout(1))
    assert stale == []


def test_a_prepared_round_change_carries_its_certificate_and_body() -> None:
    state, _ = feed(fresh(1), pre_prepare(1, V), prepare(2, 1, V), prepare(3, 1, V))
    state, actions = feed(state, timeout(1))
    [rc] = sent(actions, MsgType.ROUND_CHANGE)
    assert (rc.message.prepared_round, rc.message.prepared_hash, rc.body) == (1, V.hash, V.body)
    assert sorted(m.sender for m in rc.justification) == [1, 2, 3]


def test_f_plus_one_round_changes_jump_ahead() -> None:
    state, actions = feed(fresh(1), round_change(2, 3))
    assert state.round == 1 and actions == []  # F = 1 ROUND-CHANGE may be Byzantine
    state, actions = feed(state, round_change(4, 5))
    # F + 1 = 2 senders above round 1: the smallest round among the F + 1 highest is 3
    assert state.round == 3
    assert [e.message for e in sent(actions, MsgType.ROUND_CHANGE)] == [rc_message(1, 3)]
    state, _ = feed(fresh(1), round_change(2, 3), round_change(3, 4), round_change(4, 5))
    assert state.round == 4  # F + 1 highest are 5 and 4: at least one honest node reached 4


def test_the_leader_proposes_the_value_of_the_highest_prepared_round() -> None:
    state, _ = feed(fresh(1), InputValue(DUTY, W), timeout(1), timeout(2))  # node 1 leads round 3
    _, actions = feed(
        state,
        round_change(2, 3, (1, W), prepare_certificate(1, W, (2, 3, 4))),
        round_change(3, 3, (2, V), prepare_certificate(2, V)),
    )
    [proposal] = sent(actions, MsgType.PRE_PREPARE)
    assert proposal.message == msg(MsgType.PRE_PREPARE, 1, 3, V)
    assert sorted(m.round for m in proposal.justification if m.type == MsgType.PREPARE) == [2, 2, 2]


def test_the_leader_proposes_the_prepared_value_not_its_input() -> None:
    state, _ = feed(fresh(4), InputValue(DUTY, W), timeout(1))
    _, actions = feed(state, round_change(1, 2, (1, V), prepare_certificate(1, V)), round_change(2, 2))
    [proposal] = sent(actions, MsgType.PRE_PREPARE)
    assert proposal.message == msg(MsgType.PRE_PREPARE, 4, 2, V) and proposal.body == V.body
    kinds = sorted((m.type.name, m.sender) for m in proposal.justification)
    assert kinds == [
        ("PREPARE", 1),
        ("PREPARE", 2),
        ("PREPARE", 3),
        ("ROUND_CHANGE", 1),
        ("ROUND_CHANGE", 2),
        ("ROUND_CHANGE", 4),
    ]
    assert [e.message for e in sent(actions, MsgType.PREPARE)] == [msg(MsgType.PREPARE, 4, 2, V)]


def test_the_leader_proposes_its_input_when_nothing_was_prepared_and_waits_without_one() -> None:
    state, _ = feed(fresh(4), timeout(1))
    state, actions = feed(state, round_change(1, 2), round_change(2, 2))
    assert sent(actions, MsgType.PRE_PREPARE) == []  # a quorum, but no input yet
    _, actions = feed(state, InputValue(DUTY, W))
    [proposal] = sent(actions, MsgType.PRE_PREPARE)
    assert proposal.message.value_hash == W.hash and len(proposal.justification) == 3


@pytest.mark.parametrize(
    "event",
    [
        round_change(2, 2, (1, V)),  # a prepared claim without its certificate
        round_change(2, 2, (1, V), prepare_certificate(1, W)),  # a certificate for another value
        round_change(2, 2, (1, V), prepare_certificate(1, V, (1, 1, 3))),  # one sender twice
        round_change(2, 2, (2, V), prepare_certificate(2, V)),  # prepared round not below the round
        Received(Envelope(rc_message(2, 2, (1, V)), W.body, prepare_certificate(1, V))),  # wrong body
    ],
)
def test_unjustified_round_changes_are_dropped(event: Received) -> None:
    state, _ = feed(fresh(1), timeout(1))
    after, actions = feed(state, event)
    assert actions == [] and after.dropped == state.dropped + 1 and 2 not in after.rounds[2].round_changes


def decided_envelope(
    round: int, value: Value, commits: tuple[Message, ...], body: bytes | None = None
) -> Received:
    m = Message(MsgType.DECIDED, DUTY, 2, round, value.hash)
    return Received(Envelope(m, value.body if body is None else body, commits))


def test_a_decided_message_with_a_commit_quorum_decides() -> None:
    commits = tuple(msg(MsgType.COMMIT, s, 3, V) for s in (2, 3, 4))
    _, actions = feed(fresh(1), decided_envelope(3, V, commits))
    assert [(a.round, a.value) for a in actions if isinstance(a, Decide)] == [(3, V)]


@pytest.mark.parametrize(
    "commits, value, body",
    [
        ((msg(MsgType.COMMIT, 2, 3, V),) * 3, V, None),  # one sender three times
        (tuple(msg(MsgType.COMMIT, s, 3, V) for s in (2, 3)), V, None),  # not a quorum
        (tuple(msg(MsgType.COMMIT, s, 3, W) for s in (2, 3, 4)), V, None),  # commits for another value
        (tuple(msg(MsgType.COMMIT, s, 2, V) for s in (2, 3, 4)), V, None),  # commits of another round
        (tuple(msg(MsgType.COMMIT, s, 3, V) for s in (2, 3, 5)), V, None),  # sender out of range
        (tuple(msg(MsgType.COMMIT, s, 3, V) for s in (2, 3, 4)), V, W.body),  # body does not match
    ],
)
def test_forged_decided_messages_are_dropped(
    commits: tuple[Message, ...], value: Value, body: bytes | None
) -> None:
    state, actions = feed(fresh(1), decided_envelope(3, value, commits, body))
    assert actions == [] and state.decision is None and state.dropped == 1


def test_a_decided_node_answers_laggards_once_per_round() -> None:
    state, _ = feed(fresh(1), pre_prepare(1, V), commit(2, 1, V), commit(3, 1, V), commit(4, 1, V))
    state, actions = feed(state, round_change(2, 2))
    [reply] = [a for a in actions if isinstance(a, Send)]
    assert reply.to == 2 and reply.envelope.message.type == MsgType.DECIDED and reply.envelope.body == V.body
    assert len(reply.envelope.justification) == 3
    state, actions = feed(state, round_change(2, 2), prepare(2, 2, V))
    assert actions == []
    _, actions = feed(state, round_change(2, 3))
    assert len([a for a in actions if isinstance(a, Send)]) == 1
    laggard, _ = feed(fresh(2), Received(reply.envelope))
    assert laggard.decision is not None and laggard.decision.value == V


def test_duplicates_and_equivocations_are_dropped() -> None:
    state, _ = feed(fresh(1), prepare(2, 1, V))
    state, _ = feed(state, prepare(2, 1, V), prepare(2, 1, W), pre_prepare(1, V), pre_prepare(1, W))
    assert state.dropped == 3
    assert state.rounds[1].prepares[2].value_hash == V.hash
    assert (
        state.rounds[1].pre_prepare is not None and state.rounds[1].pre_prepare.message.value_hash == V.hash
    )


def test_messages_from_ourselves_foreign_instances_and_beyond_the_window_are_dropped() -> None:
    foreign = Received(Envelope(Message(MsgType.PREPARE, DutyId(101, DutyKind.ATTESTER), 2, 1, V.hash)))
    far = prepare(2, 1 + qbft.MAX_FUTURE_ROUNDS + 1, V)
    state, actions = feed(fresh(1), prepare(1, 1, V), foreign, far, prepare(9, 1, V))
    assert actions == [] and state.dropped == 4 and stored_message_count(state) == 0
    with pytest.raises(AssertionError):
        qbft.step(fresh(1), InputValue(DutyId(101, DutyKind.ATTESTER), V), is_valid)


def test_a_flood_of_future_rounds_stays_within_the_memory_bound() -> None:
    state = fresh(1)
    for round in range(1, 40):
        for sender in (2, 3, 4):
            for value in (V, W, make_value(b"valid: %d" % round)):
                state, _ = feed(
                    state,
                    prepare(sender, round, value),
                    commit(sender, round, value),
                    round_change(sender, round),
                )
        state, _ = feed(state, timeout(state.round))
        assert stored_message_count(state) <= memory_bound(state.config)
    assert state.decision is None


def test_expiry_forgets_everything() -> None:
    state, _ = feed(fresh(1), pre_prepare(1, V))
    state, actions = feed(state, TimerFired(DUTY, TimerKind.EXPIRY, 0, 20_000))
    assert actions == [Expired(DUTY, False)] and state.expired and state.rounds == {} and state.bodies == {}
    state, actions = feed(state, commit(2, 1, V), commit(3, 1, V), commit(4, 1, V), timeout(1))
    assert actions == []


def test_the_last_round_waits_for_expiry() -> None:
    cfg = InstanceConfig(DUTY, N, 1, start_ms=0, expiry_ms=3000)
    assert cfg.max_round == 3
    state, _ = qbft.init(cfg)
    state, _ = feed(state, timeout(1), timeout(2))
    state, actions = feed(state, timeout(3))
    assert state.round == 3 and actions == []


def test_a_restarted_node_is_mute_through_the_rounds_it_may_have_voted_in() -> None:
    state, actions = qbft.restart(config(1), now_ms=1500)
    assert state.round == 2 and state.mute_through_round == 2
    assert StartTimer(DUTY, TimerKind.ROUND, 2, 2000) in actions
    justification = (rc_message(2, 2), rc_message(3, 2), rc_message(4, 2))
    state, actions = feed(
        state, pre_prepare(2, V, justification), prepare(2, 2, V), prepare(3, 2, V), prepare(4, 2, V)
    )
    assert actions == []  # it may have prepared or committed something else in round 2 before the crash
    assert state.prepared_round == 0
    state, actions = feed(state, timeout(2))
    assert [e.message for e in sent(actions, MsgType.ROUND_CHANGE)] == [rc_message(1, 3)]


def test_a_restarted_node_keeps_its_persisted_decision() -> None:
    decided, _ = feed(fresh(1), pre_prepare(1, V), commit(2, 1, V), commit(3, 1, V), commit(4, 1, V))
    assert decided.decision is not None
    state, actions = qbft.restart(config(1), now_ms=5000, decision=decided.decision)
    assert actions == (StartTimer(DUTY, TimerKind.EXPIRY, 0, 20_000),)
    _, actions = feed(state, round_change(3, 6))
    assert [a.envelope.message.type for a in actions if isinstance(a, Send)] == [MsgType.DECIDED]


# --- purity, determinism, replay ---------------------------------------------------------------------

values = st.sampled_from([V, W, BAD])
events = st.one_of(
    st.builds(lambda v: InputValue(DUTY, v), values),
    st.builds(lambda s, r, v: prepare(s, r, v), st.integers(1, 4), st.integers(1, 4), values),
    st.builds(lambda s, r, v: commit(s, r, v), st.integers(1, 4), st.integers(1, 4), values),
    st.builds(lambda r, v: pre_prepare(r, v), st.integers(1, 1), values),
    st.builds(lambda s, r: round_change(s, r), st.integers(1, 4), st.integers(1, 6)),
    st.builds(lambda r: timeout(r), st.integers(1, 4)),
)


@given(st.integers(1, 4), st.lists(events, max_size=40))
@settings(max_examples=60, deadline=None)
def test_step_is_pure_deterministic_and_replayable_from_a_json_trace(me: int, trace: list[QbftEvent]) -> None:
    state = fresh(me)
    actions: list[QbftAction] = []
    for event in trace:
        before = copy.deepcopy(state)
        state_a, out_a = qbft.step(state, event, is_valid)
        assert state == before, "step mutated its input state"
        state_b, out_b = qbft.step(state, event, is_valid)
        assert out_a == out_b and state_a == state_b, "step is not deterministic"
        state = state_a
        actions.extend(out_a)
    recorded = [type(e).__name__ + "\t" + e.to_json() for e in trace]
    kinds = {"InputValue": InputValue, "Received": Received, "TimerFired": TimerFired}
    replayed_state, replayed = fresh(me), []
    for line in recorded:
        name, text = line.split("\t")
        replayed_state, out = qbft.step(replayed_state, kinds[name].from_json(text), is_valid)
        replayed.extend(out)
    assert replayed == actions and replayed_state == state
