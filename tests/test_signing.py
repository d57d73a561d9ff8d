"""Signing roots against the consensus specs' own validator functions, on random containers of every
fork phase0..fulu, on both sides of every fork boundary; plus known roots from the real networks."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from random import Random
from typing import Any

import pytest
from eth_consensus_specs.debug.random_value import RandomizationMode, get_random_ssz_object

from covalidator.model.crypto import bls
from covalidator.model.eth import networks, signing
from covalidator.model.eth.signing import ForkSchedule, Kind, SigningError
from covalidator.model.eth.specs import FAR_FUTURE_EPOCH, FORKS, spec
from covalidator.model.eth.ssz_json import SszJsonError, from_json, to_json

SK = 0x5EED
GVR = bytes(range(32))
VERSIONS = [bytes([0x10 * (k + 1), 0, 0, 1]) for k in range(len(FORKS))]
# A beacon node's /eth/v1/config/spec: each fork k activates at epoch k (minimal preset, 8 slots).
CONFIG: dict[str, Any] = {
    "data": {
        "PRESET_BASE": "minimal",
        "CONFIG_NAME": "test",
        "SLOTS_PER_EPOCH": "8",
        "SECONDS_PER_SLOT": "6",
        "GENESIS_FORK_VERSION": "0x" + VERSIONS[0].hex(),
        **{f"{f.upper()}_FORK_VERSION": "0x" + VERSIONS[k].hex() for k, f in enumerate(FORKS) if k},
        **{f"{f.upper()}_FORK_EPOCH": str(k) for k, f in enumerate(FORKS) if k},
        "GLOAS_FORK_VERSION": "0x80000001",
        "GLOAS_FORK_EPOCH": str(FAR_FUTURE_EPOCH),
    }
}
SCHEDULE = ForkSchedule.from_spec_config(CONFIG, GVR)


def random_value(typ: Any, seed: int) -> Any:
    return get_random_ssz_object(Random(seed), typ, 40, 2, RandomizationMode.mode_random, chaos=False)


def state_in_fork(k: int) -> Any:
    """A minimal-preset BeaconState of fork k (activated at epoch k), as the spec's helpers need."""
    s = spec(FORKS[k], "minimal")
    fork = s.Fork(previous_version=VERSIONS[max(k - 1, 0)], current_version=VERSIONS[k], epoch=k)
    return s, s.BeaconState(genesis_validators_root=GVR, slot=k * 8, fork=fork)


def test_fork_schedule_from_a_beacon_node_config() -> None:
    assert SCHEDULE.preset == "minimal" and SCHEDULE.slots_per_epoch == 8
    assert [SCHEDULE.fork_at_epoch(e).name for e in range(8)] == [*FORKS, "fulu"]
    assert SCHEDULE.fork_at_epoch(3).version == VERSIONS[3]
    assert SCHEDULE.unsupported_from == FAR_FUTURE_EPOCH
    # An older node that knows nothing after deneb; a node scheduling gloas; a broken config.
    old = {k: v for k, v in CONFIG["data"].items() if not k.startswith(("ELECTRA", "FULU", "GLOAS"))}
    assert ForkSchedule.from_spec_config(old, GVR).fork_at_epoch(100).name == "deneb"
    later = ForkSchedule.from_spec_config({**CONFIG["data"], "GLOAS_FORK_EPOCH": "9"}, GVR)
    assert later.fork_at_epoch(8).name == "fulu"
    with pytest.raises(SigningError, match="newer than fulu"):
        later.fork_at_epoch(9)
    with pytest.raises(SigningError, match="lacks GENESIS_FORK_VERSION"):
        ForkSchedule.from_spec_config({"SLOTS_PER_EPOCH": "32"}, GVR)
    with pytest.raises(SigningError, match="unsupported preset"):
        ForkSchedule.from_spec_config({**CONFIG["data"], "PRESET_BASE": "gnosis"}, GVR)


def test_named_networks_match_the_specs_mainnet_config() -> None:
    mainnet = ForkSchedule.from_network(networks.network("mainnet"))
    config = spec("fulu").config
    for fork in FORKS[1:]:
        assert mainnet.version(fork) == bytes(getattr(config, f"{fork.upper()}_FORK_VERSION"))
        epoch = int(getattr(config, f"{fork.upper()}_FORK_EPOCH"))
        assert mainnet.fork_at_epoch(epoch).name == fork
        assert mainnet.fork_at_epoch(epoch - 1).name == FORKS[FORKS.index(fork) - 1]
    assert mainnet.genesis_fork_version == bytes(config.GENESIS_FORK_VERSION)
    assert ForkSchedule.from_network(networks.network("hoodi")).fork_at_epoch(0).name == "deneb"
    assert ForkSchedule.from_network(networks.network("sepolia")).fork_at_epoch(49).name == "phase0"
    assert ForkSchedule.from_network(networks.network("devnet")).preset == "minimal"
    with pytest.raises(ValueError, match="unknown network"):
        networks.network("goerli")


def test_known_domains_and_roots() -> None:
    """Values published by the networks' tooling, computed here from our own code."""
    mainnet = ForkSchedule.from_network(networks.network("mainnet"))
    deposit = signing.compute_domain(bytes.fromhex("03000000"), bytes(4), bytes(32))
    assert (
        deposit.hex() == "03000000f5a5fd42d16a20302798ef6ed309979b43003d2320d9f0e8ea9831a9"
    )  # staking-deposit-cli
    registration = {
        "fee_recipient": "0x" + "ab" * 20,
        "gas_limit": "36000000",
        "timestamp": "1700000000",
        "pubkey": "0x" + bls.sk_to_pk(SK).hex(),
    }
    builder = signing.signing_domain(mainnet, Kind.VALIDATOR_REGISTRATION, registration)
    assert builder.hex() == "00000001f5a5fd42d16a20302798ef6ed309979b43003d2320d9f0e8ea9831a9"  # mev-boost's
    # The mainnet genesis block (slot 0, empty body) has the root every client pins.
    genesis_block = to_json(spec("phase0").BeaconBlock())
    genesis_block["state_root"] = "0x7e76880eb67bbdc86250aa578958e9d0675e64e714337855204fb5abaaf82c2b"
    root = from_json(spec("phase0").BeaconBlock, genesis_block).hash_tree_root()
    assert root.hex() == "4d611d5b93fdab69013a7f0a2f961caca0c853f87cfe9595fe50038163079360"


def test_validator_registration_root_by_hand() -> None:
    """The builder-specs container merkleized by hand, independently of the SSZ library."""
    pubkey = bls.sk_to_pk(SK)
    message = {
        "fee_recipient": "0x" + "cd" * 20,
        "gas_limit": "30000000",
        "timestamp": "1234567890",
        "pubkey": "0x" + pubkey.hex(),
    }

    def h(a: bytes, b: bytes) -> bytes:
        return hashlib.sha256(a + b).digest()

    leaves = [
        bytes.fromhex("cd" * 20).ljust(32, b"\0"),
        (30000000).to_bytes(8, "little").ljust(32, b"\0"),
        (1234567890).to_bytes(8, "little").ljust(32, b"\0"),
        h(pubkey[:32], pubkey[32:].ljust(32, b"\0")),
    ]
    object_root = h(h(leaves[0], leaves[1]), h(leaves[2], leaves[3]))
    schedule = ForkSchedule.from_network(networks.network("holesky"))
    domain = signing.compute_domain(bytes.fromhex("00000001"), bytes.fromhex("01017000"), bytes(32))
    assert signing.signing_root(schedule, Kind.VALIDATOR_REGISTRATION, message) == h(object_root, domain)


def _spec_signatures(k: int, epoch: int, seed: int) -> list[tuple[Kind, dict[str, Any], bytes]]:
    """(kind, Beacon-API JSON, the spec's own signature) for every message kind of fork k's state,
    with the message placed in `epoch` (k: the fork's current version; k-1: its previous one)."""
    s_state, state = state_in_fork(k)
    s_msg = spec(SCHEDULE.fork_at_epoch(epoch).name, "minimal")  # the container of the message's fork
    slot = epoch * 8 + seed % 8
    out: list[tuple[Kind, dict[str, Any], bytes]] = []

    data = random_value(s_msg.AttestationData, seed)
    data.slot, data.target.epoch = slot, epoch
    out.append((Kind.ATTESTATION, to_json(data), s_state.get_attestation_signature(state, data, SK)))

    block = random_value(s_msg.BeaconBlock, seed)
    block.slot = slot
    out.append((Kind.BLOCK, to_json(block), s_state.get_block_signature(state, block, SK)))
    out.append((Kind.RANDAO_REVEAL, {"epoch": str(epoch)}, s_state.get_epoch_signature(state, block, SK)))
    out.append(
        (Kind.AGGREGATION_SLOT, {"slot": str(slot)}, s_state.get_slot_signature(state, s_msg.Slot(slot), SK))
    )

    aggregate = random_value(s_msg.AggregateAndProof, seed)
    aggregate.aggregate.data.slot = slot
    out.append(
        (
            Kind.AGGREGATE_AND_PROOF,
            to_json(aggregate),
            s_state.get_aggregate_and_proof_signature(state, aggregate, SK),
        )
    )

    if FORKS[k] != "phase0" and epoch >= 1:  # sync committees exist from altair
        state.slot = slot  # the spec signs a sync committee message at the state's current epoch
        root = random_value(s_msg.Root, seed)
        message = s_state.get_sync_committee_message(state, root, 0, SK)
        out.append(
            (
                Kind.SYNC_COMMITTEE_MESSAGE,
                {"slot": str(slot), "beacon_block_root": to_json(root)},
                message.signature,
            )
        )
        selection = random_value(s_msg.SyncAggregatorSelectionData, seed)
        selection.slot = slot
        out.append(
            (
                Kind.SYNC_COMMITTEE_SELECTION_PROOF,
                to_json(selection),
                s_state.get_sync_committee_selection_proof(
                    state, selection.slot, selection.subcommittee_index, SK
                ),
            )
        )
        contribution = random_value(s_msg.ContributionAndProof, seed)
        contribution.contribution.slot = slot
        out.append(
            (
                Kind.CONTRIBUTION_AND_PROOF,
                to_json(contribution),
                s_state.get_contribution_and_proof_signature(state, contribution, SK),
            )
        )
    return out


@pytest.mark.parametrize("k", range(len(FORKS)), ids=FORKS)
def test_signing_roots_match_the_specs_validator_functions(k: int) -> None:
    epochs = [k] if k == 0 else [k, k - 1]  # k - 1: just before the fork, signed with the previous version
    for epoch in epochs:
        for seed in (k, 100 + k):
            for kind, message, expected in _spec_signatures(k, epoch, seed):
                root = signing.signing_root(SCHEDULE, kind, message)
                assert bls.sign(SK, root) == bytes(expected), (FORKS[k], epoch, kind)
                assert signing.message_epoch(SCHEDULE, kind, message) == epoch


def _header_json(s: Any, payload: Any) -> dict[str, Any]:
    """ExecutionPayloadHeader of a payload: lists become their roots, everything else is copied."""
    fields = {n for n, _ in s.ExecutionPayload._FIELD_TYPES}
    header: dict[str, Any] = {}
    for name, _ in s.ExecutionPayloadHeader._FIELD_TYPES:
        source = name.removesuffix("_root")
        if name.endswith("_root") and source in fields and name not in fields:
            header[name] = "0x" + bytes(getattr(payload, source).hash_tree_root()).hex()
        else:
            header[name] = to_json(getattr(payload, name))
    return header


@pytest.mark.parametrize("k", range(FORKS.index("bellatrix"), len(FORKS)), ids=FORKS[2:])
def test_blinded_block_signs_like_the_full_block(k: int) -> None:
    s = spec(FORKS[k], "minimal")
    block = random_value(s.BeaconBlock, k)
    block.slot = k * 8 + 1
    full = to_json(block)
    blinded = to_json(block)
    blinded["body"].pop("execution_payload")
    blinded["body"]["execution_payload_header"] = _header_json(s, block.body.execution_payload)
    root = signing.signing_root(SCHEDULE, Kind.BLOCK, full)
    assert signing.signing_root(SCHEDULE, Kind.BLINDED_BLOCK, blinded) == root
    # deneb+ produceBlockV3 answers BlockContents: the block inside is what is signed.
    assert signing.signing_root(SCHEDULE, Kind.BLOCK, {"block": full, "kzg_proofs": [], "blobs": []}) == root


def test_voluntary_exits_use_capella_from_deneb() -> None:
    exit_json = {"epoch": "2", "validator_index": "7"}  # epoch 2 is bellatrix in SCHEDULE
    s = spec("bellatrix", "minimal")
    obj = from_json(s.VoluntaryExit, exit_json)
    bellatrix = signing.compute_domain(bytes(s.DOMAIN_VOLUNTARY_EXIT), VERSIONS[2], GVR)
    capella = signing.compute_domain(bytes(s.DOMAIN_VOLUNTARY_EXIT), VERSIONS[3], GVR)
    assert signing.signing_root(SCHEDULE, Kind.VOLUNTARY_EXIT, exit_json) == signing.compute_signing_root(
        obj, bellatrix
    )
    assert signing.signing_root(SCHEDULE, Kind.VOLUNTARY_EXIT, exit_json, current_epoch=4) == (
        signing.compute_signing_root(obj, capella)
    )
    late = {"epoch": "6", "validator_index": "7"}  # fulu: EIP-7044 pins Capella's version
    late_obj = from_json(spec("fulu", "minimal").VoluntaryExit, late)
    assert signing.signing_root(SCHEDULE, Kind.VOLUNTARY_EXIT, late) == signing.compute_signing_root(
        late_obj, capella
    )


def test_messages_that_cannot_exist_are_refused() -> None:
    with pytest.raises(SigningError, match="do not exist in phase0"):
        signing.signing_root(
            SCHEDULE, Kind.SYNC_COMMITTEE_MESSAGE, {"slot": "3", "beacon_block_root": "0x" + "00" * 32}
        )
    altair_block = to_json(spec("altair", "minimal").BeaconBlock())
    altair_block["slot"] = "9"
    with pytest.raises(SigningError, match="do not exist in altair"):
        signing.signing_root(SCHEDULE, Kind.BLINDED_BLOCK, altair_block)
    electra_block = to_json(spec("electra", "minimal").BeaconBlock())
    electra_block["slot"] = str(4 * 8)  # a deneb slot: the electra body has a field deneb's lacks
    with pytest.raises(SszJsonError, match=r"execution_requests.*wrong fork"):
        signing.signing_root(SCHEDULE, Kind.BLOCK, electra_block)
    with pytest.raises(SigningError, match=r"lacks target\.epoch"):
        signing.signing_root(SCHEDULE, Kind.ATTESTATION, {"slot": "1"})
    with pytest.raises(SigningError, match="JSON object"):
        signing.signing_root(SCHEDULE, Kind.ATTESTATION, ["not", "an", "object"])  # type: ignore[arg-type]


def test_mainnet_preset_containers_differ_from_minimal() -> None:
    """The preset changes list limits and vector sizes, hence roots: the schedule's preset is used."""
    block = to_json(spec("fulu", "mainnet").BeaconBlock())
    mainnet = ForkSchedule.from_network(networks.network("mainnet"), GVR)
    minimal = ForkSchedule.from_spec_config(
        {**CONFIG["data"], "FULU_FORK_EPOCH": "0", **{f"{f.upper()}_FORK_EPOCH": "0" for f in FORKS[1:]}}, GVR
    )
    block["slot"] = str(411392 * 32)
    with pytest.raises(SszJsonError, match="sync_committee_bits"):  # 512 bits on mainnet, 32 on minimal
        signing.signing_root(minimal, Kind.BLOCK, block)
    assert len(signing.signing_root(mainnet, Kind.BLOCK, block)) == 32


def test_remembered_roots_are_keyed_by_schedule_kind_epoch_and_the_whole_message() -> None:
    """Small messages' roots are remembered by their canonical JSON: key order does not matter, but the
    schedule (another network's domain), the kind, the current epoch and every field do; a message
    that cannot be signed is refused every time. Oracle: the uncached computation."""
    data = {
        "slot": "9",
        "index": "0",
        "beacon_block_root": "0x" + "11" * 32,
        "source": {"epoch": "0", "root": "0x" + "00" * 32},
        "target": {"epoch": "1", "root": "0x" + "22" * 32},
    }
    reordered = dict(reversed(list(data.items())))
    holesky = ForkSchedule.from_network(networks.network("holesky"))
    root = signing.signing_root(SCHEDULE, Kind.ATTESTATION, data)
    assert root == signing._signing_root(SCHEDULE, Kind.ATTESTATION, data, None)
    assert signing.signing_root(SCHEDULE, Kind.ATTESTATION, reordered) == root
    other_network = signing.signing_root(holesky, Kind.ATTESTATION, data)
    assert other_network == signing._signing_root(holesky, Kind.ATTESTATION, data, None) != root
    other_slot = {**data, "slot": "10"}
    assert signing.signing_root(SCHEDULE, Kind.ATTESTATION, other_slot) == signing._signing_root(
        SCHEDULE, Kind.ATTESTATION, other_slot, None
    )
    assert signing.signing_root(SCHEDULE, Kind.ATTESTATION, other_slot) != root
    exit_ = {"epoch": "1", "validator_index": "3"}
    for epoch in (None, 0, 10**6):
        assert signing.signing_root(SCHEDULE, Kind.VOLUNTARY_EXIT, exit_, epoch) == signing._signing_root(
            SCHEDULE, Kind.VOLUNTARY_EXIT, exit_, epoch
        )
    selection = {"slot": "9"}
    assert signing.signing_root(SCHEDULE, Kind.AGGREGATION_SLOT, selection) != signing.signing_root(
        SCHEDULE, Kind.SYNC_COMMITTEE_SELECTION_PROOF, {"slot": "9", "subcommittee_index": "0"}
    )
    for _ in range(2):
        with pytest.raises(SszJsonError, match="missing root"):
            signing.signing_root(SCHEDULE, Kind.ATTESTATION, {**data, "target": {"epoch": "1"}})


def test_remembered_roots_of_large_messages_are_keyed_by_the_whole_message() -> None:
    """Blocks (past ROOT_MEMO_TEXT_LIMIT) are remembered by the SHA-256 of their canonical text: the
    second ask returns the first answer without merkleizing again, one changed byte deep in the body or
    another schedule is another root, and the memo is bounded. Oracle: the spec's block signature."""
    s_state, state = state_in_fork(1)
    s_msg = spec(SCHEDULE.fork_at_epoch(1).name, "minimal")
    block = random_value(s_msg.BeaconBlock, 7)
    block.slot = 9
    message = to_json(block)
    assert len(json.dumps(message, sort_keys=True, separators=(",", ":"))) > signing.ROOT_MEMO_TEXT_LIMIT
    first = signing.signing_root(SCHEDULE, Kind.BLOCK, message)
    assert bls.sign(SK, first) == bytes(s_state.get_block_signature(state, block, SK))
    merkleized = []
    original = signing._signing_root
    try:
        signing._signing_root = lambda *a: merkleized.append(a) or original(*a)  # type: ignore[assignment]
        assert signing.signing_root(SCHEDULE, Kind.BLOCK, dict(reversed(list(message.items())))) == first
        assert merkleized == []  # remembered
        other = copy.deepcopy(message)
        graffiti = "0x" + "ab" * 32
        other["body"]["graffiti"] = graffiti if message["body"]["graffiti"] != graffiti else "0x" + "cd" * 32
        changed = signing.signing_root(SCHEDULE, Kind.BLOCK, other)
        assert len(merkleized) == 1 and changed != first
        assert changed == original(SCHEDULE, Kind.BLOCK, other, None)
        another = dataclasses.replace(
            SCHEDULE, genesis_validators_root=b"\x01" * 32
        )  # another chain's domain
        assert signing.signing_root(another, Kind.BLOCK, message) == original(
            another, Kind.BLOCK, message, None
        )
        assert len(merkleized) == 2 and original(another, Kind.BLOCK, message, None) != first
    finally:
        signing._signing_root = original  # type: ignore[assignment]
    for index in range(signing.LARGE_ROOT_MEMO + 5):
        signing.signing_root(SCHEDULE, Kind.BLOCK, {**message, "proposer_index": str(index)})
    assert len(signing._LARGE_ROOTS) == signing.LARGE_ROOT_MEMO
