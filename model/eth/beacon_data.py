"""Beacon-chain facts the node model needs about the data it signs, per duty kind.

Decides: whether a proposed value is well-formed for the duty (the consensus validity predicate's
Beacon half; the slashing half is `slashing_view`), which signing root a message has, who is an
aggregator, how bitlists encode a committee position, and the JSON bodies submitted to the BN.
Pure functions over Beacon-API JSON; signing roots come from the consensus specs (`signing`).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from covalidator.model.cluster.config import ChainConfig
from covalidator.model.eth.signing import Kind, SigningError, signing_root
from covalidator.model.eth.specs import FORKS, spec
from covalidator.model.eth.ssz_json import SszJsonError, hash_tree_root

_ROOT = re.compile(r"0x[0-9a-f]{64}")
_SIG = re.compile(r"0x[0-9a-f]{192}")


class DataProblem(ValueError):
    """The data cannot be signed for this duty (the message says why)."""


def is_root(value: Any) -> bool:
    return isinstance(value, str) and _ROOT.fullmatch(value) is not None


def is_signature(value: Any) -> bool:
    return isinstance(value, str) and _SIG.fullmatch(value) is not None


def uint(obj: Any, *path: str) -> int:
    value = obj
    for key in path:
        if not isinstance(value, dict) or key not in value:
            raise DataProblem(f"missing {'.'.join(path)}")
        value = value[key]
    # at most 78 digits (uint256, a block's value in wei): int() refuses strings past 4,300 digits
    if not isinstance(value, str) or not (value.isascii() and value.isdigit()) or len(value) > 78:
        raise DataProblem(f"{'.'.join(path)} is not a decimal string")
    return int(value)


def fork_at_least(chain: ChainConfig, slot: int, fork: str) -> bool:
    return FORKS.index(chain.fork_name(slot)) >= FORKS.index(fork)


def root_of(chain: ChainConfig, kind: Kind, message: Any) -> str:
    """0x hex of the signing root; DataProblem if the message does not parse for its fork."""
    try:
        return "0x" + signing_root(chain.schedule, kind, message).hex()
    except (SigningError, SszJsonError, KeyError, TypeError, ValueError) as error:
        raise DataProblem(f"cannot compute the {kind.value} signing root: {error}") from None


# ---- bitlists ----------------------------------------------------------------------------------------


def bitlist_single(length: int, position: int) -> str:
    """An SSZ Bitlist[length] with only `position` set, as 0x hex (the delimiter bit follows the bits)."""
    assert 0 <= position < length
    data = bytearray(length // 8 + 1)
    data[position // 8] |= 1 << (position % 8)
    data[length // 8] |= 1 << (length % 8)
    return "0x" + data.hex()


def bitlist_positions(text: str) -> tuple[int, list[int]]:
    """(length, set positions) of an SSZ bitlist in 0x hex."""
    if not isinstance(text, str) or not re.fullmatch(r"0x([0-9a-fA-F]{2})+", text):
        raise DataProblem(f"bad bitlist {text!r}")
    data = bytes.fromhex(text[2:])
    if data[-1] == 0:
        raise DataProblem("bitlist without delimiter bit")
    length = (len(data) - 1) * 8 + data[-1].bit_length() - 1
    positions = [i for i in range(length) if data[i // 8] >> (i % 8) & 1]
    return length, positions


def bitvector_positions(text: str) -> tuple[int, list[int]]:
    """(length in bits, set positions) of an SSZ bitvector in 0x hex (no delimiter bit)."""
    if not isinstance(text, str) or not re.fullmatch(r"0x([0-9a-fA-F]{2})+", text):
        raise DataProblem(f"bad bitvector {text!r}")
    data = bytes.fromhex(text[2:])
    return len(data) * 8, [i for i in range(len(data) * 8) if data[i // 8] >> (i % 8) & 1]


# ---- aggregator selection (consensus specs, validator guide) -----------------------------------------


def _selected(signature_hex: str, modulo: int) -> bool:
    digest = hashlib.sha256(bytes.fromhex(signature_hex[2:])).digest()
    return int.from_bytes(digest[:8], "little") % max(1, modulo) == 0


def is_aggregator(chain: ChainConfig, committee_length: int, selection_proof: str) -> bool:
    return _selected(selection_proof, committee_length // chain.target_aggregators_per_committee)


def is_sync_committee_aggregator(chain: ChainConfig, selection_proof: str) -> bool:
    modulo = (
        chain.sync_committee_size
        // chain.sync_committee_subnet_count
        // chain.target_aggregators_per_sync_subcommittee
    )
    return _selected(selection_proof, modulo)


# ---- well-formedness of proposed data (raise DataProblem) --------------------------------------------


def check_attestation_data(chain: ChainConfig, data: Any, slot: int, committee_index: int) -> None:
    if not isinstance(data, dict):
        raise DataProblem("attestation data is not an object")
    if uint(data, "slot") != slot:
        raise DataProblem(f"attestation data for slot {data.get('slot')}, duty slot {slot}")
    expected_index = 0 if fork_at_least(chain, slot, "electra") else committee_index
    if uint(data, "index") != expected_index:
        raise DataProblem(f"attestation data index {data.get('index')}, expected {expected_index}")
    source, target = uint(data, "source", "epoch"), uint(data, "target", "epoch")
    if source > target:
        raise DataProblem(f"source epoch {source} after target epoch {target}")
    if target != chain.clock.epoch_of(slot):
        raise DataProblem(f"target epoch {target} is not the epoch of slot {slot}")
    for path in (("beacon_block_root",), ("source", "root"), ("target", "root")):
        value: Any = data
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if not is_root(value):
            raise DataProblem(f"{'.'.join(path)} is not a 32-byte root")


def block_of(proposal: Any) -> dict[str, Any]:
    """The BeaconBlock inside a proposal value {"version", "blinded", "block"} (block contents unwrapped)."""
    if not isinstance(proposal, dict) or not isinstance(proposal.get("block"), dict):
        raise DataProblem("proposal without block")
    block = proposal["block"]
    inner = block.get("block") if "slot" not in block else block
    if not isinstance(inner, dict):
        raise DataProblem("block contents without block")
    return inner


def check_block(
    chain: ChainConfig, proposal: Any, slot: int, proposer_index: int, randao_reveal: str
) -> None:
    block = block_of(proposal)
    if uint(block, "slot") != slot:
        raise DataProblem(f"block for slot {block.get('slot')}, duty slot {slot}")
    if uint(block, "proposer_index") != proposer_index:
        raise DataProblem(f"block proposer {block.get('proposer_index')}, duty proposer {proposer_index}")
    body = block.get("body")
    if not isinstance(body, dict) or body.get("randao_reveal") != randao_reveal:
        raise DataProblem("block RANDAO reveal is not the cluster's combined reveal")
    if proposal.get("version") != chain.fork_name(slot):
        raise DataProblem(f"block version {proposal.get('version')}, fork {chain.fork_name(slot)}")


def check_aggregate(
    chain: ChainConfig, aggregate: Any, slot: int, data_root: str, committee_index: int, committee_length: int
) -> None:
    """An aggregate for the duty: the attestation data the cluster decided for the slot (its
    `hash_tree_root` is the duty's `attestation_data_root`), bits that fit the duty's committee, at
    least one attester, and a signature."""
    if not isinstance(aggregate, dict) or not isinstance(aggregate.get("data"), dict):
        raise DataProblem("aggregate without data")
    if uint(aggregate, "data", "slot") != slot:
        raise DataProblem("aggregate for another slot")
    try:
        module = spec(chain.fork_name(slot), chain.schedule.preset)
        root = "0x" + hash_tree_root(module.AttestationData, aggregate["data"]).hex()
    except (SszJsonError, KeyError, TypeError, ValueError) as error:
        raise DataProblem(f"aggregate data does not parse: {error}") from None
    if root != data_root:
        raise DataProblem(f"aggregate for attestation data {root}, the cluster decided {data_root}")
    length, positions = bitlist_positions(aggregate.get("aggregation_bits", ""))
    if length != committee_length:
        raise DataProblem(f"aggregation bits for {length} attesters, the committee has {committee_length}")
    if fork_at_least(chain, slot, "electra"):
        _, committees = bitvector_positions(aggregate.get("committee_bits", ""))
        if committees != [committee_index]:
            raise DataProblem(f"aggregate for committees {committees}, the duty's is {committee_index}")
    if not positions:
        raise DataProblem("aggregate with no attester")
    if not is_signature(aggregate.get("signature")):
        raise DataProblem("aggregate without signature")


def check_contribution(contribution: Any, slot: int, subcommittee_index: int, beacon_block_root: str) -> None:
    if not isinstance(contribution, dict):
        raise DataProblem("contribution is not an object")
    if uint(contribution, "slot") != slot or uint(contribution, "subcommittee_index") != subcommittee_index:
        raise DataProblem("contribution for another slot or subcommittee")
    if contribution.get("beacon_block_root") != beacon_block_root:
        raise DataProblem("contribution for another block root")
    if not is_signature(contribution.get("signature")):
        raise DataProblem("contribution without signature")
