"""What a node asks its beacon node for a duty's data, typed per kind, and the one dispatcher that turns
such a request into BN calls and the answers into the model's event (shared by the runtime, which
asks over HTTP, and the simulator, which asks its simulated chain).

    ATTESTER           AttestationDataRequest(slot, committee_indices)
                       -> one attestation_data call per committee -> {committee_index: AttestationData}
    PROPOSER           BlockRequest(slot, randao_reveal)  -> one produce_block call -> the proposal
    AGGREGATOR         AggregatesRequest(slot, aggregates: (committee_index, attestation_data_root)...)
                       -> one aggregate_attestation call each -> {attestation_data_root: Attestation}
    SYNC_CONTRIBUTION  ContributionsRequest(slot, beacon_block_root, subcommittee_indices)
                       -> one contribution call each -> {subcommittee_index: SyncCommitteeContribution}

Requests travel in traces as the JSON they always had (`request_to_json` / `request_from_json`: decimal
strings, the same keys), so traces recorded before the types existed still replay.

Must not: do I/O. `calls` says what to ask; the driver asks; `assemble` says what the answers mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from covalidator.model.duty import DutyId

Json = Any


@dataclass(frozen=True)
class AttestationDataRequest:
    slot: int
    committee_indices: tuple[int, ...]


@dataclass(frozen=True)
class BlockRequest:
    slot: int
    randao_reveal: str  # the cluster's combined reveal


@dataclass(frozen=True)
class AggregatesRequest:
    slot: int
    aggregates: tuple[tuple[int, str], ...]  # (committee index, attestation data root)


@dataclass(frozen=True)
class ContributionsRequest:
    slot: int
    beacon_block_root: str
    subcommittee_indices: tuple[int, ...]


BeaconRequest = AttestationDataRequest | BlockRequest | AggregatesRequest | ContributionsRequest


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
    from covalidator.model.node.events import BeaconDataFailed, BeaconDataFetched

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


# ---- the JSON they travel as ------------------------------------------------------------------------------


def request_to_json(request: BeaconRequest) -> dict[str, Any]:
    match request:
        case AttestationDataRequest(slot=slot, committee_indices=indices):
            return {"slot": str(slot), "committee_indices": [str(ci) for ci in indices]}
        case BlockRequest(slot=slot, randao_reveal=reveal):
            return {"slot": str(slot), "randao_reveal": reveal}
        case AggregatesRequest(slot=slot, aggregates=aggregates):
            return {
                "slot": str(slot),
                "aggregates": [
                    {"committee_index": str(ci), "attestation_data_root": root} for ci, root in aggregates
                ],
            }
        case ContributionsRequest(slot=slot, beacon_block_root=root, subcommittee_indices=subs):
            return {
                "slot": str(slot),
                "beacon_block_root": root,
                "subcommittee_indices": [str(s) for s in subs],
            }
    raise TypeError(f"not a beacon request: {request!r}")


def request_from_json(obj: dict[str, Any]) -> BeaconRequest:
    slot = int(obj["slot"])
    if "committee_indices" in obj:
        return AttestationDataRequest(slot, tuple(int(ci) for ci in obj["committee_indices"]))
    if "randao_reveal" in obj:
        return BlockRequest(slot, str(obj["randao_reveal"]))
    if "aggregates" in obj:
        return AggregatesRequest(
            slot,
            tuple((int(a["committee_index"]), str(a["attestation_data_root"])) for a in obj["aggregates"]),
        )
    return ContributionsRequest(
        slot, str(obj["beacon_block_root"]), tuple(int(s) for s in obj["subcommittee_indices"])
    )
