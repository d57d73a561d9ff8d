"""The consensus validity predicate: may this node vote for a proposed value of a duty?

Decides whether a proposed value (a map validator -> Beacon data) fits the duty: every validator in
it has this duty here, its data is well formed for the duty (`eth.beacon_data`: slot, committee,
target epoch, the combined RANDAO reveal, the decided attestation data of an aggregate, the slot's
sync root of a contribution), and attestations and blocks are not slashable against this node's
slashing view (the guard `check_slashing`: half of dv_safety's G1, with the ordering rule). An
invalid value is never prepared. Verdicts are cached per value hash for the duty.

Must not: change the duty's state (it only reads it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from covalidator.model.duty import DutyKind
from covalidator.model.eth.beacon_data import (
    DataProblem,
    block_of,
    check_aggregate,
    check_attestation_data,
    check_block,
    check_contribution,
    root_of,
    uint,
)
from covalidator.model.eth.signing import Kind
from covalidator.model.node.phases import DutyRecord
from covalidator.model.node.state import NodeState, combined_randao, combined_sync_root
from covalidator.model.qbft.messages import Value
from covalidator.model.slashing.rules import SignedAttestation, SignedBlock


def is_valid(state: NodeState, rec: DutyRecord) -> Callable[[Value], bool]:
    """The consensus validity predicate for this duty (cached per value hash)."""

    def valid(value: Value) -> bool:
        if value.hash not in rec.validity:
            rec.validity[value.hash] = value_problem(state, rec, value) is None
        return rec.validity[value.hash]

    return valid


def value_problem(state: NodeState, rec: DutyRecord, value: Value) -> str | None:
    """Why the value cannot be voted for, or None."""
    chain = state.config.chain
    try:
        proposal = json.loads(value.body)
    except (ValueError, UnicodeDecodeError):
        return "value is not JSON"
    if not isinstance(proposal, dict) or not proposal:
        return "value is not a non-empty map"
    try:
        for key, data in proposal.items():
            vd = rec.validators.get(key)
            if vd is None or vd.info is None:
                return f"{key} has no {rec.id} duty here"
            info = vd.info
            slot = rec.id.slot
            if rec.id.kind is DutyKind.ATTESTER:
                check_attestation_data(chain, data, slot, int(info["committee_index"]))
                root = bytes.fromhex(root_of(chain, Kind.ATTESTATION, data)[2:])
                att = SignedAttestation(uint(data, "source", "epoch"), uint(data, "target", "epoch"), root)
                verdict = state.config.guards.check_slashing(state.slashing, vd.pubkey, att)
            elif rec.id.kind is DutyKind.PROPOSER:
                reveal = str(combined_randao(state, slot))
                check_block(chain, data, slot, int(info["validator_index"]), reveal)
                root = bytes.fromhex(block_root(state, data)[2:])
                verdict = state.config.guards.check_slashing(
                    state.slashing, vd.pubkey, SignedBlock(slot, root)
                )
            elif rec.id.kind is DutyKind.AGGREGATOR:
                check_aggregate(
                    chain,
                    data,
                    slot,
                    str(info.get("attestation_data_root")),
                    int(info["committee_index"]),
                    int(info["committee_length"]),
                )
                continue
            else:
                root_hex = str(combined_sync_root(state, slot))
                check_contribution(data, slot, int(info["subcommittee_index"]), root_hex)
                continue
            if not verdict.safe:
                return f"{key}: slashable ({verdict.describe()})"
    except DataProblem as problem:
        return str(problem)
    except (KeyError, TypeError, ValueError, AttributeError) as problem:
        return f"malformed value: {problem!r}"
    return None


def block_root(state: NodeState, proposal: Any) -> str:
    """The signing root of a proposal value {"version", "blinded", "block"}."""
    kind = Kind.BLINDED_BLOCK if proposal.get("blinded") else Kind.BLOCK
    return root_of(
        state.config.chain, kind, block_of(proposal) if kind is Kind.BLINDED_BLOCK else proposal["block"]
    )
