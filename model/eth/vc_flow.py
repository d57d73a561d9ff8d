"""What a validator client signs at each step of the Beacon-API validator flow, as pure functions.

Shared by the simulated VC (`sim_vc`) and the devnet VC (`runtime/devnet/vc.py`): the selection
proofs a DV-aware VC sends (`beacon_committee_selections`, `sync_committee_selections`), the
Attestation objects for one committee's duties, sync committee messages, and the signed
AggregateAndProof / ContributionAndProof. The caller holds the keys: `sign(validator_index, kind,
message)` returns the 0x-hex signature over `signing.signing_root`. No I/O, no state, no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from covalidator.model.eth.beacon_data import bitlist_single
from covalidator.model.eth.signing import Kind

Sign = Callable[[int, Kind, Mapping[str, Any]], str]


@dataclass(frozen=True)
class AttesterDuty:
    """One validator's attester duty, as the Beacon API's AttesterDuty says (numbers, not strings)."""

    index: int
    slot: int
    committee_index: int
    committee_length: int
    committees_at_slot: int
    validator_committee_index: int

    @classmethod
    def from_json(cls, duty: Mapping[str, Any]) -> AttesterDuty:
        return cls(
            int(duty["validator_index"]),
            int(duty["slot"]),
            int(duty["committee_index"]),
            int(duty["committee_length"]),
            int(duty["committees_at_slot"]),
            int(duty["validator_committee_index"]),
        )


def by_committee(duties: Iterable[AttesterDuty]) -> dict[int, list[AttesterDuty]]:
    """Committee index -> its duties (one attestation_data request per committee)."""
    committees: dict[int, list[AttesterDuty]] = {}
    for d in duties:
        committees.setdefault(d.committee_index, []).append(d)
    return dict(sorted(committees.items()))


def beacon_committee_selections(slot: int, indices: Iterable[int], sign: Sign) -> list[dict[str, str]]:
    """The BeaconCommitteeSelection objects: each validator's (partial) slot signature."""
    return [
        {
            "validator_index": str(index),
            "slot": str(slot),
            "selection_proof": sign(index, Kind.AGGREGATION_SLOT, {"slot": str(slot)}),
        }
        for index in indices
    ]


def sync_committee_selections(
    slot: int, members: Iterable[tuple[int, int]], sign: Sign
) -> list[dict[str, str]]:
    """SyncCommitteeSelection objects for (validator index, subcommittee index) pairs."""
    out = []
    for index, sub in members:
        message = {"slot": str(slot), "subcommittee_index": str(sub)}
        out.append(
            {
                "validator_index": str(index),
                "slot": str(slot),
                "subcommittee_index": str(sub),
                "selection_proof": sign(index, Kind.SYNC_COMMITTEE_SELECTION_PROOF, message),
            }
        )
    return out


def attestations(data: Mapping[str, Any], duties: Sequence[AttesterDuty], sign: Sign) -> list[dict[str, Any]]:
    """One unaggregated Attestation (phase0..deneb) per duty of the committee that `data` is for."""
    return [
        {
            "aggregation_bits": bitlist_single(d.committee_length, d.validator_committee_index),
            "data": dict(data),
            "signature": sign(d.index, Kind.ATTESTATION, data),
        }
        for d in duties
    ]


def sync_committee_messages(
    slot: int, beacon_block_root: str, indices: Iterable[int], sign: Sign
) -> list[dict[str, str]]:
    out = []
    for index in indices:
        message = {"slot": str(slot), "beacon_block_root": beacon_block_root, "validator_index": str(index)}
        out.append({**message, "signature": sign(index, Kind.SYNC_COMMITTEE_MESSAGE, message)})
    return out


def signed_aggregate_and_proof(
    index: int, aggregate: Mapping[str, Any], selection_proof: str, sign: Sign
) -> dict[str, Any]:
    message = {"aggregator_index": str(index), "aggregate": aggregate, "selection_proof": selection_proof}
    return {"message": message, "signature": sign(index, Kind.AGGREGATE_AND_PROOF, message)}


def signed_contribution_and_proof(
    index: int, contribution: Mapping[str, Any], selection_proof: str, sign: Sign
) -> dict[str, Any]:
    message = {
        "aggregator_index": str(index),
        "contribution": contribution,
        "selection_proof": selection_proof,
    }
    return {"message": message, "signature": sign(index, Kind.CONTRIBUTION_AND_PROOF, message)}


def unsigned(
    build: Callable[[Sign], list[dict[str, Any]]],
) -> tuple[list[dict[str, Any]], list[tuple[int, Kind, Mapping[str, Any]]]]:
    """Objects that each carry one signature, built before the signatures exist (a remote signer signs
    them later): the objects (signature empty) and, in the same order, what each one's signature signs."""
    asks: list[tuple[int, Kind, Mapping[str, Any]]] = []

    def record(index: int, kind: Kind, message: Mapping[str, Any]) -> str:
        asks.append((index, kind, message))
        return ""

    objects = build(record)
    assert len(objects) == len(asks), "one signature per object"
    return objects, asks
