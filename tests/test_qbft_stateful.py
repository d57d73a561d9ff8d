"""Hypothesis drives 4 honest QBFT nodes and 1 Byzantine node through arbitrary interleavings.

The machine delivers pending messages in any order, duplicates them, drops them, fires any node's round
timer at any time (no timing assumption at all: safety must not need one), and lets the Byzantine node
send anything it can sign: votes for any value and round, proposals and ROUND-CHANGEs with justifications
assembled from every message it has seen (real honest messages, never forged ones: signatures), and
DECIDED messages. After every step the same checker the simulator uses asserts agreement, validity,
integrity, honest conduct and the memory bound.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from covalidator.model.duty import DutyId, DutyKind
from covalidator.model.qbft import instance as qbft
from covalidator.model.qbft.events import (
    Broadcast,
    Decide,
    InputValue,
    QbftAction,
    QbftEvent,
    Received,
    Send,
    TimerFired,
    TimerKind,
)
from covalidator.model.qbft.messages import Envelope, Message, MsgType, Value, make_value
from covalidator.model.qbft.rules import RULES, Rules
from covalidator.proofs.qbft_mutants import PLANTED_BUGS
from covalidator.sim.checker import ConsensusChecker

N = 5
BYZANTINE = 5
HONEST = (1, 2, 3, 4)
DUTY = DutyId(1, DutyKind.ATTESTER)  # leaders of rounds 1..5: 4, 5 (Byzantine), 1, 2, 3
BYZANTINE_ROUND = 2
VALUES = [make_value(b"valid: a"), make_value(b"valid: b"), make_value(b"valid: c"), make_value(b"invalid")]


def is_valid(value: Value) -> bool:
    return value.body.startswith(b"valid")


class QbftCluster(RuleBasedStateMachine):
    qbft_rules: Rules = RULES

    @initialize(inputs=st.lists(st.sampled_from(VALUES[:3]), min_size=len(HONEST), max_size=len(HONEST)))
    def setup(self, inputs: list[Value]) -> None:
        self.states = {i: qbft.init(qbft.InstanceConfig(DUTY, N, i, 0, 60_000))[0] for i in HONEST}
        self.pending: list[tuple[int, Envelope]] = []
        self.checker = ConsensusChecker(N, DUTY, frozenset({BYZANTINE}), is_valid, self.qbft_rules)
        self.seen: dict[
            Message, None
        ] = {}  # every signed message the Byzantine node knows (it sees all traffic)
        self.bodies = {v.hash: v.body for v in VALUES}
        self.decisions: dict[int, Decide] = {}
        for node, value in zip(HONEST, inputs, strict=True):
            self.run(node, InputValue(DUTY, value))

    # --- honest nodes --------------------------------------------------------------------------------

    def run(self, node: int, event: QbftEvent) -> None:
        self.states[node], actions = qbft.step(self.states[node], event, is_valid, self.qbft_rules)
        self.checker.observe_state(node, self.states[node])
        self.route(node, actions)

    def route(self, node: int, actions: tuple[QbftAction, ...]) -> None:
        for action in actions:
            if isinstance(action, Broadcast | Send):
                self.checker.observe_send(node, action.envelope)
                self.learn(action.envelope)
                targets = (
                    [action.to] if isinstance(action, Send) else [p for p in range(1, N + 1) if p != node]
                )
                self.pending.extend((t, action.envelope) for t in targets if t != BYZANTINE)
            elif isinstance(action, Decide):
                self.checker.observe_decide(node, action)
                self.decisions[node] = action

    def learn(self, env: Envelope) -> None:
        for m in (env.message, *env.justification):
            self.seen.setdefault(m)

    @rule(data=st.data(), count=st.integers(1, 12))
    def deliver_some(self, data: st.DataObject, count: int) -> None:
        """Deliver several pending messages, each one chosen anywhere in the queue (reordering)."""
        for _ in range(min(count, len(self.pending))):
            to, env = self.pending.pop(data.draw(st.integers(0, len(self.pending) - 1), label="message"))
            self.run(to, Received(env))

    @rule(data=st.data())
    def deliver(self, data: st.DataObject) -> None:
        if self.pending:
            to, env = self.pending.pop(data.draw(st.integers(0, len(self.pending) - 1), label="message"))
            self.run(to, Received(env))

    @rule(data=st.data())
    def duplicate(self, data: st.DataObject) -> None:
        if self.pending:
            to, env = self.pending[data.draw(st.integers(0, len(self.pending) - 1), label="message")]
            self.run(to, Received(env))

    @rule(data=st.data())
    def drop(self, data: st.DataObject) -> None:
        if self.pending:
            self.pending.pop(data.draw(st.integers(0, len(self.pending) - 1), label="message"))

    @rule(node=st.sampled_from(HONEST))
    def round_timeout(self, node: int) -> None:
        round = self.states[node].round
        self.run(node, TimerFired(DUTY, TimerKind.ROUND, round, round * 1000))

    # --- the Byzantine node --------------------------------------------------------------------------

    def group(
        self, data: st.DataObject, kind: MsgType, label: str, round: int | None = None
    ) -> tuple[Message, ...]:
        """Signed messages of one kind the adversary has seen (honest ones are real: no forgery), mostly
        one coherent (round, value) group, sometimes a subset or a mix: the material of justifications."""
        known = [m for m in self.seen if m.type == kind and (round is None or m.round == round)]
        if not known:
            return ()
        groups: dict[tuple[int, str], list[Message]] = {}
        for m in known:
            groups.setdefault((m.round, m.value_hash), []).append(m)
        how = data.draw(st.sampled_from(["group", "subset", "mix"]), label=f"{label} shape")
        if how == "mix":
            return tuple(
                data.draw(st.lists(st.sampled_from(known), max_size=N + 1, unique=True), label=label)
            )
        chosen = data.draw(st.sampled_from(sorted(groups)), label=label)
        if how == "subset":
            return tuple(
                data.draw(st.lists(st.sampled_from(groups[chosen]), min_size=1, unique=True), label=label)
            )
        return tuple(groups[chosen])

    @rule(
        data=st.data(),
        to=st.lists(st.sampled_from(HONEST), min_size=1, max_size=len(HONEST), unique=True),
        kind=st.sampled_from(
            [MsgType.PRE_PREPARE, MsgType.PREPARE, MsgType.COMMIT, MsgType.ROUND_CHANGE, MsgType.DECIDED]
        ),
        round=st.integers(1, 6),
        value=st.sampled_from(VALUES),
    )
    def byzantine_sends(
        self, data: st.DataObject, to: list[int], kind: MsgType, round: int, value: Value
    ) -> None:
        justification: tuple[Message, ...] = ()
        body: bytes | None = None
        message = Message(kind, DUTY, BYZANTINE, round, value.hash)
        if kind == MsgType.PRE_PREPARE:
            body = value.body
            justification = self.group(data, MsgType.ROUND_CHANGE, "round changes", round) + self.group(
                data, MsgType.PREPARE, "prepares"
            )
        elif kind == MsgType.ROUND_CHANGE:
            prepares = self.group(data, MsgType.PREPARE, "prepared certificate")
            if prepares and data.draw(st.booleans(), label="claims prepared"):
                claimed = prepares[0]
                message = Message(kind, DUTY, BYZANTINE, round, "", claimed.round, claimed.value_hash)
                body, justification = self.bodies.get(claimed.value_hash), prepares
            else:
                message = Message(kind, DUTY, BYZANTINE, round)
        elif kind == MsgType.DECIDED:
            justification = self.group(data, MsgType.COMMIT, "commits")
            if justification and data.draw(st.booleans(), label="decided value from commits"):
                value_hash = justification[0].value_hash
                message = Message(kind, DUTY, BYZANTINE, justification[0].round, value_hash)
                body = self.bodies.get(value_hash, value.body)
            else:
                body = value.body
        env = Envelope(message, body, justification)
        now = [t for t in to if data.draw(st.booleans(), label="now")]
        self.byzantine_send(env, now, [t for t in to if t not in now])

    def byzantine_send(self, env: Envelope, now: list[int], later: list[int] = ()) -> None:  # type: ignore[assignment]
        """What the Byzantine node signed goes to some peers at once and is queued for others."""
        self.checker.observe_send(BYZANTINE, env)
        self.learn(env)
        for target in now:
            self.run(target, Received(env))
        self.pending.extend((t, env) for t in later)

    @rule(
        data=st.data(),
        to=st.lists(st.sampled_from(HONEST), min_size=1, max_size=len(HONEST), unique=True),
        value=st.sampled_from(VALUES),
    )
    def byzantine_leads(self, data: st.DataObject, to: list[int], value: Value) -> None:
        """As the leader of its round, propose any value with the ROUND-CHANGEs it can gather (its own
        and any subset of the honest ones it saw), plus any prepare certificate it saw."""
        self.byzantine_send(
            Envelope(Message(MsgType.ROUND_CHANGE, DUTY, BYZANTINE, BYZANTINE_ROUND)), [], list(HONEST)
        )
        rcs = [m for m in self.seen if m.type == MsgType.ROUND_CHANGE and m.round == BYZANTINE_ROUND]
        chosen = data.draw(st.lists(st.sampled_from(rcs), min_size=1, unique=True), label="round changes")
        self.lead(to, value, tuple(chosen) + self.group(data, MsgType.PREPARE, "prepares"))

    def lead(self, to: list[int], value: Value, justification: tuple[Message, ...]) -> None:
        message = Message(MsgType.PRE_PREPARE, DUTY, BYZANTINE, BYZANTINE_ROUND, value.hash)
        self.byzantine_send(Envelope(message, value.body, justification), to)

    # --- invariants ----------------------------------------------------------------------------------

    @invariant()
    def no_violation(self) -> None:
        assert self.checker.violation is None, self.checker.violation
        assert self.checker.total_violations == 0

    @invariant()
    def decided_values_agree(self) -> None:
        assert len({d.value.hash for d in self.decisions.values()}) <= 1
        assert all(is_valid(d.value) for d in self.decisions.values())


QbftCluster.TestCase.settings = settings(
    max_examples=120, stateful_step_count=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestQbftCluster = QbftCluster.TestCase


def test_the_machine_reaches_decisions() -> None:
    """The machine is not vacuous: a plain delivery schedule decides (so agreement is really exercised)."""
    machine = QbftCluster()
    machine.setup([VALUES[0], VALUES[1], VALUES[2], VALUES[0]])
    while machine.pending:
        to, env = machine.pending.pop(0)
        machine.run(to, Received(env))
    machine.no_violation()
    assert set(machine.decisions) == set(HONEST)


def deliver_where(machine: QbftCluster, to: int, kind: MsgType, sender: int) -> None:
    """Deliver the matching pending message, if the schedule produced one."""
    for i, (t, e) in enumerate(machine.pending):
        if t == to and e.message.type == kind and e.message.sender == sender:
            machine.pending.pop(i)
            machine.run(t, Received(e))
            return


def test_the_machine_catches_a_planted_bug_on_a_known_schedule() -> None:
    """With a quorum of 2F, the Byzantine leader of round 2 splits the cluster. The schedule goes through
    the machine's own steps, so this shows its invariants are not vacuous; with the real rules the same
    schedule is harmless."""
    a, b = VALUES[0], VALUES[1]

    def attack(rules: Rules) -> QbftCluster:
        class Machine(QbftCluster):
            qbft_rules = rules

        m = Machine()
        m.setup([a, a, a, a])
        deliver_where(m, 1, MsgType.PRE_PREPARE, 4)  # node 1 gets the round-1 proposal and prepares it
        deliver_where(m, 1, MsgType.PREPARE, 4)
        deliver_where(m, 4, MsgType.PREPARE, 1)
        deliver_where(m, 4, MsgType.COMMIT, 1)  # with Q = 2 node 4 now decides a
        m.round_timeout(2)  # node 2 saw nothing of round 1 and moves on
        own_rc = Envelope(Message(MsgType.ROUND_CHANGE, DUTY, BYZANTINE, BYZANTINE_ROUND))
        m.byzantine_send(own_rc, [2])
        node_2_rc = Message(MsgType.ROUND_CHANGE, DUTY, 2, BYZANTINE_ROUND)
        m.lead([2], b, (own_rc.message, node_2_rc))
        m.byzantine_send(Envelope(Message(MsgType.PREPARE, DUTY, BYZANTINE, BYZANTINE_ROUND, b.hash)), [2])
        m.byzantine_send(Envelope(Message(MsgType.COMMIT, DUTY, BYZANTINE, BYZANTINE_ROUND, b.hash)), [2])
        return m

    broken = attack(PLANTED_BUGS["quorum-2f"])
    assert broken.decisions[4].value == a and broken.decisions[2].value == b
    with pytest.raises(AssertionError, match="agreement"):
        broken.no_violation()
    safe = attack(RULES)
    safe.no_violation()
    assert safe.decisions == {}
