"""The devnet BN on 127.0.0.1: what the BN client reads from it, its answers against the Beacon-API
OpenAPI schemas, and its judge (a valid attestation counted, a bad signature refused with 400 and
counted invalid, a slashable pair reported, malformed input answered with error bodies)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from covalidator.model.cluster.config import ChainConfig, hex0x
from covalidator.model.crypto import bls
from covalidator.model.eth import ssz_json, vc_flow
from covalidator.model.eth.interop import interop_secret_key
from covalidator.model.eth.signing import Kind, signing_root
from covalidator.runtime.bn_client import BeaconNodeClient
from covalidator.runtime.devnet import bn as devnet_bn
from covalidator.runtime.devnet.bn import DevnetBN, DevnetConfig
from tests.helpers.aio import run
from tests.helpers.beacon_api import BeaconAPISpec, url

V = 4
GENESIS = 1_700_000_000
FORK_VERSION = bytes.fromhex("00000001")


class FrozenClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def frozen_bn(at_slot: float) -> tuple[DevnetBN, FrozenClock]:
    """A BN whose clock stands `at_slot` slots (1 s each) after genesis."""
    clock = FrozenClock(GENESIS + at_slot)
    config = DevnetConfig(validators=V, epochs=2, seconds_per_slot=1, genesis_time=GENESIS)
    return DevnetBN(config, clock=clock), clock


def with_bn(bn: DevnetBN, scenario: Callable[[DevnetBN, aiohttp.ClientSession], Awaitable[None]]) -> None:
    async def main() -> None:
        await bn.start()
        try:
            async with aiohttp.ClientSession() as session:
                await scenario(bn, session)
        finally:
            await bn.stop()

    run(main(), 30)


async def fetch(
    session: aiohttp.ClientSession,
    bn: DevnetBN,
    method: str,
    path: str,
    query: dict[str, str] | None = None,
    body: Any = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> tuple[int, Any, dict[str, str]]:
    async with session.request(
        method, url(bn.url, path, query), json=body, data=raw, headers=headers
    ) as response:
        text = await response.read()
        return response.status, json.loads(text) if text.strip() else None, dict(response.headers)


def sign_as(bn: DevnetBN, index: int) -> vc_flow.Sign:
    def sign(_: int, kind: Kind, message: Any) -> str:
        return hex0x(bls.sign(interop_secret_key(index), signing_root(bn.chain.schedule, kind, message)))

    return sign


def duty_of(bn: DevnetBN, index: int, epoch: int = 0) -> vc_flow.AttesterDuty:
    duties, _ = bn.chain.attester_duties_at(epoch, 0, bn.now_ms())
    return duties[index]


async def report(session: aiohttp.ClientSession, bn: DevnetBN) -> Any:
    status, body, _ = await fetch(session, bn, "GET", "/devnet/report")
    assert status == 200
    return body


def test_the_bn_client_reads_chain_duties_data_and_events() -> None:
    """Real clock: genesis a few seconds ago, so head events arrive within a slot."""
    config = DevnetConfig(validators=V, epochs=2, seconds_per_slot=1, genesis_time=int(time.time()) - 3)
    pubkeys = [hex0x(bls.sk_to_pk(interop_secret_key(i))) for i in range(V)]

    async def scenario(bn: DevnetBN, session: aiohttp.ClientSession) -> None:
        async with BeaconNodeClient([bn.url]) as client:
            info = await client.check_chain(FORK_VERSION, bytes(32))  # devnet locks: root not pinned
            assert info.genesis_time == bn.genesis_time
            chain = ChainConfig.from_spec(info.spec, info.genesis_time, info.genesis_validators_root)
            assert (chain.clock.slot_ms, chain.schedule.preset, chain.fork_name(0)) == (
                1000,
                "minimal",
                "altair",
            )
            assert chain.sync_committee_size == 32 and chain.epochs_per_sync_committee_period == 8
            resolved = await client.resolve_validators(pubkeys)
            assert [(v.pubkey, v.index) for v in resolved] == list(zip(pubkeys, range(V), strict=True))
            attester = await client.attester_duties(0, range(V))
            assert len(attester.duties) == V and attester.dependent_root.startswith("0x")
            assert {d["pubkey"] for d in attester.duties} == set(pubkeys)
            proposer = await client.proposer_duties(0)
            assert [int(d["slot"]) for d in proposer.duties] == list(range(8))
            sync = await client.sync_duties(0, range(V))
            assert len(sync.duties) == V  # min(4, V) sync members
            slot = chain.clock.slot_at(int(time.time() * 1000))
            data = await client.attestation_data(slot, 0)
            assert data["slot"] == str(slot) and data["target"]["epoch"] == str(slot // 8)
            reveal = hex0x(bls.sign(interop_secret_key(0), b"\x00" * 32))
            produced = await client.produce_block(slot + 1, reveal)
            assert (produced["version"], produced["blinded"]) == ("altair", False)
            assert produced["block"]["body"]["randao_reveal"] == reveal
            assert "devnet" in await client.node_version()
            assert (await client.syncing())["is_syncing"] is False
            async for name, event in client.events(["head", "block"]):
                assert name == "head" and int(event["slot"]) >= slot
                assert event["current_duty_dependent_root"].startswith("0x")
                break

    with_bn(DevnetBN(config), scenario)


@pytest.fixture(scope="module")
def api() -> BeaconAPISpec:
    return BeaconAPISpec()


def test_answers_match_the_beacon_api_schemas(api: BeaconAPISpec) -> None:
    bn, _ = frozen_bn(3.5)
    duty = duty_of(bn, 0)
    pubkeys = [bn.chain.pubkeys[i] for i in range(V)]
    reveal = hex0x(bls.sign(interop_secret_key(0), b"\x00" * 32))

    async def scenario(bn: DevnetBN, session: aiohttp.ClientSession) -> None:
        checked = 0

        async def check(method: str, path: str, query: dict[str, str] | None = None, body: Any = None) -> Any:
            nonlocal checked
            status, answer, headers = await fetch(session, bn, method, path, query, body)
            api.check_response(method, path, status, answer, query=query, headers=headers)
            checked += 1
            return answer

        await check("GET", "/eth/v1/beacon/genesis")
        await check("GET", "/eth/v1/config/spec")
        await check("GET", "/eth/v1/node/version")
        await check("GET", "/eth/v1/node/syncing")
        await check("GET", "/eth/v1/beacon/states/head/validators", {"id": "1"})
        await check("POST", "/eth/v1/beacon/states/head/validators", body={"ids": pubkeys})
        await check("POST", "/eth/v1/validator/duties/attester/0", body=[str(i) for i in range(V)])
        await check("GET", "/eth/v1/validator/duties/proposer/0")
        await check("POST", "/eth/v1/validator/duties/sync/0", body=[str(i) for i in range(V)])
        await check("GET", "/eth/v1/beacon/blocks/head/root")
        query = {"slot": str(duty.slot), "committee_index": str(duty.committee_index)}
        data = (await check("GET", "/eth/v1/validator/attestation_data", query))["data"]
        await check("GET", "/eth/v3/validator/blocks/4", {"randao_reveal": reveal})
        root = bn.chain.block_root(3, 0, bn.now_ms())
        await check(
            "GET",
            "/eth/v1/validator/sync_committee_contribution",
            {"slot": "3", "subcommittee_index": "0", "beacon_block_root": root},
        )
        attestation = vc_flow.attestations(data, [duty], sign_as(bn, 0))
        header = {"Eth-Consensus-Version": "altair"}
        api.check_request("POST", "/eth/v2/beacon/pool/attestations", attestation, headers=header)
        status, _, _ = await fetch(
            session, bn, "POST", "/eth/v2/beacon/pool/attestations", body=attestation, headers=header
        )
        assert status == 200
        data_root = hex0x(ssz_json.hash_tree_root(bn.chain.spec.AttestationData, data))
        query = {
            "attestation_data_root": data_root,
            "slot": str(duty.slot),
            "committee_index": str(duty.committee_index),
        }
        aggregate = await check("GET", "/eth/v2/validator/aggregate_attestation", query)
        assert (
            aggregate["version"] == "altair" and aggregate["data"]["signature"] == attestation[0]["signature"]
        )
        # error bodies
        await check("GET", "/eth/v1/validator/attestation_data", {"slot": "x", "committee_index": "0"})
        bad = [{**attestation[0], "signature": reveal}]
        status, answer, headers = await fetch(
            session, bn, "POST", "/eth/v2/beacon/pool/attestations", body=bad, headers=header
        )
        api.check_response("POST", "/eth/v2/beacon/pool/attestations", status, answer, headers=headers)
        checked += 1
        assert answer["code"] == 400 and answer["failures"][0]["index"] == 0
        answer = await check("POST", "/eth/v1/validator/beacon_committee_selections", body=[])
        assert answer["code"] == 501
        assert checked == 17

    with_bn(bn, scenario)
    # the checker is not vacuous: a number where the spec wants a decimal string is refused
    with pytest.raises(Exception, match="not valid"):
        api.check_response(
            "GET",
            "/eth/v1/beacon/genesis",
            200,
            {
                "data": {
                    "genesis_time": 1,
                    "genesis_validators_root": "0x" + "00" * 32,
                    "genesis_fork_version": "0x00000001",
                }
            },
        )


def test_the_judge_counts_valid_refuses_bad_and_reports_slashable_pairs() -> None:
    bn, clock = frozen_bn(0)
    duty = duty_of(bn, 0)
    clock.now = GENESIS + duty.slot + 0.5

    async def scenario(bn: DevnetBN, session: aiohttp.ClientSession) -> None:
        query = {"slot": str(duty.slot), "committee_index": str(duty.committee_index)}
        _, answer, _ = await fetch(session, bn, "GET", "/eth/v1/validator/attestation_data", query)
        data = answer["data"]
        good = vc_flow.attestations(data, [duty], sign_as(bn, 0))
        status, _, _ = await fetch(session, bn, "POST", "/eth/v1/beacon/pool/attestations", body=good)
        assert status == 200
        figures = await report(session, bn)
        assert figures["duties"]["by_kind"]["attester"]["succeeded"] == 1
        assert (figures["invalid_submissions"], figures["slashable_pairs"]) == (0, 0)
        assert figures["latency_ms"]["attester"]["p50"] == 500 - 333  # arrival minus the duty's start (1/3)

        forged = vc_flow.attestations(data, [duty], sign_as(bn, 1))  # validator 1's key, validator 0's seat
        status, answer, _ = await fetch(session, bn, "POST", "/eth/v1/beacon/pool/attestations", body=forged)
        assert status == 400 and answer["code"] == 400
        assert "does not verify" in answer["failures"][0]["message"]
        figures = await report(session, bn)
        assert figures["invalid_submissions"] == 1 and figures["slashable_pairs"] == 0
        assert figures["duties"]["by_kind"]["attester"]["succeeded"] == 1

        other = {**data, "beacon_block_root": "0x" + "ab" * 32}  # same target epoch, other vote
        double = vc_flow.attestations(other, [duty], sign_as(bn, 0))
        status, _, _ = await fetch(session, bn, "POST", "/eth/v1/beacon/pool/attestations", body=double)
        assert status == 200  # a valid signature: the BN takes it, the judge reports the pair
        figures = await report(session, bn)
        assert figures["slashable_pairs"] == 1 and "validator 0" in figures["slashable"][0]

        _, answer, _ = await fetch(
            session,
            bn,
            "GET",
            f"/eth/v3/validator/blocks/{duty.slot}",
            {"randao_reveal": good[0]["signature"]},
        )
        block = {**answer["data"], "proposer_index": "0"}
        signed = {"message": block, "signature": sign_as(bn, 0)(0, Kind.BLOCK, block)}
        status, answer, _ = await fetch(
            session,
            bn,
            "POST",
            "/eth/v2/beacon/blocks",
            body=signed,
            headers={"Eth-Consensus-Version": "altair"},
        )
        assert status == 400 and "RANDAO reveal of validator 0 does not verify" in answer["message"]
        assert (await report(session, bn))["invalid_submissions"] == 2

    with_bn(bn, scenario)


def test_malformed_input_gets_error_bodies_never_a_crash() -> None:
    bn, _ = frozen_bn(2.5)

    async def scenario(bn: DevnetBN, session: aiohttp.ClientSession) -> None:
        cases: list[tuple[str, str, dict[str, str] | None, Any, bytes | None, dict[str, str] | None, int]] = [
            ("POST", "/eth/v1/beacon/pool/attestations", None, None, b"{not json", None, 400),
            ("POST", "/eth/v1/beacon/pool/attestations", None, {"not": "a list"}, None, None, 400),
            ("POST", "/eth/v1/beacon/pool/attestations", None, [1, "x", {}], None, None, 400),
            ("POST", "/eth/v2/beacon/pool/attestations", None, [], None, None, 400),  # no version header
            ("POST", "/eth/v2/beacon/blocks", None, {}, None, {"Eth-Consensus-Version": "electra"}, 400),
            ("POST", "/eth/v1/beacon/blocks", None, [], None, None, 400),
            ("POST", "/eth/v1/beacon/blinded_blocks", None, {}, None, None, 400),
            ("POST", "/eth/v1/validator/aggregate_and_proofs", None, [{"message": 5}], None, None, 400),
            ("POST", "/eth/v1/beacon/pool/sync_committees", None, [{"slot": "-1"}], None, None, 400),
            ("POST", "/eth/v1/validator/contribution_and_proofs", None, [None], None, None, 400),
            ("POST", "/eth/v1/validator/duties/attester/0", None, ["zero"], None, None, 400),
            ("POST", "/eth/v1/validator/duties/attester/99", None, ["0"], None, None, 400),  # far future
            ("GET", "/eth/v1/validator/duties/proposer/-1", None, None, None, None, 400),
            ("GET", "/eth/v1/validator/attestation_data", {"slot": "2"}, None, None, None, 400),
            (
                "GET",
                "/eth/v1/validator/attestation_data",
                {"slot": "2", "committee_index": "9"},
                None,
                None,
                None,
                400,
            ),
            (
                "GET",
                "/eth/v1/validator/attestation_data",
                {"slot": "99", "committee_index": "0"},
                None,
                None,
                None,
                400,
            ),
            ("GET", "/eth/v3/validator/blocks/3", {"randao_reveal": "0x12"}, None, None, None, 400),
            (
                "GET",
                "/eth/v1/validator/aggregate_attestation",
                {"slot": "2", "attestation_data_root": "0x" + "00" * 32},
                None,
                None,
                None,
                404,
            ),
            ("GET", "/eth/v1/beacon/states/nowhere/validators", None, None, None, None, 400),
            ("POST", "/eth/v1/beacon/states/head/validators", None, {"ids": "0"}, None, None, 400),
            ("GET", "/eth/v1/beacon/states/head/validators/0x12", None, None, None, None, 400),
            ("GET", "/eth/v1/events", {"topics": "nonsense"}, None, None, None, 400),
            ("GET", "/eth/v1/no/such/route", None, None, None, None, 404),
            ("DELETE", "/eth/v1/beacon/genesis", None, None, None, None, 405),
        ]
        for method, path, query, body, raw, headers, expected in cases:
            status, answer, _ = await fetch(session, bn, method, path, query, body, headers, raw)
            assert status == expected, (method, path, status, answer)
            assert answer["code"] == expected and answer["message"], (path, answer)
        figures = await report(session, bn)
        assert "500" not in figures["error_answers"]
        assert figures["invalid_submissions"] == 7  # judged and failed: 3 attestations, a block, 3 others
        assert figures["duties"]["succeeded"] == 0

    with_bn(bn, scenario)


def test_a_batch_of_attestations_is_verified_together_and_a_forged_one_is_still_named() -> None:
    clock = FrozenClock(GENESIS)
    config = DevnetConfig(validators=64, epochs=1, seconds_per_slot=1, genesis_time=GENESIS)
    bn = DevnetBN(config, clock=clock)
    duties, _ = bn.chain.attester_duties_at(0, 0, bn.now_ms())
    slot = duties[0].slot
    members = [d for d in duties.values() if (d.slot, d.committee_index) == (slot, duties[0].committee_index)]
    clock.now = GENESIS + slot + 0.5

    async def scenario(bn: DevnetBN, session: aiohttp.ClientSession) -> None:
        query = {"slot": str(slot), "committee_index": str(duties[0].committee_index)}
        _, answer, _ = await fetch(session, bn, "GET", "/eth/v1/validator/attestation_data", query)
        data = answer["data"]
        batch = [a for d in members for a in vc_flow.attestations(data, [d], sign_as(bn, d.index))]
        forged = vc_flow.attestations(data, [members[0]], sign_as(bn, members[0].index + 1))
        assert len(batch) >= 4  # a batch check, then bisection down to the forged one
        batch = [*batch, *forged]  # validator 0's seat again, another key: the one invalid item
        status, answer, _ = await fetch(session, bn, "POST", "/eth/v1/beacon/pool/attestations", body=batch)
        assert status == 400 and [f["index"] for f in answer["failures"]] == [len(members)]
        figures = await report(session, bn)
        assert figures["duties"]["by_kind"]["attester"]["succeeded"] == len(members)
        assert figures["invalid_submissions"] == 1

    with_bn(bn, scenario)


def test_slow_answers_and_a_held_event_loop_are_logged_and_reported(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """What made a client wait is in the report: a request answered after SLOW_S (here a handler that
    holds the loop 0.6 s against a bound of 0.2 s: longer than the bound plus the watch's 0.25 s tick,
    so the watch sees it wherever its timer stood), and the loop's stretch of running nothing else.
    A quick answer is not counted."""
    monkeypatch.setattr(devnet_bn, "SLOW_S", 0.2)
    bn, _ = frozen_bn(0.5)
    real = bn.genesis

    async def slow_genesis(request: web.Request) -> web.Response:
        time.sleep(0.6)  # holds the event loop, as a long synchronous check would
        return await real(request)

    monkeypatch.setattr(bn, "genesis", slow_genesis)

    async def scenario(bn: DevnetBN, session: aiohttp.ClientSession) -> None:
        status, _, _ = await fetch(session, bn, "GET", "/eth/v1/node/version")
        assert status == 200
        assert (await report(session, bn))["slow_requests"] == {}
        status, _, _ = await fetch(session, bn, "GET", "/eth/v1/beacon/genesis")
        assert status == 200
        await asyncio.sleep(0.3)  # the watch's timer has come back after the held stretch
        figures = await report(session, bn)
        assert figures["slow_requests"] == {"GET /eth/v1/beacon/genesis": 1}
        assert figures["loop_held_s"] and all(0.2 <= s < 5 for s in figures["loop_held_s"])

    with caplog.at_level(logging.WARNING, logger="covalidator.devnet.bn"):
        with_bn(bn, scenario)
    assert any("GET /eth/v1/beacon/genesis answered 200 after" in r.getMessage() for r in caplog.records)


def test_the_expected_duties_are_worked_out_before_the_bn_serves() -> None:
    """Made lazily on the first report (at genesis, when the bench first asks), they held the BN's
    event loop for 2.8 s at 5,000 validators while the nodes' genesis requests waited."""
    bn, _ = frozen_bn(0.5)
    assert not bn.report.prepared

    async def scenario(bn: DevnetBN, session: aiohttp.ClientSession) -> None:
        assert bn.report.prepared
        assert (await report(session, bn))["duties"]["expected"] == len(bn.chain.expected_duties())

    with_bn(bn, scenario)
