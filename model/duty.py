"""Duty identity: what one consensus instance is about.

One QBFT instance runs per `DutyId(slot, kind)` and decides the data of every cluster validator that
has that duty in that slot (ARCHITECTURE.md, performance shape). `kind.value` is the kind index used
by the leader rule `(slot + kind_index + round) mod N`, so it must never be renumbered.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class DutyKind(IntEnum):
    PROPOSER = 0
    ATTESTER = 1
    AGGREGATOR = 2
    SYNC_MESSAGE = 3
    SYNC_CONTRIBUTION = 4
    RANDAO = 5
    PREPARE_AGGREGATOR = 6  # beacon committee selection proofs
    PREPARE_SYNC_CONTRIBUTION = 7  # sync committee selection proofs
    BUILDER_REGISTRATION = 8


@dataclass(frozen=True, order=True)
class DutyId:
    slot: int
    kind: DutyKind

    def __str__(self) -> str:
        return f"{self.kind.name.lower()}@{self.slot}"
