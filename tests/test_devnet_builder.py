"""The devnet BN's builder flow (bellatrix devnet): registrations are checked, a registered proposer gets
a builder's blinded block paying its registered fee recipient, others get a local block; a signed
blinded block is judged like the full block (one signing root) and the judge records who it paid.
Oracles: the consensus specs' signing roots and the interop keys, never the BN's own bookkeeping."""

from __future__ import annotations

from typing import Any

import aiohttp

from covalidator.model.cluster.config import hex0x
from covalidator.model.crypto import bls
from covalidator.model.eth.interop import interop_secret_key
from covalidator.model.eth.signing import Kind, signing_root
from covalidator.runtime.devnet.bn import DevnetBN, DevnetConfig
from tests.test_devnet_bn import GENESIS, FrozenClock, fetch, with_bn

V = 4
FEE = "0x" + "fe" * 20
PREPARED = "0x" + "aa" * 20


def builder_bn(at_slot: float) -> tuple[DevnetBN, FrozenClock]:
    config = DevnetConfig(
        validators=V, epochs=2, seconds_per_slot=1, genesis_time=GENESIS, fork="bellatrix", proposer_share=1.0
    )
    clock = FrozenClock(GENESIS + at_slot)
    return DevnetBN(config, clock=clock), clock


def sign(bn: DevnetBN, index: int, kind: Kind, message: Any) -> str:
    return hex0x(bls.sign(interop_secret_key(index), signing_root(bn.chain.schedule, kind, message)))


def registration(bn: DevnetBN, index: int, signer: int | None = None) -> dict[str, Any]:
    message = {
        "fee_recipient": FEE,
        "gas_limit": "36000000",
        "timestamp": "100",
        "pubkey": hex0x(bls.sk_to_pk(interop_secret_key(index))),
    }
    return {
        "message": message,
        "signature": sign(bn, index if signer is None else signer, Kind.VALIDATOR_REGISTRATION, message),
    }


def test_registered_proposers_get_blinded_blocks_paying_them_others_local_blocks() -> None:
    bn, clock = builder_bn(at_slot=0.5)

    async def scenario(bn: DevnetBN, session: aiohttp.ClientSession) -> None:
        proposers, _ = bn.chain.proposers_at(0, 0, bn.now_ms())
        by_index: dict[int, int] = {}
        for slot, index in sorted(proposers.items()):
            if slot >= 1:
                by_index.setdefault(index, slot)
        assert len(by_index) >= 2, proposers
        registered, other = sorted(by_index)[:2]
        # a valid registration for one proposer, one signed by the wrong key for the other
        status, body, _ = await fetch(
            session,
            bn,
            "POST",
            "/eth/v1/validator/register_validator",
            body=[registration(bn, registered), registration(bn, other, signer=registered)],
        )
        assert status == 400 and [f["index"] for f in body["failures"]] == [1], body
        status, _, _ = await fetch(
            session,
            bn,
            "POST",
            "/eth/v1/validator/prepare_beacon_proposer",
            body=[{"validator_index": str(other), "fee_recipient": PREPARED}],
        )
        assert status == 200
        for index, blinded, paid in ((registered, True, FEE), (other, False, PREPARED)):
            slot = by_index[index]
            clock.now = GENESIS + slot + 0.1  # the BN builds for its current slot
            reveal = sign(bn, index, Kind.RANDAO_REVEAL, {"epoch": "0"})
            status, body, headers = await fetch(
                session, bn, "GET", f"/eth/v3/validator/blocks/{slot}", query={"randao_reveal": reveal}
            )
            assert status == 200 and body["execution_payload_blinded"] is blinded, body
            assert headers["Eth-Execution-Payload-Blinded"] == str(blinded).lower()
            block = body["data"]
            payload = block["body"]["execution_payload_header" if blinded else "execution_payload"]
            assert payload["fee_recipient"] == paid
            kind = Kind.BLINDED_BLOCK if blinded else Kind.BLOCK
            signed = {"message": block, "signature": sign(bn, index, kind, block)}
            path = "/eth/v2/beacon/blinded_blocks" if blinded else "/eth/v2/beacon/blocks"
            status, body, _ = await fetch(
                session, bn, "POST", path, body=signed, headers={"Eth-Consensus-Version": "bellatrix"}
            )
            assert status == 200, body
            assert bn.chain.judge.payments[slot] == (paid, blinded)
        # a blinded block signed by another key is refused and counted invalid
        slot = by_index[registered]
        clock.now = GENESIS + slot + 0.1
        reveal = sign(bn, registered, Kind.RANDAO_REVEAL, {"epoch": "0"})
        _, body, _ = await fetch(
            session, bn, "GET", f"/eth/v3/validator/blocks/{slot}", query={"randao_reveal": reveal}
        )
        forged = {"message": body["data"], "signature": sign(bn, other, Kind.BLINDED_BLOCK, body["data"])}
        status, _, _ = await fetch(
            session,
            bn,
            "POST",
            "/eth/v2/beacon/blinded_blocks",
            body=forged,
            headers={"Eth-Consensus-Version": "bellatrix"},
        )
        assert status == 400 and bn.chain.judge.invalid

    with_bn(bn, scenario)


def test_the_blinded_block_signs_the_same_root_as_the_full_block() -> None:
    """The builder's header commits to the payload: a VC signing either form signs one root."""
    bn, _ = builder_bn(at_slot=0.5)
    reveal = sign(bn, 0, Kind.RANDAO_REVEAL, {"epoch": "0"})
    full = bn.chain.produce_block(1, 0, reveal, 0, bn.now_ms(), FEE)
    blinded = bn.chain.produce_block(1, 0, reveal, 0, bn.now_ms(), FEE, blinded=True)
    assert signing_root(bn.chain.schedule, Kind.BLOCK, full["block"]) == signing_root(
        bn.chain.schedule, Kind.BLINDED_BLOCK, blinded["block"]
    )
    other = bn.chain.produce_block(1, 0, reveal, 0, bn.now_ms(), PREPARED, blinded=True)
    assert signing_root(bn.chain.schedule, Kind.BLINDED_BLOCK, other["block"]) != signing_root(
        bn.chain.schedule, Kind.BLINDED_BLOCK, blinded["block"]
    )


def test_registrations_are_checked_in_a_batch_and_a_resubmission_keeps_its_verdict() -> None:
    """Every node submits every registration each epoch: the BN checks a body in one batch and
    remembers each verdict; a bad signature among good ones is named, again when it comes back."""
    bn, _ = builder_bn(at_slot=0.5)
    body = [registration(bn, 0), registration(bn, 1, signer=2), registration(bn, 2), registration(bn, 3)]

    async def scenario(bn: DevnetBN, session: aiohttp.ClientSession) -> None:
        for _ in range(2):
            status, answer, _ = await fetch(
                session, bn, "POST", "/eth/v1/validator/register_validator", body=body
            )
            assert status == 400 and [f["index"] for f in answer["failures"]] == [1], answer
            assert "bad registration signature" in answer["failures"][0]["message"]
        assert sorted(bn.registrations) == [0, 2, 3] and bn.registrations_invalid == 2
        status, _, _ = await fetch(
            session, bn, "POST", "/eth/v1/validator/register_validator", body=[body[0], body[2]]
        )
        assert status == 200

    with_bn(bn, scenario)


def test_the_same_registrations_posted_by_four_nodes_at_once_are_checked_once(monkeypatch: Any) -> None:
    """At genesis every node posts every registration at the same moment: the BN checks each one once
    (the others wait for that check and read its verdicts), not once per node, and every body gets
    the same answer. Counted by wrapping the batch check; the oracle for the verdicts is the keys."""
    import asyncio

    from covalidator.runtime.devnet import bn as bn_module

    checked: list[int] = []
    check = bn_module._registration_verdicts

    def counting(schedule: Any, items: dict[tuple[str, ...], Any]) -> dict[tuple[str, ...], str]:
        checked.append(len(items))
        return check(schedule, items)

    monkeypatch.setattr(bn_module, "_registration_verdicts", counting)
    bn, _ = builder_bn(at_slot=0.5)
    body = [registration(bn, 0), registration(bn, 1, signer=2), registration(bn, 2), registration(bn, 3)]

    async def scenario(bn: DevnetBN, session: aiohttp.ClientSession) -> None:
        path = "/eth/v1/validator/register_validator"
        answers = await asyncio.gather(*(fetch(session, bn, "POST", path, body=body) for _ in range(4)))
        for status, answer, _ in answers:
            assert status == 400 and [f["index"] for f in answer["failures"]] == [1], answer
        assert checked == [4], checked  # one batch of the four registrations
        assert sorted(bn.registrations) == [0, 2, 3] and bn.registrations_invalid == 4

    with_bn(bn, scenario)
