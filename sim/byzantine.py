"""Byzantine co-validators for the QBFT simulator: what a coalition of up to F malicious peers does.

Decides the attacks; nothing here is used by an honest node. The coalition shares its keys and its
knowledge (every message any member received), but cannot sign for an honest node: a forgery naming an
honest sender is refused by the simulator's `authentic` check, as the runtime's signature check would.

Each Byzantine node runs an honest QBFT core (so it looks alive and can lead) and deviates as told:

  silent      sends nothing at all.
  equivocate  sends each peer its own variant of every message: different proposals as leader,
              PREPAREs/COMMITs for different values, ROUND-CHANGEs that hide or misstate what it
              prepared (with real prepare certificates it saw).
  forge       sends proposals, ROUND-CHANGEs and DECIDEDs whose justifications are fabricated: the same
              sender repeated to reach a quorum, honest senders it cannot sign for, another instance's
              messages, prepares or commits for another value, and proposals that ignore the highest
              prepared value (J2) or pick a lower prepared one.
  stale       replays real messages of earlier rounds: old proposals, old ROUND-CHANGE quorums as
              justification for the current round, commit quorums mixing rounds, old prepare
              certificates (a lower prepared round than it really has).
  invalid     proposes values that fail the validity predicate whenever it leads.
  lock-break  the coalition's play against the lock that J2 protects: leading a round, it proposes to
              just enough honest nodes for a prepare quorum with the coalition's PREPAREs; it withholds
              the coalition's COMMITs; when a member next leads and can, it proposes a value other than
              the one the highest prepared round forces (with a real ROUND-CHANGE quorum), and at that
              moment releases the withheld COMMITs to one honest node, which decides late (and so
              never answers that round's ROUND-CHANGEs with DECIDED) while the others are offered
              another value. Only a justification check that ignores J2 lets this through.
  flood       at every round it sends every honest node ROUND-CHANGEs, PREPAREs and COMMITs for many
              future rounds (near and far) and values, twice.
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Iterable
from enum import StrEnum
from typing import cast

from covalidator.model.duty import DutyId
from covalidator.model.qbft import instance as qbft
from covalidator.model.qbft.events import (
    Broadcast,
    InputValue,
    QbftAction,
    Received,
    Send,
    StartTimer,
    TimerFired,
    TimerKind,
)
from covalidator.model.qbft.messages import NO_HASH, NOT_PREPARED, Envelope, Message, MsgType, Value
from covalidator.model.qbft.rules import RULES, Rules
from covalidator.sim.checker import ConsensusChecker
from covalidator.sim.network import Effect, NetBroadcast, NetSend, NetTimer

INPUT = "input"
ATTACK_RATE = 0.25  # chance, per delivered message, that a forge/stale node attacks
ATTACKS_PER_ROUND = 6  # ... at most this many times per round: enough variety, bounded volume
FLOOD_OFFSETS = (1, 2, 4, 5, 64, 1_000)  # inside the future-round window, just past it, far past it


class Behaviour(StrEnum):
    SILENT = "silent"
    EQUIVOCATE = "equivocate"
    FORGE = "forge"
    STALE = "stale"
    INVALID = "invalid"
    LOCK_BREAK = "lock-break"
    FLOOD = "flood"


BEHAVIOURS = tuple(Behaviour)


class Coalition:
    """What the Byzantine nodes know together: every authentic message any of them has seen."""

    def __init__(self, members: frozenset[int], n: int, quorum: int) -> None:
        self.members = members
        self.n = n
        self.quorum = quorum
        self.messages: dict[tuple[MsgType, int], dict[int, Message]] = {}
        self.round_changes: dict[int, dict[int, Envelope]] = {}
        self.bodies: dict[str, bytes] = {}
        self.withheld: list[Envelope] = []  # COMMITs signed but not yet sent (lock-break)

    def learn(self, env: Envelope) -> None:
        m = env.message
        for msg in (m, *env.justification):
            if msg.type != MsgType.DECIDED:
                self.messages.setdefault((msg.type, msg.round), {}).setdefault(msg.sender, msg)
        if m.type == MsgType.ROUND_CHANGE:
            self.round_changes.setdefault(m.round, {}).setdefault(m.sender, env)
        if env.body is not None:
            self.bodies.setdefault(m.value_hash or m.prepared_hash, env.body)

    def of(self, type: MsgType, round: int) -> list[Message]:
        return list(self.messages.get((type, round), {}).values())

    def certificates(
        self, type: MsgType, below_round: int | None = None
    ) -> list[tuple[int, str, tuple[Message, ...]]]:
        """Every quorum of PREPAREs or COMMITs for one (round, value) the coalition has seen."""
        found = []
        for (t, r), by_sender in sorted(self.messages.items()):
            if t != type or (below_round is not None and r >= below_round):
                continue
            groups: dict[str, list[Message]] = {}
            for msg in by_sender.values():
                groups.setdefault(msg.value_hash, []).append(msg)
            for value_hash, msgs in sorted(groups.items()):
                if len(msgs) >= self.quorum:
                    found.append((r, value_hash, tuple(sorted(msgs, key=lambda x: x.sender))))
        return found


class ByzantineNode:
    """A `SimNode` that deviates from QBFT as its `Behaviour` says."""

    def __init__(
        self,
        config: qbft.InstanceConfig,
        behaviour: Behaviour,
        coalition: Coalition,
        checker: ConsensusChecker,
        rng: random.Random,
        honest: list[int],
        alternatives: list[Value],
        invalid: Value,
        rules: Rules = RULES,
    ) -> None:
        self.cfg = config
        self.me = config.self_index
        self.behaviour = behaviour
        self.coalition = coalition
        self.checker = checker
        self.rng = rng
        self.honest = honest
        self.alternatives = alternatives
        self.invalid = invalid
        self.rules = rules
        self.state: qbft.InstanceState | None = None
        self.attacks: dict[int, int] = {}
        for v in (*alternatives, invalid):
            coalition.bodies.setdefault(v.hash, v.body)

    # --- SimNode -----------------------------------------------------------------------------------------

    def start(self, now_ms: int) -> Iterable[Effect[Envelope]]:
        if self.behaviour == Behaviour.SILENT:
            return []
        self.state, actions = qbft.init(self.cfg)
        effects = self._effects(actions)
        effects.append(NetTimer(now_ms, INPUT))
        if self.behaviour == Behaviour.FLOOD:
            effects.extend(self._flood())
        return effects

    def deliver(self, now_ms: int, sender: int, payload: Envelope) -> Iterable[Effect[Envelope]]:
        self.coalition.learn(payload)
        if self.state is None:
            return []
        effects = self._core(Received(payload))
        if self.behaviour in (Behaviour.FORGE, Behaviour.STALE) and self._may_attack():
            attack = self._forge() if self.behaviour == Behaviour.FORGE else self._stale()
            if attack is not None:
                # a proposal goes to every honest node (it needs a quorum to do harm); the rest to one
                targets = (
                    self.honest
                    if attack.message.type == MsgType.PRE_PREPARE
                    else [self.rng.choice(self.honest)]
                )
                effects.extend(self._send(t, attack) for t in targets)
        return effects

    def timer(self, now_ms: int, tag: Hashable) -> Iterable[Effect[Envelope]]:
        if self.state is None:
            return []
        if tag == INPUT:
            value = self.invalid if self.behaviour == Behaviour.INVALID else self.alternatives[0]
            return self._core(InputValue(self.cfg.instance, value))
        kind, round, at_ms = cast(tuple[TimerKind, int, int], tag)
        effects = self._core(TimerFired(self.cfg.instance, kind, round, at_ms))
        if self.behaviour == Behaviour.FLOOD and kind == TimerKind.ROUND:
            effects.extend(self._flood())
        return effects

    def crash(self, now_ms: int) -> None:  # the simulator crashes honest nodes only
        raise AssertionError("Byzantine nodes are not crashed")

    def restart(self, now_ms: int) -> Iterable[Effect[Envelope]]:
        raise AssertionError("Byzantine nodes are not crashed")

    # --- the core and its deviations ---------------------------------------------------------------------

    @property
    def round(self) -> int:
        return self.state.round if self.state is not None else 1

    def _core(self, event: InputValue | Received | TimerFired) -> list[Effect[Envelope]]:
        assert self.state is not None
        self.state, actions = qbft.step(self.state, event, lambda v: True, self.rules)
        return self._effects(actions)

    def _effects(self, actions: Iterable[QbftAction]) -> list[Effect[Envelope]]:
        effects: list[Effect[Envelope]] = []
        for action in actions:
            if isinstance(action, Broadcast):
                if self.behaviour == Behaviour.LOCK_BREAK and action.envelope.message.type == MsgType.COMMIT:
                    self._record(action.envelope)
                    self.coalition.withheld.append(action.envelope)
                elif (
                    self.behaviour == Behaviour.LOCK_BREAK
                    and action.envelope.message.type == MsgType.PRE_PREPARE
                ):
                    effects.extend(self._lock_break(action.envelope))
                elif self.behaviour == Behaviour.EQUIVOCATE:
                    for peer in range(1, self.cfg.n + 1):
                        if peer != self.me:
                            variant = (
                                action.envelope if self.rng.random() < 0.5 else self._variant(action.envelope)
                            )
                            effects.append(self._send(peer, variant))
                else:
                    self._record(action.envelope)
                    effects.append(NetBroadcast(action.envelope))
            elif isinstance(action, Send):
                effects.append(self._send(action.to, action.envelope))
            elif isinstance(action, StartTimer):
                effects.append(NetTimer(action.at_ms, (action.kind, action.round, action.at_ms)))
        return effects

    def _lock_break(self, proposal: Envelope) -> list[NetSend[Envelope]]:
        override = self._override_prepared(proposal.message.round, self._alt(), lower=False)
        if override is None:  # nothing to override: split the honest nodes instead
            enough = max(1, self.coalition.quorum - len(self.coalition.members))
            return [self._send(t, proposal) for t in self.honest[:enough]]
        late = [self._send(self.honest[0], c) for c in self.coalition.withheld]
        self.coalition.withheld.clear()
        return late + [self._send(t, override) for t in self.honest]

    def _record(self, env: Envelope) -> None:
        self.coalition.learn(env)
        self.checker.observe_send(self.me, env)

    def _send(self, to: int, env: Envelope) -> NetSend[Envelope]:
        self._record(env)
        return NetSend(to, env)

    def _may_attack(self) -> bool:
        r = self.round
        if self.attacks.get(r, 0) >= ATTACKS_PER_ROUND or self.rng.random() >= ATTACK_RATE:
            return False
        self.attacks[r] = self.attacks.get(r, 0) + 1
        return True

    def _msg(
        self,
        type: MsgType,
        round: int,
        value_hash: str = NO_HASH,
        sender: int | None = None,
        prepared_round: int = NOT_PREPARED,
        prepared_hash: str = NO_HASH,
    ) -> Message:
        sender = self.me if sender is None else sender
        return Message(type, self.cfg.instance, sender, round, value_hash, prepared_round, prepared_hash)

    def _alt(self) -> Value:
        return self.rng.choice(self.alternatives)

    def _variant(self, env: Envelope) -> Envelope:
        """The equivocating twin of one of our messages."""
        m = env.message
        alt = self._alt()
        if m.type == MsgType.PRE_PREPARE:
            return Envelope(self._msg(MsgType.PRE_PREPARE, m.round, alt.hash), alt.body, env.justification)
        if m.type in (MsgType.PREPARE, MsgType.COMMIT):
            return Envelope(self._msg(m.type, m.round, alt.hash))
        if m.type == MsgType.ROUND_CHANGE:
            certificates = self.coalition.certificates(MsgType.PREPARE, below_round=m.round)
            if certificates and self.rng.random() < 0.7:
                r, h, prepares = self.rng.choice(certificates)
                body = self.coalition.bodies.get(h)
                return Envelope(
                    self._msg(MsgType.ROUND_CHANGE, m.round, prepared_round=r, prepared_hash=h),
                    body,
                    prepares,
                )
            return Envelope(self._msg(MsgType.ROUND_CHANGE, m.round))
        return env

    def _round_change_quorum(self, round: int) -> list[Message]:
        return [env.message for env in self.coalition.round_changes.get(round, {}).values()]

    def _forge(self) -> Envelope | None:
        r = self.round
        q = self.coalition.quorum
        alt = self._alt()
        own_rc = self._msg(MsgType.ROUND_CHANGE, r)
        byz = sorted(self.coalition.members)
        honest_rcs = [m for m in self._round_change_quorum(r) if m.sender not in self.coalition.members]
        pick = self.rng.randrange(8)
        if pick == 0:  # one sender repeated up to a quorum
            return Envelope(self._msg(MsgType.PRE_PREPARE, r, alt.hash), alt.body, (own_rc,) * q)
        if pick == 1:  # honest senders we cannot sign for
            forged = tuple(self._msg(MsgType.ROUND_CHANGE, r, sender=s) for s in range(1, self.cfg.n + 1))
            return Envelope(self._msg(MsgType.PRE_PREPARE, r, alt.hash), alt.body, forged)
        if pick == 2:  # coalition members' ROUND-CHANGEs for another instance fill the quorum
            foreign = DutyId(self.cfg.instance.slot + 1, self.cfg.instance.kind)
            others = tuple(Message(MsgType.ROUND_CHANGE, foreign, s, r) for s in byz)
            return Envelope(self._msg(MsgType.PRE_PREPARE, r, alt.hash), alt.body, tuple(honest_rcs) + others)
        if pick == 3:  # a prepared claim backed by one sender's prepares, repeated
            fake = (self._msg(MsgType.PREPARE, max(r - 1, 1), alt.hash),) * q
            rc = self._msg(MsgType.ROUND_CHANGE, r, prepared_round=max(r - 1, 1), prepared_hash=alt.hash)
            return Envelope(rc, alt.body, fake)
        if pick == 4:  # a DECIDED whose commits are ours, repeated, or someone else's for another value
            commits = self.coalition.certificates(MsgType.COMMIT)
            if commits and self.rng.random() < 0.5:
                cr, _, msgs = self.rng.choice(commits)
                return Envelope(self._msg(MsgType.DECIDED, cr, alt.hash), alt.body, msgs)
            fake = (self._msg(MsgType.COMMIT, r, alt.hash),) * q
            return Envelope(self._msg(MsgType.DECIDED, r, alt.hash), alt.body, fake)
        if pick == 5:  # votes in an honest node's name
            victim = self.rng.choice(self.honest)
            return Envelope(
                self._msg(self.rng.choice((MsgType.PREPARE, MsgType.COMMIT)), r, alt.hash, sender=victim)
            )
        # picks 6, 7: as leader, a real ROUND-CHANGE quorum but not the value it forces (J2)
        return self._override_prepared(r, alt, lower=pick == 7)

    def _override_prepared(self, r: int, alt: Value, lower: bool) -> Envelope | None:
        """Propose `alt` (or a lower prepared value) with a real ROUND-CHANGE quorum whose highest
        prepared value is something else: exactly what a justification ignoring J2 would accept."""
        rcs = self.coalition.round_changes.get(r, {})
        if self.cfg.leader(r) not in self.coalition.members or len(rcs) < self.coalition.quorum:
            return None
        justification = tuple(env.message for _, env in sorted(rcs.items()))
        prepared = [env for env in rcs.values() if env.message.prepared_round != NOT_PREPARED]
        leader = self.cfg.leader(r)
        if lower:
            certificates = self.coalition.certificates(MsgType.PREPARE, below_round=r)
            if not certificates:
                return None
            _, ph, prepares = certificates[0]  # the lowest prepared round known
            body = self.coalition.bodies.get(ph)
            if body is None:
                return None
            return Envelope(
                self._msg(MsgType.PRE_PREPARE, r, ph, sender=leader), body, justification + prepares
            )
        prepares = max(prepared, key=lambda e: e.message.prepared_round).justification if prepared else ()
        return Envelope(
            self._msg(MsgType.PRE_PREPARE, r, alt.hash, sender=leader), alt.body, justification + prepares
        )

    def _stale(self) -> Envelope | None:
        r = self.round
        alt = self._alt()
        pick = self.rng.randrange(4)
        if pick == 0:  # relay an old round's real message
            old = [m for (t, mr), msgs in self.coalition.messages.items() if mr < r for m in msgs.values()]
            if not old:
                return None
            m = self.rng.choice(sorted(old, key=lambda x: (x.round, x.type, x.sender, x.value_hash)))
            return Envelope(
                m, self.coalition.bodies.get(m.value_hash) if m.type == MsgType.PRE_PREPARE else None
            )
        if pick == 1:  # as leader, the previous round's ROUND-CHANGE quorum offered for this round
            old_rcs = tuple(self._round_change_quorum(r - 1))
            if not old_rcs or self.cfg.leader(r) not in self.coalition.members:
                return None
            return Envelope(
                self._msg(MsgType.PRE_PREPARE, r, alt.hash, sender=self.cfg.leader(r)), alt.body, old_rcs
            )
        if pick == 2:  # a commit quorum stitched from several rounds
            commits = [
                m
                for (t, _), msgs in sorted(self.coalition.messages.items())
                if t == MsgType.COMMIT
                for m in msgs.values()
            ]
            by_sender: dict[int, Message] = {}
            for m in commits:
                by_sender.setdefault(m.sender, m)
            if not by_sender:
                return None
            first = next(iter(by_sender.values()))
            body = self.coalition.bodies.get(first.value_hash, alt.body)
            return Envelope(
                self._msg(MsgType.DECIDED, first.round, first.value_hash), body, tuple(by_sender.values())
            )
        # an old prepare certificate, hiding a later one
        certificates = self.coalition.certificates(MsgType.PREPARE, below_round=r)
        if not certificates:
            return None
        pr, ph, prepares = certificates[0]
        rc = self._msg(MsgType.ROUND_CHANGE, r, prepared_round=pr, prepared_hash=ph)
        return Envelope(rc, self.coalition.bodies.get(ph), prepares)

    def _flood(self) -> list[Effect[Envelope]]:
        r = self.round
        effects: list[Effect[Envelope]] = []
        for k in FLOOD_OFFSETS:
            alt = self.alternatives[k % len(self.alternatives)]
            for msg in (
                self._msg(MsgType.ROUND_CHANGE, r + k),
                self._msg(MsgType.PREPARE, r + k, alt.hash),
                self._msg(MsgType.COMMIT, r + k, alt.hash),
            ):
                env = Envelope(msg)
                self._record(env)
                copies = 2 if k == 1 else 1  # and the same again: duplicates must not be stored twice
                effects.extend(NetSend(peer, env) for peer in self.honest for _ in range(copies))
        return effects
