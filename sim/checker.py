"""Whether a run of QBFT nodes is correct: the invariants the simulator and the stateful tests check.

Decides, from what the nodes send and decide (never from their insides, except the memory bound), if
a run broke one of:

  agreement  no two non-Byzantine nodes decide different values;
  validity   a decided value passes the validity predicate of an honest node;
  integrity  a node decides at most once (a restarted node keeps its persisted decision);
  conduct    every honest node behaves as the agreement proof (proofs/qbft.py) assumes, checked
             against everything actually sent in the run:
               - at most one PRE-PREPARE, PREPARE, COMMIT and ROUND-CHANGE per round, across restarts;
               - a PRE-PREPARE only from the round's leader and justified by the rules;
               - a PREPARE(r, h) only for a justified PRE-PREPARE(r, h) from the leader whose value is
                 valid;
               - a COMMIT(r, h) only after a quorum of PREPARE(r, h) was sent;
               - a ROUND-CHANGE(r, pr, ph) only with pr < r, backed by a quorum of PREPARE(pr, ph), and,
                 for a node that never lost its memory, pr >= the round of its last COMMIT;
  memory     an honest instance never stores more messages than `qbft.memory.memory_bound`.

A violation is a one-line string naming the invariant; the first one is kept until taken.
"""

from __future__ import annotations

from collections.abc import Callable

from covalidator.model.duty import DutyId
from covalidator.model.qbft.events import Decide
from covalidator.model.qbft.instance import InstanceState
from covalidator.model.qbft.memory import memory_bound, stored_message_count
from covalidator.model.qbft.messages import (
    NOT_PREPARED,
    Envelope,
    Message,
    MsgType,
    Value,
    compute_value_hash,
)
from covalidator.model.qbft.rules import RULES, Rules, leader, round_change_slots, vote_slots

AGREEMENT, VALIDITY, INTEGRITY, CONDUCT, MEMORY = "agreement", "validity", "integrity", "conduct", "memory"
INVARIANTS = (AGREEMENT, VALIDITY, INTEGRITY, CONDUCT, MEMORY)


class ConsensusChecker:
    def __init__(
        self,
        n: int,
        instance: DutyId,
        byzantine: frozenset[int],
        is_valid: Callable[[Value], bool],
        rules: Rules = RULES,
    ) -> None:
        self.n = n
        self.instance = instance
        self.byzantine = byzantine
        self.is_valid = is_valid
        self.rules = rules
        self.quorum: int = rules.quorum_size(n)
        self.decided: dict[int, Decide] = {}
        self.first_decision: tuple[int, Decide] | None = None
        self.violation: str | None = None
        self.violations: dict[str, int] = dict.fromkeys(INVARIANTS, 0)
        # everything authentic that was sent, by anyone: what honest conduct is checked against
        self.prepares: dict[tuple[int, str], set[int]] = {}
        self.justified_proposals: set[tuple[int, str]] = set()
        self.bodies: dict[str, bytes] = {}
        self.once: set[tuple[int, MsgType, int]] = set()
        self.last_commit: dict[int, int] = {}
        self.amnesiac: set[int] = set()

    def _fail(self, invariant: str, detail: str) -> None:
        self.violations[invariant] += 1
        if self.violation is None:
            self.violation = f"{invariant}: {detail}"

    def take_violation(self) -> str | None:
        v, self.violation = self.violation, None
        return v

    @property
    def total_violations(self) -> int:
        return sum(self.violations.values())

    # --- observations ------------------------------------------------------------------------------------

    def observe_restart(self, node: int) -> None:
        self.amnesiac.add(node)

    def observe_send(self, node: int, envelope: Envelope) -> None:
        """Every message a node puts on the network (call once per distinct message, not per recipient)."""
        m = envelope.message
        authentic = m.sender == node or (node in self.byzantine and m.sender in self.byzantine)
        if not authentic:
            return  # a forgery: the transport refuses it, so it never existed for the protocol
        value_hash = m.value_hash or m.prepared_hash
        body = envelope.body
        if body is not None and value_hash not in self.bodies and compute_value_hash(body) == value_hash:
            self.bodies[value_hash] = body
        if node not in self.byzantine:
            self._check_conduct(node, envelope)
        if m.type == MsgType.PREPARE:
            self.prepares.setdefault((m.round, m.value_hash), set()).add(m.sender)
        elif m.type == MsgType.PRE_PREPARE and self._is_justified_proposal(envelope):
            self.justified_proposals.add((m.round, m.value_hash))

    def observe_decide(self, node: int, decide: Decide) -> None:
        if node in self.byzantine:
            return
        if node in self.decided:
            self._fail(
                INTEGRITY,
                f"n{node} decided twice ({self.decided[node].value.hash[:12]} then {decide.value.hash[:12]})",
            )
            return
        self.decided[node] = decide
        if self.first_decision is None:
            self.first_decision = (node, decide)
        elif self.first_decision[1].value.hash != decide.value.hash:
            first_node, first = self.first_decision
            self._fail(
                AGREEMENT,
                f"n{node} decided {decide.value.hash[:12]} in round {decide.round}, "
                f"n{first_node} decided {first.value.hash[:12]} in round {first.round}",
            )
        if not self.is_valid(decide.value):
            self._fail(VALIDITY, f"n{node} decided {decide.value.hash[:12]}, which no honest node accepts")

    def observe_state(self, node: int, state: InstanceState) -> None:
        if node in self.byzantine or state.expired:
            return
        stored, bound = stored_message_count(state), memory_bound(state.config)
        if stored > bound:
            self._fail(MEMORY, f"n{node} stores {stored} messages, bound {bound}")

    # --- honest conduct ------------------------------------------------------------------------------------

    def _is_justified_proposal(self, envelope: Envelope) -> bool:
        m = envelope.message
        if m.sender != leader(self.instance.slot, int(self.instance.kind), m.round, self.n):
            return False
        if m.round == 1:
            return True
        rcs = round_change_slots(
            self.n, self.instance, [j for j in envelope.justification if j.type == MsgType.ROUND_CHANGE]
        )
        prepares = vote_slots(
            self.n,
            self.instance,
            MsgType.PREPARE,
            [j for j in envelope.justification if j.type == MsgType.PREPARE],
        )
        if rcs is None or prepares is None:
            return False
        return bool(
            self.rules.is_justified_proposal(
                self.n, m.round, m.value_hash, rcs, prepares, quorum_size=self.rules.quorum_size
            )
        )

    def _has_prepare_quorum(self, round: int, value_hash: str) -> bool:
        return len(self.prepares.get((round, value_hash), ())) >= self.quorum

    def _check_conduct(self, node: int, envelope: Envelope) -> None:
        m = envelope.message
        if m.type == MsgType.DECIDED:
            return
        key = (node, m.type, m.round)
        if key in self.once:
            self._fail(CONDUCT, f"n{node} sent a second {m.type.name} in round {m.round}")
        self.once.add(key)
        if m.type == MsgType.PRE_PREPARE and not self._is_justified_proposal(envelope):
            self._fail(CONDUCT, f"n{node} sent an unjustified PRE-PREPARE for round {m.round}")
        elif m.type == MsgType.PREPARE:
            if (m.round, m.value_hash) not in self.justified_proposals:
                self._fail(
                    CONDUCT,
                    f"n{node} prepared {m.value_hash[:12]} in round {m.round} without a justified proposal",
                )
            elif not self.is_valid(Value(m.value_hash, self.bodies[m.value_hash])):
                self._fail(CONDUCT, f"n{node} prepared an invalid value in round {m.round}")
        elif m.type == MsgType.COMMIT:
            if not self._has_prepare_quorum(m.round, m.value_hash):
                self._fail(CONDUCT, f"n{node} committed in round {m.round} without a prepare quorum")
            self.last_commit[node] = max(self.last_commit.get(node, 0), m.round)
        elif m.type == MsgType.ROUND_CHANGE:
            self._check_round_change(node, m)

    def _check_round_change(self, node: int, m: Message) -> None:
        if m.prepared_round >= m.round:
            self._fail(CONDUCT, f"n{node} claims prepared round {m.prepared_round} in round {m.round}")
        elif m.prepared_round != NOT_PREPARED and not self._has_prepare_quorum(
            m.prepared_round, m.prepared_hash
        ):
            self._fail(
                CONDUCT,
                f"n{node} claims prepared ({m.prepared_round}, {m.prepared_hash[:12]}) without a quorum",
            )
        elif node not in self.amnesiac and m.prepared_round < self.last_commit.get(node, 0):
            self._fail(
                CONDUCT,
                f"n{node} committed in round {self.last_commit[node]} but reports prepared round {m.prepared_round}",
            )
