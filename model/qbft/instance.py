"""One QBFT consensus instance (one per `DutyId`) as a pure state machine.

    state, actions = init(config)
    state, actions = step(state, event, is_valid)        # pure, deterministic: no clock, no I/O

Decides everything one co-validator does in one instance: which messages it accepts and stores, when
it prepares, commits, changes round, proposes and decides. It does not authenticate messages (the
runtime verifies every signature, including those inside justifications, before `Received` reaches
`step`), does not read a clock (deadlines come back as `TimerFired`), and does not persist anything
(`Decide` tells the caller to).

The protocol is QBFT as in Moniz, "The Istanbul BFT Consensus Algorithm" (2020), Algorithms 1-4, and
the QBFT specification (Consensys formal spec; Charon and SSV follow it). The upon-rules, in the order
`_run_rules` tries them after every event:

  decide        a quorum of COMMITs for (r, h), any round r, with the body of h -> Decide; or a DECIDED
                envelope carrying such a quorum (how a node that fell behind catches up).
  jump          F + 1 distinct senders' ROUND-CHANGEs for rounds above ours -> move to the smallest round
                among the F + 1 highest (so at least one honest node is there) and send ROUND-CHANGE.
  propose       we lead round r: r = 1 and we have our input; or r > 1 and we hold a quorum of
                ROUND-CHANGEs for r -> PRE-PREPARE the highest prepared value among them, or our input
                if none prepared, justified by those ROUND-CHANGEs (and the PREPAREs of the highest).
  prepare       a justified PRE-PREPARE from the leader of our round, whose body we hold and which passes
                the external validity predicate -> PREPARE (once per round; an invalid value never).
  commit        a quorum of PREPAREs for (our round, h) -> remember (r, h) and its PREPAREs as our
                prepared certificate, COMMIT (once per round).
  round timeout TimerFired for our round -> next round, ROUND-CHANGE with our prepared round and value.

Quorum Q = ceil((N + F + 1) / 2), F = floor((N - 1) / 3), leader (slot + kind + round) mod N: see
`qbft_rules` (whose predicates `proofs/qbft.py` proves things about). Timers: `qbft_timers`.

Bounded memory (what one sender can make us store):
  - one message per (type, round, sender), first one wins: duplicates and equivocations are dropped;
  - only rounds in [our round, our round + max_future_rounds] and <= the instance's last round are
    stored; older rounds keep only their PRE-PREPARE and COMMITs (a late commit quorum still decides);
  - bodies are kept only while a stored message names them; one PRE-PREPARE per round (its leader's);
  - after Decide only the decision is kept (to answer laggards, once per peer and round);
  - at the expiry deadline the instance forgets everything and emits Expired.
  `qbft.memory.memory_bound(config)` states the resulting bound; the simulator checks it after every
  event.

Crash and restart: `restart(config, now)` rebuilds an instance that lost its memory. Because round r
ends at an absolute deadline and honest nodes enter r only when r - 1 ended (or after F + 1 peers did),
a node cannot have voted in a round later than `round_at(now)`; the restarted instance therefore stays
*mute* (receives, decides, sends nothing) through that round, so it never votes twice in one round.
It has lost its prepared certificate, which is why a node that restarts counts against F in the
simulator's B + C <= F.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from dataclasses_json import DataClassJsonMixin

from covalidator.model.duty import DutyId
from covalidator.model.qbft.events import (
    Broadcast,
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
from covalidator.model.qbft.messages import (
    NO_HASH,
    NOT_PREPARED,
    Envelope,
    Message,
    MsgType,
    Value,
    compute_value_hash,
)
from covalidator.model.qbft.rules import RULES, Rules, leader, round_change_slots, vote_slots
from covalidator.model.qbft.timers import ROUND_DURATION_MS, ROUND_INCREASE_MS, round_at, round_deadline

MAX_FUTURE_ROUNDS = 4  # absolute timers keep honest nodes within a round of each other
RULE_PASSES_LIMIT = 64  # the upon-rules reach a fixpoint in a few passes; this bounds the loop

ValidityPredicate = Callable[[Value], bool]


@dataclass(frozen=True)
class InstanceConfig(DataClassJsonMixin):
    """What an instance needs to know that never changes: who, which duty, when."""

    instance: DutyId
    n: int
    self_index: int  # this node's share index, 1..n
    start_ms: int  # the duty's consensus start: round 1 begins here
    expiry_ms: int  # after this the instance is pruned
    round_duration_ms: int = ROUND_DURATION_MS
    round_increase_ms: int = ROUND_INCREASE_MS
    max_future_rounds: int = MAX_FUTURE_ROUNDS
    restart_margin_ms: int = 0  # bound on clock skew between nodes (restart muting)

    def __post_init__(self) -> None:
        assert self.n >= 1 and 1 <= self.self_index <= self.n
        assert self.expiry_ms > self.start_ms and self.max_future_rounds >= 1

    def deadline(self, round: int) -> int:
        return round_deadline(self.start_ms, round, self.round_duration_ms, self.round_increase_ms)

    def round_at(self, now_ms: int) -> int:
        return round_at(self.start_ms, now_ms, self.round_duration_ms, self.round_increase_ms)

    @property
    def max_round(self) -> int:
        """The last round that begins before the expiry deadline."""
        return self.round_at(self.expiry_ms - 1)

    def leader(self, round: int) -> int:
        return leader(self.instance.slot, int(self.instance.kind), round, self.n)


def _empty() -> Mapping[int, Message]:
    return {}


def _empty_env() -> Mapping[int, Envelope]:
    return {}


@dataclass(frozen=True)
class RoundMessages:
    """What we hold for one round: at most one message per (type, sender)."""

    pre_prepare: Envelope | None = None
    prepares: Mapping[int, Message] = field(default_factory=_empty)
    commits: Mapping[int, Message] = field(default_factory=_empty)
    round_changes: Mapping[int, Envelope] = field(default_factory=_empty_env)


EMPTY_ROUND = RoundMessages()


@dataclass(frozen=True)
class Decision(DataClassJsonMixin):
    round: int
    value: Value
    commits: tuple[Message, ...]


@dataclass(frozen=True)
class InstanceState:
    config: InstanceConfig
    round: int = 1
    input: Value | None = None
    prepared_round: int = NOT_PREPARED
    prepared_hash: str = NO_HASH
    prepared_justification: tuple[Message, ...] = ()
    rounds: Mapping[int, RoundMessages] = field(default_factory=dict)
    bodies: Mapping[str, bytes] = field(default_factory=dict)
    validity: Mapping[str, bool] = field(default_factory=dict)
    sent: frozenset[tuple[MsgType, int]] = frozenset()  # (type, round) we already sent: once each
    decision: Decision | None = None
    replied: Mapping[int, int] = field(default_factory=dict)  # peer -> highest round we sent DECIDED for
    mute_through_round: int = 0
    expired: bool = False
    dropped: int = 0  # messages refused: foreign, unjustified, out of window, duplicate, equivocation


def init(config: InstanceConfig) -> tuple[InstanceState, tuple[QbftAction, ...]]:
    """A fresh instance in round 1: start its round timer and its expiry timer."""
    state = InstanceState(config=config)
    return state, _initial_timers(config, 1)


def restart(
    config: InstanceConfig, now_ms: int, decision: Decision | None = None
) -> tuple[InstanceState, tuple[QbftAction, ...]]:
    """An instance rebuilt after a crash that lost its memory (the decision, if any, was persisted).

    It joins in the round `now_ms` falls in but stays mute through it (and through any round it could
    have reached before the crash, allowing `restart_margin_ms` of clock skew): see the module doc."""
    round = config.round_at(now_ms)
    mute = config.round_at(now_ms + config.restart_margin_ms) if now_ms >= config.start_ms else 0
    state = InstanceState(config=config, round=round, mute_through_round=mute, decision=decision)
    if decision is not None:
        return state, (StartTimer(config.instance, TimerKind.EXPIRY, 0, config.expiry_ms),)
    return state, _initial_timers(config, round)


def _initial_timers(config: InstanceConfig, round: int) -> tuple[QbftAction, ...]:
    return (
        StartTimer(config.instance, TimerKind.ROUND, round, config.deadline(round)),
        StartTimer(config.instance, TimerKind.EXPIRY, 0, config.expiry_ms),
    )


def step(
    state: InstanceState, event: QbftEvent, is_valid: ValidityPredicate, rules: Rules = RULES
) -> tuple[InstanceState, tuple[QbftAction, ...]]:
    """Apply one event; return the new state and the actions to execute, in order."""
    if state.expired:
        return state, ()
    if not isinstance(event, Received):
        assert event.instance == state.config.instance, "event routed to the wrong instance"
    tx = _Transition(state, is_valid, rules)
    match event:
        case Received(envelope=envelope):
            tx.on_envelope(envelope)
        case TimerFired(kind=TimerKind.EXPIRY):
            return tx.on_expiry()
        case TimerFired(round=round):
            tx.on_round_timeout(round)
        case InputValue(value=value):
            tx.on_input(value)
    tx.run_rules()
    return tx.freeze(), tuple(tx.actions)


class _Transition:
    """The working copy of one `step`: reads the old state, never mutates it, builds the new one."""

    def __init__(self, state: InstanceState, is_valid: ValidityPredicate, rules: Rules) -> None:
        self.old = state
        self.cfg = state.config
        self.is_valid = is_valid
        self.rules = rules
        self.quorum: int = rules.quorum_size(self.cfg.n)
        self.round = state.round
        self.input = state.input
        self.prepared_round = state.prepared_round
        self.prepared_hash = state.prepared_hash
        self.prepared_justification = state.prepared_justification
        self.rounds: dict[int, RoundMessages] = dict(state.rounds)
        self.bodies: Mapping[str, bytes] = state.bodies
        self.validity: Mapping[str, bool] = state.validity
        self.sent = state.sent
        self.decision = state.decision
        self.replied = state.replied
        self.dropped = state.dropped
        self.actions: list[QbftAction] = []
        self.commit_rounds_to_check: set[int] = set()
        self.future_round_change = False  # the F + 1 jump can only become possible when one arrives

    def freeze(self) -> InstanceState:
        return InstanceState(
            config=self.cfg,
            round=self.round,
            input=self.input,
            prepared_round=self.prepared_round,
            prepared_hash=self.prepared_hash,
            prepared_justification=self.prepared_justification,
            rounds=self.rounds,
            bodies=self.bodies,
            validity=self.validity,
            sent=self.sent,
            decision=self.decision,
            replied=self.replied,
            mute_through_round=self.old.mute_through_round,
            expired=False,
            dropped=self.dropped,
        )

    # --- small helpers ---------------------------------------------------------------------------------

    @property
    def muted(self) -> bool:
        return self.round <= self.old.mute_through_round

    def drop(self) -> None:
        self.dropped += 1

    def add_body(self, value_hash: str, body: bytes) -> None:
        if value_hash not in self.bodies:
            self.bodies = {**self.bodies, value_hash: body}
            self.commit_rounds_to_check.update(r for r, rm in self.rounds.items() if rm.commits)

    def is_value_valid(self, value_hash: str) -> bool:
        cached = self.validity.get(value_hash)
        if cached is None:
            cached = bool(self.is_valid(Value(value_hash, self.bodies[value_hash])))
            self.validity = {**self.validity, value_hash: cached}
        return cached

    def round_messages(self, round: int) -> RoundMessages:
        return self.rounds.get(round, EMPTY_ROUND)

    def message(self, type: MsgType, value_hash: str = NO_HASH) -> Message:
        return Message(type, self.cfg.instance, self.cfg.self_index, self.round, value_hash)

    def emit(self, envelope: Envelope) -> None:
        """Broadcast our own message and store it as if received (we count our own votes)."""
        m = envelope.message
        self.sent = self.sent | {(m.type, m.round)}
        self.actions.append(Broadcast(envelope))
        rm = self.round_messages(m.round)
        me = self.cfg.self_index
        match m.type:
            case MsgType.PRE_PREPARE:
                self.rounds[m.round] = _replace_round(rm, pre_prepare=_strip_body(envelope))
            case MsgType.PREPARE:
                self.rounds[m.round] = _replace_round(rm, prepares={**rm.prepares, me: m})
            case MsgType.COMMIT:
                self.rounds[m.round] = _replace_round(rm, commits={**rm.commits, me: m})
                self.commit_rounds_to_check.add(m.round)
            case MsgType.ROUND_CHANGE:
                self.rounds[m.round] = _replace_round(
                    rm, round_changes={**rm.round_changes, me: _strip_body(envelope)}
                )

    # --- events ----------------------------------------------------------------------------------------

    def on_input(self, value: Value) -> None:
        if self.input is None and self.decision is None:
            self.input = value
            self.add_body(value.hash, value.body)

    def on_round_timeout(self, round: int) -> None:
        if self.decision is not None or round != self.round or round >= self.cfg.max_round:
            return  # stale timer (we already moved on), decided, or the last round: expiry comes next
        self.enter_round(round + 1)
        self.send_round_change()

    def on_expiry(self) -> tuple[InstanceState, tuple[QbftAction, ...]]:
        expired = InstanceState(config=self.cfg, round=self.round, decision=self.decision, expired=True)
        return expired, (Expired(self.cfg.instance, self.decision is not None),)

    def on_envelope(self, env: Envelope) -> None:
        m = env.message
        cfg = self.cfg
        if (
            m.instance != cfg.instance
            or not 1 <= m.sender <= cfg.n
            or m.sender == cfg.self_index
            or m.round < 1
        ):
            self.drop()
            return
        if self.decision is not None:
            self.answer_laggard(m)
            return
        if m.type == MsgType.DECIDED:
            self.on_decided(env)
            return
        if m.round > cfg.max_round or m.round > self.round + cfg.max_future_rounds:
            self.drop()  # beyond the window: a flood of future rounds costs us nothing
            return
        if m.type == MsgType.COMMIT:
            self.store_vote(m)
        elif m.round < self.round:
            self.drop()  # an old round's PRE-PREPARE, PREPARE or ROUND-CHANGE can no longer matter
        elif m.type == MsgType.PREPARE:
            self.store_vote(m)
        elif m.type == MsgType.PRE_PREPARE:
            self.on_pre_prepare(env)
        elif m.type == MsgType.ROUND_CHANGE:
            self.on_round_change(env)
        else:
            self.drop()

    def answer_laggard(self, m: Message) -> None:
        """A peer still running a decided instance gets the commit certificate, once per its round."""
        assert self.decision is not None
        if m.type != MsgType.ROUND_CHANGE or self.replied.get(m.sender, 0) >= m.round:
            return
        self.replied = {**self.replied, m.sender: m.round}
        d = self.decision
        decided = Message(MsgType.DECIDED, self.cfg.instance, self.cfg.self_index, d.round, d.value.hash)
        self.actions.append(Send(m.sender, Envelope(decided, d.value.body, d.commits)))

    def store_vote(self, m: Message) -> None:
        rm = self.round_messages(m.round)
        if m.type == MsgType.PREPARE:
            if m.sender in rm.prepares:
                self.drop()
                return
            self.rounds[m.round] = _replace_round(rm, prepares={**rm.prepares, m.sender: m})
        else:
            if m.sender in rm.commits:
                self.drop()
                return
            self.rounds[m.round] = _replace_round(rm, commits={**rm.commits, m.sender: m})
            self.commit_rounds_to_check.add(m.round)

    def on_pre_prepare(self, env: Envelope) -> None:
        m = env.message
        rm = self.round_messages(m.round)
        if rm.pre_prepare is not None or m.sender != self.cfg.leader(m.round):
            self.drop()  # a duplicate, an equivocation (first one wins), or not the round's leader
            return
        if m.round > 1 and not self.is_justified_pre_prepare(env):
            self.drop()
            return
        if env.body is None or compute_value_hash(env.body) != m.value_hash:
            self.drop()  # hashed last: a flood of unjustified proposals costs no hashing
            return
        self.rounds[m.round] = _replace_round(rm, pre_prepare=_strip_body(env))
        self.add_body(m.value_hash, env.body)

    def is_justified_pre_prepare(self, env: Envelope) -> bool:
        m = env.message
        n, instance = self.cfg.n, self.cfg.instance
        rc_msgs = [j for j in env.justification if j.type == MsgType.ROUND_CHANGE]
        prepare_msgs = [j for j in env.justification if j.type != MsgType.ROUND_CHANGE]
        rcs = round_change_slots(n, instance, rc_msgs)
        prepares = vote_slots(n, instance, MsgType.PREPARE, prepare_msgs)
        if rcs is None or prepares is None:
            return False
        return bool(
            self.rules.is_justified_proposal(
                n, m.round, m.value_hash, rcs, prepares, quorum_size=self.rules.quorum_size
            )
        )

    def on_round_change(self, env: Envelope) -> None:
        m = env.message
        rm = self.round_messages(m.round)
        if m.sender in rm.round_changes:
            self.drop()
            return
        if m.prepared_round == NOT_PREPARED:
            if m.prepared_hash != NO_HASH or env.justification or env.body is not None:
                self.drop()
                return
        else:
            prepares = vote_slots(self.cfg.n, self.cfg.instance, MsgType.PREPARE, env.justification)
            if prepares is None or not self.rules.is_justified_round_change(
                self.cfg.n,
                m.round,
                m.prepared_round,
                m.prepared_hash,
                prepares,
                quorum_size=self.rules.quorum_size,
            ):
                self.drop()
                return
            if env.body is not None:
                if m.prepared_hash not in self.bodies and compute_value_hash(env.body) != m.prepared_hash:
                    self.drop()
                    return
                self.add_body(m.prepared_hash, env.body)
        self.rounds[m.round] = _replace_round(
            rm, round_changes={**rm.round_changes, m.sender: _strip_body(env)}
        )
        self.future_round_change |= m.round > self.round

    def on_decided(self, env: Envelope) -> None:
        m = env.message
        commits = vote_slots(self.cfg.n, self.cfg.instance, MsgType.COMMIT, env.justification)
        if (
            env.body is None
            or commits is None
            or not self.rules.is_commit_certificate(
                self.cfg.n, m.round, m.value_hash, commits, quorum_size=self.rules.quorum_size
            )
            or compute_value_hash(env.body) != m.value_hash
        ):
            self.drop()
            return
        self.decide(m.round, Value(m.value_hash, env.body), tuple(sorted(env.justification, key=_by_sender)))

    # --- the upon-rules ------------------------------------------------------------------------------------

    def run_rules(self) -> None:
        for _ in range(RULE_PASSES_LIMIT):
            if self.decision is not None:
                return
            if self.try_decide():
                return
            if not (self.try_jump() or self.try_propose() or self.try_prepare() or self.try_commit()):
                return
        raise AssertionError("QBFT upon-rules did not reach a fixpoint")  # a bug, never a peer's doing

    def try_decide(self) -> bool:
        rounds, self.commit_rounds_to_check = self.commit_rounds_to_check, set()
        n, instance = self.cfg.n, self.cfg.instance
        for r in sorted(rounds):
            commits = self.round_messages(r).commits
            if len(commits) < self.quorum:
                continue  # the upon-rule needs a quorum of COMMITs; the certificate check below confirms it
            for value_hash, senders in _group_by_value(commits).items():
                if len(senders) < self.quorum or value_hash not in self.bodies:
                    continue
                certificate = tuple(commits[s] for s in sorted(senders))
                slots = vote_slots(n, instance, MsgType.COMMIT, certificate)
                assert slots is not None  # stored commits are one per sender, in range, of this instance
                if self.rules.is_commit_certificate(
                    n, r, value_hash, slots, quorum_size=self.rules.quorum_size
                ):
                    self.decide(r, Value(value_hash, self.bodies[value_hash]), certificate)
                    return True
        return False

    def decide(self, round: int, value: Value, commits: tuple[Message, ...]) -> None:
        self.decision = Decision(round, value, commits)
        self.actions.append(Decide(self.cfg.instance, round, value, commits))
        self.rounds, self.bodies, self.validity = {}, {}, {}  # only the decision matters from now on

    def try_jump(self) -> bool:
        """F + 1 ROUND-CHANGEs for higher rounds: jump to the smallest round among the F + 1 highest."""
        if not self.future_round_change:
            return False
        self.future_round_change = False
        highest: dict[int, int] = {}
        for r in range(self.round + 1, self.round + self.cfg.max_future_rounds + 1):
            for sender in self.round_messages(r).round_changes:
                highest[sender] = r
        # the highest round that enough senders (F + 1: one is honest) have reached or passed
        rounds = sorted(highest.values(), reverse=True)
        jump = self.rules.is_round_change_jump
        target = next(
            (r for k, r in enumerate(rounds) if jump(k + 1, self.cfg.n, self.rules.fault_tolerance)), None
        )
        if target is None:
            return False
        self.enter_round(target)
        self.send_round_change()
        self.future_round_change = True  # ROUND-CHANGEs above the new round may justify another jump
        return True

    def try_propose(self) -> bool:
        r = self.round
        if self.muted or self.cfg.leader(r) != self.cfg.self_index or (MsgType.PRE_PREPARE, r) in self.sent:
            return False
        if r == 1:
            if self.input is None or not self.is_value_valid(self.input.hash):
                return False
            self.emit(Envelope(self.message(MsgType.PRE_PREPARE, self.input.hash), self.input.body))
            return True
        rcs = self.round_messages(r).round_changes
        if len(rcs) < self.quorum:
            return False
        justification = tuple(rcs[s].message for s in sorted(rcs))
        highest = max(env.message.prepared_round for env in rcs.values())
        if highest == NOT_PREPARED:
            if self.input is None or not self.is_value_valid(self.input.hash):
                return False  # nothing to propose yet; InputValue will wake this rule up
            self.emit(
                Envelope(self.message(MsgType.PRE_PREPARE, self.input.hash), self.input.body, justification)
            )
            return True
        best = next(rcs[s] for s in sorted(rcs) if rcs[s].message.prepared_round == highest)
        value_hash = best.message.prepared_hash
        body = self.bodies.get(value_hash)
        if body is None:
            return False  # cannot propose a body we do not have; the round will time out
        prepares = tuple(sorted(best.justification, key=_by_sender))
        self.emit(Envelope(self.message(MsgType.PRE_PREPARE, value_hash), body, justification + prepares))
        return True

    def try_prepare(self) -> bool:
        r = self.round
        pre_prepare = self.round_messages(r).pre_prepare
        if pre_prepare is None or self.muted or (MsgType.PREPARE, r) in self.sent:
            return False
        value_hash = pre_prepare.message.value_hash
        if not self.is_value_valid(value_hash):
            return False  # an invalid proposal is never prepared
        self.emit(Envelope(self.message(MsgType.PREPARE, value_hash)))
        return True

    def try_commit(self) -> bool:
        r = self.round
        if self.muted or (MsgType.COMMIT, r) in self.sent:
            return False
        prepares = self.round_messages(r).prepares
        if len(prepares) < self.quorum:
            return False
        for value_hash, senders in _group_by_value(prepares).items():
            if len(senders) >= self.quorum:
                self.prepared_round, self.prepared_hash = r, value_hash
                self.prepared_justification = tuple(prepares[s] for s in sorted(senders))
                self.emit(Envelope(self.message(MsgType.COMMIT, value_hash)))
                return True
        return False

    # --- rounds ----------------------------------------------------------------------------------------

    def enter_round(self, round: int) -> None:
        assert round > self.round
        self.round = round
        self.actions.append(StartTimer(self.cfg.instance, TimerKind.ROUND, round, self.cfg.deadline(round)))
        self.prune()

    def send_round_change(self) -> None:
        if self.muted:
            return
        pr, ph = self.prepared_round, self.prepared_hash
        m = Message(MsgType.ROUND_CHANGE, self.cfg.instance, self.cfg.self_index, self.round, NO_HASH, pr, ph)
        body = self.bodies.get(ph) if pr != NOT_PREPARED else None
        self.emit(Envelope(m, body, self.prepared_justification))

    def prune(self) -> None:
        """Forget what can no longer matter: old rounds keep only their PRE-PREPARE and COMMITs (a late
        commit quorum still decides, with the proposal's body); unreferenced bodies go."""
        kept: dict[int, RoundMessages] = {}
        for r, rm in self.rounds.items():
            if r >= self.round:
                kept[r] = rm
            elif rm.commits or rm.pre_prepare is not None:
                kept[r] = RoundMessages(pre_prepare=rm.pre_prepare, commits=rm.commits)
        self.rounds = kept
        needed = {self.prepared_hash}
        if self.input is not None:
            needed.add(self.input.hash)
        for rm in kept.values():
            if rm.pre_prepare is not None:
                needed.add(rm.pre_prepare.message.value_hash)
            needed.update(env.message.prepared_hash for env in rm.round_changes.values())
            needed.update(m.value_hash for m in rm.commits.values())
        if any(h not in needed for h in self.bodies):
            self.bodies = {h: b for h, b in self.bodies.items() if h in needed}
            self.validity = {h: v for h, v in self.validity.items() if h in needed}


def _replace_round(
    rm: RoundMessages,
    *,
    pre_prepare: Envelope | None = None,
    prepares: Mapping[int, Message] | None = None,
    commits: Mapping[int, Message] | None = None,
    round_changes: Mapping[int, Envelope] | None = None,
) -> RoundMessages:
    return RoundMessages(
        pre_prepare if pre_prepare is not None else rm.pre_prepare,
        prepares if prepares is not None else rm.prepares,
        commits if commits is not None else rm.commits,
        round_changes if round_changes is not None else rm.round_changes,
    )


def _strip_body(env: Envelope) -> Envelope:
    """Bodies live once in `bodies`, by hash; stored envelopes keep only message and justification."""
    return env if env.body is None else Envelope(env.message, None, env.justification)


def _group_by_value(votes: Mapping[int, Message]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for sender, m in votes.items():
        groups.setdefault(m.value_hash, []).append(sender)
    return groups


def _by_sender(m: Message) -> int:
    return m.sender
