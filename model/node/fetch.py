"""The one dispatcher from a duty's data request to BN calls and back (shared by the runtime, which asks
its BN over HTTP, and the simulator, which asks its simulated chain).

    ATTESTER           one attestation_data call per committee -> {committee_index: AttestationData}
    PROPOSER           one produce_block call -> the proposal {"version", "blinded", "block"}
    AGGREGATOR         one aggregate_attestation call per root -> {attestation_data_root: Attestation}
    SYNC_CONTRIBUTION  one contribution call per subcommittee -> {subcommittee_index: Contribution}

Must not: do I/O. `calls` says what to ask; the driver asks; `assemble` says what the answers mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from covalidator.model.duty import DutyId
from covalidator.model.node.events import BeaconDataFailed, BeaconDataFetched
from covalidator.model.node.requests import (
    AggregatesRequest,
    AttestationDataRequest,
    BeaconRequest,
    BlockRequest,
    ContributionsRequest,
)

Json = Any


# ---- the calls a request makes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AttestationDataCall:
    slot: int
    committee_index: int


@dataclass(frozen=True)
class BlockCall:
    slot: int
    randao_reveal: str


@dataclass(frozen=True)
class AggregateCall:
    slot: int
    attestation_data_root: str
    committee_index: int


@dataclass(frozen=True)
class ContributionCall:
    slot: int
    subcommittee_index: int
    beacon_block_root: str


BeaconCall = AttestationDataCall | BlockCall | AggregateCall | ContributionCall


def calls(request: BeaconRequest) -> list[BeaconCall]:
    match request:
        case AttestationDataRequest(slot=slot, committee_indices=indices):
            return [AttestationDataCall(slot, ci) for ci in indices]
        case BlockRequest(slot=slot, randao_reveal=reveal):
            return [BlockCall(slot, reveal)]
        case AggregatesRequest(slot=slot, aggregates=aggregates):
            return [AggregateCall(slot, root, ci) for ci, root in aggregates]
        case ContributionsRequest(slot=slot, beacon_block_root=root, subcommittee_indices=subs):
            return [ContributionCall(slot, sub, root) for sub in subs]
    raise TypeError(f"not a beacon request: {request!r}")


def assemble(duty: DutyId, request: BeaconRequest, answers: list[Json]) -> Any:
    """The model's event for the answers to `calls(request)`, in order (None: the BN had none)."""
    data: Any
    match request:
        case AttestationDataRequest(committee_indices=indices):
            data = {
                str(ci): answer for ci, answer in zip(indices, answers, strict=True) if answer is not None
            }
        case BlockRequest():
            data = answers[0]
        case AggregatesRequest(aggregates=aggregates):
            data = {root: a for (_, root), a in zip(aggregates, answers, strict=True) if a is not None}
        case ContributionsRequest(subcommittee_indices=subs):
            data = {str(sub): c for sub, c in zip(subs, answers, strict=True) if c is not None}
    if not data:
        return BeaconDataFailed(duty, f"no {duty.kind.name.lower()} data from the beacon node yet")
    return BeaconDataFetched(duty, data)
