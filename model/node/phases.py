"""The lifecycle of one duty (one `DutyId`: a slot and a kind, for every cluster validator with it).

Decides which phase a duty is in and which triggers move it, as a table (h11-style): the table is
data, so it can be read, drawn, and checked exhaustively (proofs/dv_safety.py proves from it that
no phase that serves data to the VC is reachable without passing PERSISTED).

    phase        trigger               next        what happens on the way (node.py)
    SCHEDULED    START                 WAITING     consensus duties wait for the ordering rule
    SCHEDULED    OPEN                  SIGNING     duties without consensus only (RANDAO, selections,
                                                   sync messages): partials may flow at once
    WAITING      READY                 CONSENSUS   join QBFT; ask the BN for this node's proposal
    CONSENSUS    DECIDED               PERSISTING  emit Persist(decided value + slashing records)
    PERSISTING   PERSISTED             SIGNING     the store committed: serve the VC, exchange partials
    any          DEADLINE              DONE        every open validator gets its named reason
    (start)      RESTORED              SIGNING     a decided value read back from the store at restart

A duty stays in SIGNING until its deadline (a late VC request is still served from it).
Per validator (inside a duty): own partial from the VC, partials from peers (one per sender),
submitted flag, outcome. Serving data to the VC happens only in SIGNING (`may_serve`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from typing import Any

from covalidator.model.duty import KINDS, DutyId, DutyKind
from covalidator.model.outcomes import Reason
from covalidator.model.qbft.instance import InstanceState
from covalidator.model.qbft.messages import Envelope


class Phase(StrEnum):
    SCHEDULED = "scheduled"
    WAITING = "waiting"
    CONSENSUS = "consensus"
    PERSISTING = "persisting"
    SIGNING = "signing"
    DONE = "done"


class Trigger(StrEnum):
    START = "start"
    OPEN = "open"
    READY = "ready"
    DECIDED = "decided"
    PERSISTED = "persisted"
    DEADLINE = "deadline"
    RESTORED = "restored"


INITIAL = Phase.SCHEDULED
RESTORED_PHASE = Phase.SIGNING  # the target of Trigger.RESTORED (a record rebuilt from the store)
# Phases of a duty whose data is not yet decided and persisted here (what later duties wait for)
UNDECIDED = frozenset({Phase.SCHEDULED, Phase.WAITING, Phase.CONSENSUS, Phase.PERSISTING})

TRANSITIONS: dict[tuple[Phase, Trigger], Phase] = {
    (Phase.SCHEDULED, Trigger.START): Phase.WAITING,
    (Phase.SCHEDULED, Trigger.OPEN): Phase.SIGNING,
    (Phase.WAITING, Trigger.READY): Phase.CONSENSUS,
    (Phase.CONSENSUS, Trigger.DECIDED): Phase.PERSISTING,
    (Phase.PERSISTING, Trigger.PERSISTED): Phase.SIGNING,
    (Phase.SCHEDULED, Trigger.RESTORED): RESTORED_PHASE,
    **{(p, Trigger.DEADLINE): Phase.DONE for p in Phase if p is not Phase.DONE},
}

# The triggers each class of duty may use: OPEN only without consensus; the consensus path only with.
_CONSENSUS_ONLY = {Trigger.START, Trigger.READY, Trigger.DECIDED, Trigger.PERSISTED}


@cache
def transitions_for(kind: DutyKind) -> dict[tuple[Phase, Trigger], Phase]:
    """The table a duty of this kind follows (DutyRecord.advance refuses anything else)."""
    if KINDS[kind].consensus:
        return {k: v for k, v in TRANSITIONS.items() if k[1] is not Trigger.OPEN}
    return {k: v for k, v in TRANSITIONS.items() if k[1] not in _CONSENSUS_ONLY}


def may_serve(phase: Phase) -> bool:
    """Decided data may be handed to the VC (for signing) only in this phase."""
    return phase is Phase.SIGNING


class TransitionError(AssertionError):
    pass


@dataclass
class ValidatorDuty:
    pubkey: str
    info: Any = None  # the BN's duty object (or the selection that created the duty)
    data: Any = None  # this validator's decided data
    own: tuple[str, str] | None = None  # (signing root, partial) from this node's VC, verified
    own_message: Any = None  # what the VC signed, for duties without consensus
    partials: dict[int, tuple[str, str, Any]] = field(default_factory=dict)  # share -> (root, sig, message)
    # sync committee messages only (no slashing condition covers them): partials over more block roots
    # than the first, this node's (root -> (sig, message)) and the peers' ((share, root) -> (sig, message))
    cosigned: dict[str, tuple[str, Any]] = field(default_factory=dict)
    peer_cosigned: dict[tuple[int, str], tuple[str, Any]] = field(default_factory=dict)
    invalid_senders: set[int] = field(default_factory=set)
    submitted: bool = False
    ended: bool = False  # its DutyOutcome was emitted
    reason: Reason | None = None  # why it failed (None: it succeeded, or has not ended)


@dataclass
class DutyRecord:
    id: DutyId
    phase: Phase = INITIAL
    validators: dict[str, ValidatorDuty] = field(default_factory=dict)
    qbft: InstanceState | None = None
    buffered: list[Envelope] = field(default_factory=list)  # peer QBFT envelopes before we join
    fetch_request: Any = None  # what this node asked its BN for (node/fetch.py), to ask again
    fetch_error: str | None = None  # the BN's last failure to give data
    input_received: bool = False  # this node's BN gave it data to offer (else a failure is the BN's)
    validity: dict[str, bool] = field(default_factory=dict)  # value hash -> may this node vote for it
    decided: dict[str, Any] | None = None
    decided_hash: str = ""
    roots: dict[str, str] = field(default_factory=dict)  # validator key -> signing root of its message
    combined: dict[str, str] = field(default_factory=dict)  # key -> the combined (group) signature submitted
    group_signed: dict[str, dict[str, str]] = field(default_factory=dict)  # key -> signing root -> group sig
    combined_roots: dict[str, str] = field(default_factory=dict)  # sync messages: key -> combined block root
    signed: dict[str, Any] = field(default_factory=dict)  # aggregations: key -> the signed message

    def advance(self, trigger: Trigger) -> Phase:
        table = transitions_for(self.id.kind)
        key = (self.phase, trigger)
        if key not in table:
            raise TransitionError(f"{self.id}: no transition from {self.phase} on {trigger}")
        self.phase = table[key]
        return self.phase

    def can(self, trigger: Trigger) -> bool:
        return (self.phase, trigger) in transitions_for(self.id.kind)
