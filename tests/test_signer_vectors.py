"""The signer's reading of Remote Signing API requests, against roots computed by others.

Two independent oracles of the signing root each request names (`signingRoot`):
- the examples of the Remote Signing API's own OpenAPI document (../shared/remote-signing-api), and
- requests captured from Lodestar 1.5.1's validator client (tests/fixtures/lodestar-1.5.1-signer-
  requests.json: its ValidatorStore with a remote signer, minimal preset, altair from genesis, on a
  chain whose genesis validators root is 0xab..ab).
`node/signer.parse` must turn each body into the same root (it never trusts `signingRoot`: it refuses
a request whose root differs from its own), and accept each request's `fork_info`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from covalidator.model.clock import SlotClock
from covalidator.model.cluster.config import ChainConfig, NodeConfig, ValidatorKeys
from covalidator.model.eth.signing import Fork, ForkSchedule
from covalidator.model.eth.specs import FORKS
from covalidator.model.node import pool, signer
from covalidator.model.node.state import NodeState
from tests.conftest import shared_path

FIXTURE = Path(__file__).parent / "fixtures" / "lodestar-1.5.1-signer-requests.json"
POOL_TYPES = {"VOLUNTARY_EXIT", "VALIDATOR_REGISTRATION"}  # messages without a slot: node/pool.py


def state_for(schedule: ForkSchedule, pubkey: str, epoch: int) -> NodeState:
    """A signer-mode node of a 3-of-4 cluster whose validator 0 is `pubkey`, at the start of `epoch`."""
    clock = SlotClock(0, 6000, schedule.slots_per_epoch)
    shares = tuple(f"0x{i:096x}" for i in range(1, 5))
    config = NodeConfig(
        1, 3, (ValidatorKeys(pubkey, shares),), ChainConfig(clock, schedule), signs_own_partials=True
    )
    state = NodeState(config, now_ms=clock.slot_start_ms(clock.first_slot(epoch)), started=True)
    state.indices[pubkey] = 0
    return state


def lodestar_cases() -> list[Any]:
    document = json.loads(FIXTURE.read_text())
    posts = [r for r in document["requests"] if r["method"] == "POST"]
    return [pytest.param(document["pubkey"], r["body"], id=r["body"]["type"]) for r in posts]


def lodestar_schedule() -> ForkSchedule:
    forks = (Fork("phase0", 0, bytes.fromhex("00000001")), Fork("altair", 0, bytes.fromhex("01000001")))
    return ForkSchedule(forks, bytes.fromhex("ab" * 32), "minimal", 8)


@pytest.mark.parametrize(("pubkey", "body"), lodestar_cases())
def test_every_request_lodestar_sends_is_read_as_the_root_lodestar_computed(
    pubkey: str, body: dict[str, Any]
) -> None:
    schedule = lodestar_schedule()
    state = state_for(schedule, pubkey, epoch=2)  # the captured messages are of slot 19, epoch 2
    if body["type"] in POOL_TYPES:  # no slot, no consensus: node/pool.py reads them
        assert pool.parse_sign(state, pubkey, body)[3] == body["signingRoot"]
        return
    target = signer.parse(state, pubkey, body)
    assert target.root == body["signingRoot"]


def remote_signing_examples() -> list[Any]:
    paths = yaml.safe_load(
        (shared_path("remote-signing-api") / "signing" / "paths" / "sign.yaml").read_text()
    )
    examples = paths["post"]["requestBody"]["content"]["application/json"]["examples"]
    return [pytest.param(example["value"], id=name) for name, example in examples.items()]


@pytest.mark.parametrize("body", remote_signing_examples())
def test_the_remote_signing_apis_own_examples_are_read_as_their_roots(body: dict[str, Any]) -> None:
    refusal = {"DEPOSIT": 412, "BLOCK": 400}
    if body["type"] in refusal:
        # by design (deposits), or a shape no client sends
        # (the deprecated BLOCK example is camelCase, the eth2.0 API v0): refused, with the API's status
        state = state_for(ForkSchedule((Fork("phase0", 0, bytes(4)),), bytes(32)), "0x" + "8f" * 48, 1)
        with pytest.raises(signer.Refused) as refused:
            signer.parse(state, "0x" + "8f" * 48, body)
        assert refused.value.status == refusal[body["type"]]
        return
    if body["type"] == "VALIDATOR_REGISTRATION":  # no fork_info: the builder domain over a genesis version
        pubkey = body["validator_registration"]["pubkey"]
        roots = set()
        for version in ("00000000", "00000001"):
            schedule = ForkSchedule((Fork("phase0", 0, bytes.fromhex(version)),), bytes(32))
            try:
                roots.add(pool.parse_sign(state_for(schedule, pubkey, 1), pubkey, body)[3])
            except signer.Refused as refused:
                roots.add(f"refused under {version}: {refused.reason}")
        assert body["signingRoot"] in roots, roots
        return
    fork = body["fork_info"]["fork"]
    version = bytes.fromhex((fork.get("current_version") or fork["currentVersion"])[2:])
    gvr = bytes.fromhex(body["fork_info"]["genesis_validators_root"][2:])
    # The examples' chain: one version throughout, every fork up to the message's active from genesis
    # (a block names its fork; the other types are altair messages). The document does not say its
    # preset, and the sizes of bitfields differ between them: one of the two must give the root.
    last = (
        body["beacon_block"]["version"].lower().replace(" ", "") if body["type"] == "BLOCK_V2" else "altair"
    )
    forks = tuple(Fork(name, 0, version) for name in FORKS[: FORKS.index(last) + 1])
    epoch = int(body["randao_reveal"]["epoch"]) if body["type"] == "RANDAO_REVEAL" else int(fork["epoch"])
    roots = set()
    for preset in ("mainnet", "minimal"):
        state = state_for(ForkSchedule(forks, gvr, preset, 32), "0x" + "8f" * 48, epoch)
        try:
            if body["type"] in POOL_TYPES:
                roots.add(pool.parse_sign(state, "0x" + "8f" * 48, body)[3])
            else:
                roots.add(signer.parse(state, "0x" + "8f" * 48, body).root)
        except signer.Refused as refused:
            roots.add(f"refused under {preset}: {refused.reason}")
    assert body["signingRoot"] in roots, roots
