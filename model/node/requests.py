"""What a node asks its beacon node for a duty's data: one typed request per duty kind, and the JSON
it travels as in traces (the JSON it always had: decimal strings, the same keys, so traces recorded
before the types existed still replay). What the request makes the BN do: node/fetch.py.

    ATTESTER           AttestationDataRequest(slot, committee_indices)
    PROPOSER           BlockRequest(slot, randao_reveal)
    AGGREGATOR         AggregatesRequest(slot, aggregates: (committee_index, attestation_data_root)...)
    SYNC_CONTRIBUTION  ContributionsRequest(slot, beacon_block_root, subcommittee_indices)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
