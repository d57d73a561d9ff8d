"""One QBFT instance at its boundaries: the edges of each check, window and rule in `model/qbft/instance.py`.

Each test pins one edge the rule-by-rule tests (test_qbft.py) pass through without touching: an
off-by-one window, the first and last valid sender, round and index, a quorum exceeded rather than
met, a value group that is not the first one seen, a body whose hash sorts below the claimed one.
Mutation testing (`make mutants`, target qbft-instance) found each of these edges unpinned.
"""

from __future__ import annotations

import json

import pytest

from covalidator.model.duty import DutyId, DutyKind
from covalidator.model.qbft import instance as qbft
from covalidator.model.qbft.events import (
    Decide,
    InputValue,
    Received,
    Send,
    StartTimer,
    TimerFired,
    TimerKind,
)
from covalidator.model.qbft.instance import InstanceConfig, InstanceState
from covalidator.model.qbft.messages import Envelope, Message, MsgType, Value, compute_value_hash, make_value
from tests.helpers.qbft_events import (
    DUTY,
    LEADER,
    N,
    V,
    W,
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


def decided(actions: list[object]) -> list[Value]:
    return [a.value for a in actions if isinstance(a, Decide)]


def in_round(i: int, round: int, n: int = N) -> InstanceState:
    state = fresh(i, n)
    for r in range(1, round):
        state, _ = feed(state, timeout(r))
    assert state.round == round
    return state


def other_duty(slot: int) -> DutyId:
    return DutyId(slot, DutyKind.ATTESTER)


# --- configuration and restart -------------------------------------------------------------------------


def test_the_smallest_valid_configurations_are_accepted() -> None:
    InstanceConfig(DUTY, 1, 1, start_ms=0, expiry_ms=1)
    InstanceConfig(DUTY, 4, 4, start_ms=0, expiry_ms=1, max_future_rounds=1)


@pytest.mark.parametrize(
    ("n", "index", "start", "expiry", "window"),
    [
        (0, 1, 0, 10, 4),
        (4, 0, 0, 10, 4),
        (4, 5, 0, 10, 4),
        (4, 1, 10, 10, 4),
        (4, 1, 10, 9, 4),
        (4, 1, 0, 10, 0),
    ],
    ids=["no-nodes", "index-0", "index-above-n", "expiry-at-start", "expiry-before-start", "no-window"],
)
def test_an_impossible_configuration_is_refused(
    n: int, index: int, start: int, expiry: int, window: int
) -> None:
    with pytest.raises(AssertionError):
        InstanceConfig(DUTY, n, index, start_ms=start, expiry_ms=expiry, max_future_rounds=window)


@pytest.mark.parametrize(("expiry", "last"), [(2001, 3), (3000, 3), (3001, 4)])
def test_the_last_round_is_the_one_running_just_before_expiry(expiry: int, last: int) -> None:
    assert InstanceConfig(DUTY, N, 1, start_ms=0, expiry_ms=expiry).max_round == last


def test_a_restart_with_clock_skew_margin_stays_mute_through_the_round_a_faster_clock_reached() -> None:
    cfg = InstanceConfig(DUTY, N, 1, start_ms=0, expiry_ms=20_000, restart_margin_ms=600)
    state, _ = qbft.restart(cfg, now_ms=1500)
    assert (state.round, state.mute_through_round) == (2, 3)
    justification = tuple(rc_message(s, 2) for s in (2, 3, 4))
    state, actions = feed(
        state, pre_prepare(2, V, justification), prepare(2, 2, V), prepare(3, 2, V), prepare(4, 2, V)
    )
    assert actions == []  # mute in round 2 although the margin, not the clock, reaches round 3
    state, actions = feed(state, timeout(2))
    assert state.round == 3 and sent(actions, MsgType.ROUND_CHANGE) == []
    _, actions = feed(state, timeout(3))
    assert [e.message for e in sent(actions, MsgType.ROUND_CHANGE)] == [rc_message(1, 4)]


@pytest.mark.parametrize(
    ("now", "margin", "mute"),
    [(1000, 0, 2), (999, 1, 2), (998, 1, 1), (1950, 60, 3), (1939, 60, 2), (1500, 600, 3), (2999, 0, 3)],
)
def test_a_restart_is_mute_through_the_round_its_clock_plus_the_margin_falls_in(
    now: int, margin: int, mute: int
) -> None:
    """1 s rounds from 0: a clock up to `margin` ahead could have reached round (now + margin) // 1000 + 1
    (the oracle is that arithmetic). Exactly at a boundary, the node may already have voted in the new
    round, so it is mute in it; 50 ms before a boundary with a 60 ms margin, in the next one too."""
    cfg = InstanceConfig(DUTY, N, 1, start_ms=0, expiry_ms=20_000, restart_margin_ms=margin)
    state, _ = qbft.restart(cfg, now_ms=now)
    assert (state.round, state.mute_through_round) == (now // 1000 + 1, mute)
    assert mute == (now + margin) // 1000 + 1


def test_the_default_margin_is_zero_so_a_restart_at_a_boundary_is_mute_in_the_new_round() -> None:
    state, _ = qbft.restart(config(1), now_ms=1000)
    assert (state.round, state.mute_through_round) == (2, 2)


def test_without_a_margin_a_restart_is_mute_only_through_its_own_round() -> None:
    state, _ = qbft.restart(config(1), now_ms=999)
    assert (state.round, state.mute_through_round) == (1, 1)


def test_a_restart_exactly_at_the_start_is_mute_in_round_one() -> None:
    state, _ = qbft.restart(config(LEADER[1]), now_ms=0)
    _, actions = feed(state, InputValue(DUTY, V))
    assert actions == []  # it may have proposed before the crash, at the same instant


def test_a_restart_before_the_start_is_not_mute() -> None:
    cfg = InstanceConfig(DUTY, N, LEADER[1], start_ms=1000, expiry_ms=20_000)
    state, _ = qbft.restart(cfg, now_ms=500)
    assert state.mute_through_round == 0
    _, actions = feed(state, InputValue(DUTY, V))
    assert [e.message for e in sent(actions, MsgType.PRE_PREPARE)] == [msg(MsgType.PRE_PREPARE, 3, 1, V)]


@pytest.mark.parametrize("slot", [99, 101])
def test_a_timer_or_input_routed_to_the_wrong_instance_is_a_bug(slot: int) -> None:
    with pytest.raises(AssertionError):
        feed(fresh(1), TimerFired(other_duty(slot), TimerKind.ROUND, 1, 1000))
    with pytest.raises(AssertionError):
        feed(fresh(1), InputValue(other_duty(slot), V))


def test_a_timer_for_a_round_not_yet_reached_is_ignored() -> None:
    state, actions = feed(fresh(1), timeout(3))
    assert state.round == 1 and actions == []


def test_a_round_timer_decoded_from_json_advances_the_round_past_256() -> None:
    """A timer comes back from the runtime's scheduler or a replayed trace as a new int, equal to the
    round but not the same object. Rounds are compared by value: CPython shares ints only up to 256,
    so an identity check would stall an instance at round 257, or run past its last round (300 here:
    every round lasts 10 ms)."""
    cfg = InstanceConfig(DUTY, N, 1, start_ms=0, expiry_ms=3_000, round_duration_ms=10, round_increase_ms=0)
    state, actions = qbft.init(cfg)
    assert cfg.max_round == 300
    while True:
        (timer,) = [a for a in actions if isinstance(a, StartTimer) and a.kind is TimerKind.ROUND]
        as_decoded = json.loads(json.dumps(timer.round))  # what a trace or the scheduler hands back
        state, actions = qbft.step(
            state, TimerFired(DUTY, TimerKind.ROUND, as_decoded, timer.at_ms), is_valid
        )
        if as_decoded == cfg.max_round:
            break
        assert state.round == as_decoded + 1, f"stalled at round {as_decoded}"
    assert (state.round, actions) == (300, ())  # the last round's timer: expiry comes next, no round 301


def test_in_a_cluster_of_300_only_the_leader_proposes_and_it_does_for_indices_past_256() -> None:
    """Share indices are compared by value: in a cluster above 256 nodes, leader and self index are equal
    ints that CPython does not share. Round 1 of slot 280's attester duty (kind 1) is led by
    ((280 + 1 + 1) mod 300) + 1 = 283 (Charon's rotation)."""
    n, slot = 300, 280
    duty = DutyId(slot, DutyKind.ATTESTER)
    proposers = []
    for i in (1, 282, 283, 284, 300):
        state, _ = qbft.init(InstanceConfig(duty, n, int(str(i)), start_ms=0, expiry_ms=20_000))
        state, actions = qbft.step(state, InputValue(duty, V), is_valid)
        if sent(actions, MsgType.PRE_PREPARE):
            proposers.append(i)
    assert proposers == [283]


def test_in_a_cluster_of_300_node_283_drops_a_message_claiming_to_be_its_own() -> None:
    n, duty = 300, DutyId(280, DutyKind.ATTESTER)
    state, _ = qbft.init(InstanceConfig(duty, n, 283, start_ms=0, expiry_ms=20_000))
    echo = Message(MsgType.PREPARE, duty, int(str(283)), 1, V.hash)
    state, actions = qbft.step(state, Received(Envelope(echo)), is_valid)
    assert actions == () and state.dropped == 1 and state.rounds == {}


def test_in_a_cluster_of_300_a_proposal_from_leader_283_is_prepared() -> None:
    """The sender of a decoded message is a new int: equal to the leader's index, not the same object."""
    n, duty = 300, DutyId(280, DutyKind.ATTESTER)  # round 1's leader is 283 (above)
    state, _ = qbft.init(InstanceConfig(duty, n, 1, start_ms=0, expiry_ms=20_000))
    proposal = Message(MsgType.PRE_PREPARE, duty, int(str(283)), 1, V.hash)
    state, actions = qbft.step(state, Received(Envelope(proposal, V.body)), is_valid)
    assert [e.message.value_hash for e in sent(actions, MsgType.PREPARE)] == [V.hash]
    assert state.dropped == 0


def test_a_round_one_proposal_needs_no_justification_so_whatever_it_carries_is_ignored() -> None:
    """Moniz's JUSTIFY-PRE-PREPARE holds for round 1 unconditionally: a leader's round-1 proposal is
    prepared even when it carries a justification that would be refused in a later round (two
    ROUND-CHANGEs from one sender, one of another instance)."""
    foreign = Message(MsgType.ROUND_CHANGE, other_duty(99), 2, 1)
    for junk in ((rc_message(2, 1), rc_message(2, 1)), (foreign,)):
        _, actions = feed(fresh(1), pre_prepare(1, V, junk))
        assert [e.message for e in sent(actions, MsgType.PREPARE)] == [msg(MsgType.PREPARE, 1, 1, V)]


def test_a_leader_refusing_its_own_input_proposes_nothing_yet_decides_on_a_commit_quorum_for_it() -> None:
    """The validity predicate is local (this node's slashing check may refuse what others accept): the
    leader does not propose the value, but a quorum of COMMITs for it decides, and nothing else runs."""
    refused = make_value(b"refused by this node")
    state, actions = feed(fresh(LEADER[1]), InputValue(DUTY, refused))
    assert actions == []
    commits = [Received(Envelope(Message(MsgType.COMMIT, DUTY, s, 1, refused.hash))) for s in (1, 2, 4)]
    state, actions = feed(state, *commits)
    assert decided(actions) == [refused] and sent(actions, MsgType.PRE_PREPARE) == []


def test_our_own_commit_completing_a_quorum_decides_in_the_same_step() -> None:
    """COMMITs from 2 and 3 arrive before the PREPAREs (the network reorders): the PREPARE quorum makes
    node 1 commit, and its own COMMIT is the third of the quorum, so it decides at once. Nothing later
    would wake the rule: every COMMIT it will get is already here."""
    state, actions = feed(fresh(1), pre_prepare(1, V))
    assert [e.message for e in sent(actions, MsgType.PREPARE)] == [msg(MsgType.PREPARE, 1, 1, V)]
    commits = [Received(Envelope(msg(MsgType.COMMIT, s, 1, V))) for s in (2, 3)]
    state, actions = feed(state, *commits, prepare(2, 1, V))
    assert decided(actions) == []
    state, actions = feed(state, prepare(3, 1, V))
    assert [e.message for e in sent(actions, MsgType.COMMIT)] == [msg(MsgType.COMMIT, 1, 1, V)]
    assert decided(actions) == [V]


def test_a_second_input_does_not_replace_the_first() -> None:
    state, _ = feed(fresh(1), InputValue(DUTY, V), InputValue(DUTY, W))
    assert state.input == V


# --- what is accepted from the network -----------------------------------------------------------------


def foreign(slot: int) -> Received:
    return Received(Envelope(Message(MsgType.PREPARE, other_duty(slot), 3, 1, V.hash)))


def raw_prepare(sender: int, round: int) -> Received:
    return Received(Envelope(Message(MsgType.PREPARE, DUTY, sender, round, V.hash)))


@pytest.mark.parametrize(
    "event",
    [
        foreign(99),
        foreign(101),
        raw_prepare(0, 1),
        raw_prepare(5, 1),
        raw_prepare(3, 0),
        Received(Envelope(Message(MsgType.COMMIT, DUTY, 3, 0, V.hash))),  # commits of old rounds are kept
        raw_prepare(2, 1),  # our own index: we never receive our own votes from the network
    ],
    ids=[
        "earlier-instance",
        "later-instance",
        "sender-0",
        "sender-above-n",
        "round-0",
        "commit-round-0",
        "own-index",
    ],
)
def test_messages_outside_the_instance_its_senders_or_its_rounds_are_dropped(event: Received) -> None:
    state, actions = feed(fresh(2), event)
    assert actions == [] and state.dropped == 1 and state.rounds == {}


def test_the_first_sender_and_the_first_round_are_accepted() -> None:
    state, _ = feed(fresh(2), raw_prepare(1, 1))
    assert state.dropped == 0 and list(state.rounds[1].prepares) == [1]


@pytest.mark.parametrize(("now", "last_kept"), [(1, 5), (4, 8)])
def test_the_window_reaches_exactly_max_future_rounds_ahead(now: int, last_kept: int) -> None:
    assert config(1).max_future_rounds == qbft.MAX_FUTURE_ROUNDS == 4
    state = in_round(1, now)
    state, _ = feed(state, prepare(2, last_kept, V))
    assert 2 in state.rounds[last_kept].prepares and state.dropped == 0
    state, _ = feed(state, prepare(2, last_kept + 1, V))
    assert last_kept + 1 not in state.rounds and state.dropped == 1


def test_the_last_round_is_inside_the_window_and_the_one_after_is_not() -> None:
    state, _ = qbft.init(InstanceConfig(DUTY, N, 1, start_ms=0, expiry_ms=3000))
    state, _ = feed(state, prepare(2, 3, V), prepare(2, 4, V))
    assert 2 in state.rounds[3].prepares and 4 not in state.rounds and state.dropped == 1


def test_a_pre_prepare_from_a_non_leader_with_a_higher_index_is_dropped() -> None:
    assert LEADER[1] == 3
    state, actions = feed(fresh(1), pre_prepare(1, V, sender=4))
    assert actions == [] and state.dropped == 1


def hash_sorting_below(value: Value) -> bytes:
    """A body whose hash sorts below `value.hash`: a bug comparing with `>` instead of `!=` accepts it."""
    body = next(b for i in range(1000) if compute_value_hash(b := b"valid: %d" % i) < value.hash)
    assert compute_value_hash(body) != value.hash
    return body


def test_a_body_that_hashes_below_the_claimed_hash_is_refused_everywhere() -> None:
    claimed = make_value(b"valid: claimed")
    body = hash_sorting_below(claimed)
    proposal = Received(Envelope(msg(MsgType.PRE_PREPARE, 3, 1, claimed), body))
    state, actions = feed(fresh(1), proposal)
    assert actions == [] and state.dropped == 1
    rc = Envelope(rc_message(2, 2, (1, claimed)), body, prepare_certificate(1, claimed))
    state, _ = feed(fresh(1), Received(rc))
    assert state.dropped == 1 and 2 not in state.rounds
    commits = tuple(msg(MsgType.COMMIT, s, 1, claimed) for s in (2, 3, 4))
    decided_env = Envelope(msg(MsgType.DECIDED, 2, 1, claimed), body, commits)
    state, actions = feed(fresh(1), Received(decided_env))
    assert decided(actions) == [] and state.dropped == 1


def round_two_proposal(*junk: Message) -> Received:
    return pre_prepare(2, V, tuple(rc_message(s, 2) for s in (1, 2, 3)) + junk)


@pytest.mark.parametrize(
    "junk",
    [
        msg(MsgType.DECIDED, 2, 2, V),
        msg(MsgType.COMMIT, 2, 1, V),
        rc_message(2, 2),  # a second ROUND-CHANGE from sender 2
    ],
    ids=["decided", "commit", "duplicate-rc"],
)
def test_a_proposal_justification_carrying_anything_else_is_dropped(junk: Message) -> None:
    _, actions = feed(in_round(1, 2), round_two_proposal())
    assert len(sent(actions, MsgType.PREPARE)) == 1  # the control: the same proposal without the junk
    state, actions = feed(in_round(1, 2), round_two_proposal(junk))
    assert sent(actions, MsgType.PREPARE) == [] and state.dropped == 1


def unprepared_rc(
    prepared_round: int = 0,
    prepared_hash: str = "",
    body: bytes | None = None,
    with_certificate: bool = False,
) -> Received:
    m = Message(MsgType.ROUND_CHANGE, DUTY, 2, 2, "", prepared_round, prepared_hash)
    return Received(Envelope(m, body, prepare_certificate(1, V) if with_certificate else ()))


@pytest.mark.parametrize(
    "event",
    [
        unprepared_rc(prepared_hash=V.hash),
        unprepared_rc(body=V.body),
        unprepared_rc(with_certificate=True),
        unprepared_rc(prepared_round=-1),
        unprepared_rc(prepared_round=-1, prepared_hash=V.hash, body=V.body, with_certificate=True),
    ],
    ids=["hash-only", "body-only", "certificate-only", "negative-round", "negative-round-full"],
)
def test_a_round_change_claiming_nothing_prepared_must_carry_nothing(event: Received) -> None:
    state, _ = feed(fresh(1), event)
    assert state.dropped == 1 and 2 not in state.rounds


# --- deciding ------------------------------------------------------------------------------------------


def commit_from(sender: int, round: int, value: Value) -> Received:
    return Received(Envelope(msg(MsgType.COMMIT, sender, round, value)))


def test_more_commits_than_a_quorum_before_the_body_decide_once_it_arrives() -> None:
    state, actions = feed(fresh(1, 7), *(commit_from(s, 1, V) for s in range(2, 8)))  # 6 > Q = 5
    assert decided(actions) == []
    _, actions = feed(state, InputValue(DUTY, V))  # the body arrives with our own input
    assert decided(actions) == [V]


def test_a_round_without_a_commit_quorum_does_not_stop_a_later_round_from_deciding() -> None:
    state, _ = feed(
        fresh(1),
        Received(Envelope(msg(MsgType.COMMIT, 2, 1, W))),
        *(Received(Envelope(msg(MsgType.COMMIT, s, 2, V))) for s in (2, 3, 4)),
    )
    assert state.decision is None  # no body for V yet
    _, actions = feed(state, InputValue(DUTY, V))
    assert decided(actions) == [V]


@pytest.mark.parametrize(
    ("values", "expected"),
    [((V, V, V, V, V, V), V), ((W, V, V, V, V, V), V), ((V, V, V, V, W, W), None)],
    ids=["all-six", "minority-first", "no-quorum"],
)
def test_n7_decides_the_value_with_a_commit_quorum_whatever_the_order(
    values: tuple[Value, ...], expected: Value | None
) -> None:
    state, _ = feed(fresh(1, 7), InputValue(DUTY, V))
    commits = (commit_from(s, 1, v) for s, v in zip(range(2, 8), values, strict=True))
    _, actions = feed(state, *commits)
    assert decided(actions) == ([] if expected is None else [expected])


def test_our_own_commit_completing_the_quorum_decides_in_the_same_step() -> None:
    state, _ = feed(fresh(1), pre_prepare(1, V), Received(Envelope(msg(MsgType.COMMIT, 2, 1, V))))
    state, _ = feed(state, Received(Envelope(msg(MsgType.COMMIT, 3, 1, V))), prepare(2, 1, V))
    assert state.decision is None
    state, actions = feed(state, prepare(3, 1, V))  # our PREPARE + 2 = quorum -> COMMIT -> 3 commits
    assert len(sent(actions, MsgType.COMMIT)) == 1 and decided(actions) == [V]


def test_a_decided_node_does_not_answer_a_peer_that_decided_too() -> None:
    state, _ = feed(
        fresh(1), pre_prepare(1, V), *(Received(Envelope(msg(MsgType.COMMIT, s, 1, V))) for s in (2, 3, 4))
    )
    commits = tuple(msg(MsgType.COMMIT, s, 1, V) for s in (2, 3, 4))
    _, actions = feed(state, Received(Envelope(msg(MsgType.DECIDED, 2, 1, V), V.body, commits)))
    assert actions == []


def test_a_laggard_is_not_answered_again_for_a_round_below_one_already_answered() -> None:
    state, _ = feed(
        fresh(1), pre_prepare(1, V), *(Received(Envelope(msg(MsgType.COMMIT, s, 1, V))) for s in (2, 3, 4))
    )
    state, actions = feed(state, round_change(2, 5))
    assert [a.to for a in actions if isinstance(a, Send)] == [2]
    _, actions = feed(state, round_change(2, 3))
    assert actions == []


# --- rounds --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "rounds", "target"), [(1, (2, 2), 2), (2, (3, 3), 3), (1, (5, 5), 5), (2, (6, 6), 6)]
)
def test_a_jump_counts_the_next_round_and_the_last_round_of_the_window(
    now: int, rounds: tuple[int, int], target: int
) -> None:
    state = in_round(1, now)
    state, _ = feed(state, round_change(2, rounds[0]), round_change(3, rounds[1]))
    assert state.round == target


def test_with_n10_f_round_changes_do_not_jump_and_f_plus_one_jump_to_the_lowest_of_them() -> None:
    state = fresh(1, 10)  # F = 3
    state, _ = feed(state, round_change(2, 5), round_change(3, 4), round_change(4, 3))
    assert state.round == 1
    state, _ = feed(state, round_change(5, 2))
    assert state.round == 2


def test_a_leader_holding_every_round_change_proposes_once_its_input_arrives() -> None:
    state = in_round(LEADER[3], 3)
    state, actions = feed(state, round_change(2, 3), round_change(3, 3), round_change(4, 3))
    assert len(state.rounds[3].round_changes) == 4 and sent(actions, MsgType.PRE_PREPARE) == []
    _, actions = feed(state, InputValue(DUTY, V))
    [proposal] = sent(actions, MsgType.PRE_PREPARE)
    assert proposal.message == msg(MsgType.PRE_PREPARE, 1, 3, V) and len(proposal.justification) == 4


def test_more_prepares_than_a_quorum_held_for_the_next_round_commit_when_it_begins() -> None:
    state, actions = feed(fresh(1, 7), *(prepare(s, 2, V) for s in range(2, 8)))  # 6 > Q = 5
    assert sent(actions, MsgType.COMMIT) == []  # not our round yet
    state, actions = feed(state, timeout(1))
    assert [e.message for e in sent(actions, MsgType.COMMIT)] == [msg(MsgType.COMMIT, 1, 2, V)]
    assert (state.prepared_round, state.prepared_hash) == (2, V.hash)


def test_stored_envelopes_carry_no_body() -> None:
    state, _ = feed(fresh(1), pre_prepare(1, V), prepare(2, 1, V), prepare(3, 1, V), timeout(1))
    stored = [state.rounds[1].pre_prepare, *state.rounds[2].round_changes.values()]
    assert all(e is not None and e.body is None for e in stored) and state.bodies[V.hash] == V.body


def test_a_body_no_message_names_any_more_is_forgotten_when_its_round_passes() -> None:
    state, _ = feed(fresh(1), round_change(2, 2, (1, W), prepare_certificate(1, W, (2, 3, 4))))
    assert W.hash in state.bodies
    state, _ = feed(state, timeout(1))
    assert W.hash in state.bodies  # round 2 is ours now: its ROUND-CHANGE still names W
    state, _ = feed(state, timeout(2))
    assert W.hash not in state.bodies and W.hash not in state.validity
