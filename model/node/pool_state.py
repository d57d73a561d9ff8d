"""What a node holds of the messages without a slot (voluntary exits, builder registrations): one entry
per signing root, and its phases.

    phase        trigger                                       next
    COLLECTING   M operators' partials, group signature ok      COMBINED
    COMBINED     the BN accepted the exit / the registration    SUBMITTED
                 became the validator's current one
    COMBINED,    the BN shows the validator exiting (exits)     ON_CHAIN
    SUBMITTED

An entry is never dropped while the node runs; its partials are in the store (`PersistPool`), so a
restart rebuilds it (node/pool.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from covalidator.model.duty import DutyKind


class PoolPhase(StrEnum):
    COLLECTING = "collecting"
    COMBINED = "combined"
    SUBMITTED = "submitted"
    ON_CHAIN = "on_chain"


POOL_TRANSITIONS: dict[PoolPhase, frozenset[PoolPhase]] = {
    PoolPhase.COLLECTING: frozenset({PoolPhase.COMBINED}),
    PoolPhase.COMBINED: frozenset({PoolPhase.SUBMITTED, PoolPhase.ON_CHAIN}),
    PoolPhase.SUBMITTED: frozenset({PoolPhase.ON_CHAIN}),
    PoolPhase.ON_CHAIN: frozenset(),
}


@dataclass
class PoolEntry:
    kind: DutyKind  # VOLUNTARY_EXIT or BUILDER_REGISTRATION
    pubkey: str  # the validator's group pubkey
    message: Any  # Beacon-API JSON of the message every partial signs
    signing_root: str
    partials: dict[int, str] = field(default_factory=dict)  # share index -> partial (verified)
    signature: str | None = None  # the group signature, once combined and verified
    phase: PoolPhase = PoolPhase.COLLECTING
    signing_own: bool = False  # signer mode: this node's partial was asked of the runtime

    def advance(self, to: PoolPhase) -> None:
        if to not in POOL_TRANSITIONS[self.phase]:
            raise AssertionError(f"pool entry {self.signing_root}: no transition {self.phase} -> {to}")
        self.phase = to
