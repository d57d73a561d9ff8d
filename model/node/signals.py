"""What one step of a duty tells the others it unlocked, routed by the dispatcher (node/step.py).

A combined signature is often an input to another duty: the RANDAO reveal starts the proposal, a
combined sync committee message gives the slot's contribution its block root, a combined selection
proof answers the VC's selections request and may create an aggregation duty. The module that
combines (node/parsig.py) emits a signal; step.py routes it to the module that acts on it, at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from covalidator.model.duty import DutyId


@dataclass(frozen=True)
class RandaoCombined:
    slot: int  # the slot's proposal may start


@dataclass(frozen=True)
class SyncMessageCombined:
    slot: int  # the slot's sync contribution knows its block root


@dataclass(frozen=True)
class SelectionCombined:
    duty: DutyId  # a selection duty combined a proof: the VC's selections request may be answered


@dataclass(frozen=True)
class AggregationSelected:
    duty: DutyId  # an aggregation duty restored at a restart learned its selection proof
    key: str


@dataclass(frozen=True)
class GroupSigned:
    duty: DutyId  # a group signature combined: held Remote Signing API requests may be answered


Signal = RandaoCombined | SyncMessageCombined | SelectionCombined | AggregationSelected | GroupSigned
