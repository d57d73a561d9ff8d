"""The generic Beacon-API JSON <-> SSZ converter: round trips on random containers of every fork,
agreement with the specs' own debug encoder, and strict refusals that name the offending path."""

from __future__ import annotations

from random import Random
from typing import Any

import pytest
from eth_consensus_specs.debug.encode import encode as spec_encode
from eth_consensus_specs.debug.random_value import RandomizationMode, get_random_ssz_object
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from covalidator.model.eth.specs import FORKS, spec
from covalidator.model.eth.ssz_json import SszJsonError, from_json, hash_tree_root, to_json

TYPES = [
    "AttestationData",
    "Attestation",
    "AggregateAndProof",
    "BeaconBlock",
    "SignedVoluntaryExit",
    "SyncAggregatorSelectionData",
    "ContributionAndProof",
    "ExecutionPayload",
    "ExecutionPayloadHeader",
]


def spec_style(value: object) -> object:
    """The specs' debug encoder writes small uints as JSON numbers; the Beacon API as strings."""
    if isinstance(value, dict):
        return {k: spec_style(v) for k, v in value.items()}
    if isinstance(value, list):
        return [spec_style(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


@settings(max_examples=40, deadline=None)
@given(
    fork=st.sampled_from(FORKS),
    name=st.sampled_from(TYPES),
    seed=st.integers(0, 2**32),
    mode=st.sampled_from(
        [
            RandomizationMode.mode_random,
            RandomizationMode.mode_max_count,
            RandomizationMode.mode_zero,
            RandomizationMode.mode_nil_count,
        ]
    ),
)
def test_round_trip_on_random_containers(fork: str, name: str, seed: int, mode: RandomizationMode) -> None:
    s = spec(fork, "minimal")
    typ = getattr(s, name, None)
    assume(typ is not None)  # not in this fork (sync committees before altair, payloads before bellatrix)
    value = get_random_ssz_object(Random(seed), typ, 64, 3, mode, chaos=False)
    as_json = to_json(value)
    assert as_json == spec_style(spec_encode(value))
    back = from_json(typ, as_json)
    assert back == value
    assert hash_tree_root(typ, as_json) == bytes(value.hash_tree_root())


def _attestation() -> dict[str, Any]:
    return to_json(spec("electra", "minimal").Attestation())  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda j: j["data"].pop("slot"), r"data: AttestationData is missing slot"),
        (lambda j: j["data"].update(extra="1"), r"data: AttestationData has no field extra"),
        (lambda j: j["data"].update(slot=5), r"data\.slot: expected a decimal string, got 5"),
        (lambda j: j["data"].update(slot="-1"), r"data\.slot: expected a decimal string"),
        (lambda j: j["data"].update(slot="007"), r"data\.slot: expected a decimal string"),
        (
            lambda j: j["data"].update(slot=str(2**64)),
            r"data\.slot: 18446744073709551616 does not fit in 64 bits",
        ),
        (lambda j: j["data"]["target"].update(root="0x00"), r"data\.target\.root: expected 32 bytes, got 1"),
        (
            lambda j: j["data"]["source"].update(root="0x0g" + "00" * 31),
            r"data\.source\.root: expected 0x-prefixed hex",
        ),
        (lambda j: j.update(signature="00" * 96), r"signature: expected 0x-prefixed hex"),
        (lambda j: j.update(aggregation_bits="0x00"), r"aggregation_bits: not a valid"),  # no delimiter bit
        (lambda j: j.update(committee_bits=[True]), r"committee_bits: expected 0x-prefixed hex"),
        (lambda j: j.update(data=[]), r"data: expected a JSON object for AttestationData"),
    ],
)
def test_strict_refusals_name_the_path(mutate: Any, message: str) -> None:
    value = _attestation()
    from_json(spec("electra", "minimal").Attestation, value)  # the unmutated value is fine
    mutate(value)
    with pytest.raises(SszJsonError, match=message):
        from_json(spec("electra", "minimal").Attestation, value)


def test_list_limits_and_booleans() -> None:
    s = spec("deneb", "minimal")
    body = to_json(s.BeaconBlockBody())
    body["voluntary_exits"] = [to_json(s.SignedVoluntaryExit())] * (int(s.MAX_VOLUNTARY_EXITS) + 1)
    with pytest.raises(SszJsonError, match=r"voluntary_exits: 17 elements exceed the limit 16"):
        from_json(s.BeaconBlockBody, body)
    validator = to_json(s.Validator())
    assert validator["slashed"] is False  # type: ignore[index]
    validator["slashed"] = "false"  # type: ignore[index]
    with pytest.raises(SszJsonError, match="slashed: expected a JSON boolean"):
        from_json(s.Validator, validator)
