"""What a validator client sends a remote signer (the Remote Signing API's sign request), as pure
functions: the request body for a signing kind and message, with the `fork_info` a VC sends (the fork
at the message's epoch and the one before it). Used by the simulated signer-mode VC (sim/vc.py).
No I/O, no state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from covalidator.model.cluster.config import hex0x
from covalidator.model.eth.signing import ForkSchedule, Kind, container_of, message_epoch

# signing kind -> (the request's `type`, the body field that holds the message)
REQUEST_TYPE: dict[Kind, tuple[str, str]] = {
    Kind.ATTESTATION: ("ATTESTATION", "attestation"),
    Kind.BLOCK: ("BLOCK_V2", "beacon_block"),
    Kind.BLINDED_BLOCK: ("BLOCK_V2", "beacon_block"),  # sent as its header, as VCs do from bellatrix on
    Kind.RANDAO_REVEAL: ("RANDAO_REVEAL", "randao_reveal"),
    Kind.AGGREGATION_SLOT: ("AGGREGATION_SLOT", "aggregation_slot"),
    Kind.AGGREGATE_AND_PROOF: ("AGGREGATE_AND_PROOF", "aggregate_and_proof"),
    Kind.SYNC_COMMITTEE_MESSAGE: ("SYNC_COMMITTEE_MESSAGE", "sync_committee_message"),
    Kind.SYNC_COMMITTEE_SELECTION_PROOF: ("SYNC_COMMITTEE_SELECTION_PROOF", "sync_aggregator_selection_data"),
    Kind.CONTRIBUTION_AND_PROOF: ("SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF", "contribution_and_proof"),
}


def fork_info(schedule: ForkSchedule, epoch: int) -> dict[str, Any]:
    """`fork_info` as a VC sends it: the fork at `epoch`, the fork before it, the chain's root."""
    fork = schedule.fork_at_epoch(epoch)
    names = [f.name for f in schedule.forks]
    previous = schedule.forks[max(0, names.index(fork.name) - 1)]
    return {
        "fork": {
            "previous_version": hex0x(previous.version),
            "current_version": hex0x(fork.version),
            "epoch": str(fork.epoch),
        },
        "genesis_validators_root": hex0x(schedule.genesis_validators_root),
    }


def sign_request(schedule: ForkSchedule, kind: Kind, message: Mapping[str, Any]) -> dict[str, Any]:
    """The body of `POST /api/v1/eth2/sign/{identifier}` for `message` of signing kind `kind`."""
    type_name, field = REQUEST_TYPE[kind]
    payload: Any = dict(message)
    if kind is Kind.BLOCK:
        fork = schedule.fork_at_epoch(message_epoch(schedule, kind, message))
        payload = {"version": fork.name.upper(), "block": payload}
    elif kind is Kind.BLINDED_BLOCK:
        fork = schedule.fork_at_epoch(message_epoch(schedule, kind, message))
        body_root = container_of(schedule, kind, message).body.hash_tree_root()
        header = {k: message[k] for k in ("slot", "proposer_index", "parent_root", "state_root")}
        payload = {
            "version": fork.name.upper(),
            "block_header": {**header, "body_root": hex0x(bytes(body_root))},
        }
    elif kind is Kind.SYNC_COMMITTEE_MESSAGE:
        payload = {"beacon_block_root": message["beacon_block_root"], "slot": message["slot"]}
    return {
        "type": type_name,
        "fork_info": fork_info(schedule, message_epoch(schedule, kind, message)),
        field: payload,
    }
