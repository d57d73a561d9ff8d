"""The BN client against fake beacon nodes on 127.0.0.1: racing, fallbacks, API-version fallback and
memory, typed helpers, submissions, the startup chain check, server-sent events, statistics."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from covalidator.model.node.events import SubmissionKind
from covalidator.runtime.bn_client import (
    BeaconNodeClient,
    BNResponseError,
    BNUnavailable,
    ChainMismatch,
    is_electra_or_later,
)
from tests.helpers.aio import listening_socket, port_of, run
from tests.helpers.fake_bn import GENESIS, SPEC, FakeBN, data

ATT_DATA = {"slot": "5", "index": "0", "beacon_block_root": "0x" + "11" * 32}
FORK = bytes.fromhex("10000038")
GVR = bytes.fromhex("4b" * 32)


def closed_port_url() -> str:
    sock = listening_socket()
    port = port_of(sock)
    sock.close()
    return f"http://127.0.0.1:{port}"


def with_bns(count: int, scenario: Callable[[list[FakeBN]], Awaitable[None]], timeout: float = 30.0) -> None:
    async def main() -> None:
        bns = [await FakeBN().standard().start() for _ in range(count)]
        try:
            await scenario(bns)
        finally:
            for bn in bns:
                await bn.stop()

    run(main(), timeout)


def test_first_good_answer_wins_and_slow_bns_do_not_delay_it() -> None:
    async def scenario(bns: list[FakeBN]) -> None:
        slow, fast = bns
        slow.behaviour = "slow"
        for bn in bns:
            bn.answer("GET", "/eth/v1/validator/attestation_data", {"data": ATT_DATA})
        async with BeaconNodeClient([slow.url, fast.url]) as client:
            started = time.monotonic()
            assert await client.attestation_data(5, 0) == ATT_DATA
            assert time.monotonic() - started < 1.0
            stats = client.stats()
            assert stats[fast.url]["endpoints"]["attestation_data"]["count"] == 1
            assert stats[fast.url]["endpoints"]["attestation_data"]["p50_ms"] < 1000
        assert slow.count("GET", "/eth/v1/validator/attestation_data") == 1  # asked, then cancelled

    with_bns(2, scenario)


@pytest.mark.parametrize("failure", ["syncing", "error", "down", "timeout", "malformed"])
def test_fallback_is_used_when_no_primary_answers(failure: str) -> None:
    async def scenario(bns: list[FakeBN]) -> None:
        primary, fallback = bns
        fallback.answer("GET", "/eth/v1/validator/attestation_data", {"data": ATT_DATA})
        primary.answer("GET", "/eth/v1/validator/attestation_data", {"data": {"wrong": True}})
        url = primary.url
        if failure == "down":
            url = closed_port_url()
        elif failure == "timeout":
            primary.behaviour = "slow"
        else:
            primary.behaviour = failure
        async with BeaconNodeClient([url], [fallback.url], timeouts={"attestation_data": 0.5}) as client:
            assert await client.attestation_data(5, 0) == ATT_DATA
            health = client.stats()[url]
            expected = {
                "syncing": "syncing",
                "error": "status_5xx",
                "down": "connection",
                "timeout": "timeout",
                "malformed": "bad_body",
            }
            assert health["errors"] == {expected[failure]: 1}
            assert health["syncing"] == (failure == "syncing") and health["down"] == (
                failure in ("down", "timeout")
            )
            # the primary is known unhealthy: the fallback now races in round one
            started = time.monotonic()
            assert await client.attestation_data(5, 0) == ATT_DATA
            assert time.monotonic() - started < 0.4

    with_bns(2, scenario)


def test_a_client_error_is_definitive_and_no_answer_names_every_failure() -> None:
    async def scenario(bns: list[FakeBN]) -> None:
        primary, fallback = bns
        primary.answer("GET", "/eth/v1/validator/attestation_data", {"code": 400, "message": "bad slot"}, 400)
        async with BeaconNodeClient([primary.url], [fallback.url]) as client:
            with pytest.raises(BNResponseError, match="answered 400: bad slot") as caught:
                await client.attestation_data(5, 0)
            assert caught.value.status == 400
            assert fallback.count("GET", "/eth/v1/validator/attestation_data") == 0
        primary.behaviour = fallback.behaviour = "error"
        down = closed_port_url()
        async with BeaconNodeClient([primary.url, down], [fallback.url]) as client:
            with pytest.raises(BNUnavailable) as unavailable:
                await client.attestation_data(5, 0)
            message = str(unavailable.value)
            assert message.startswith("attestation_data: no beacon node answered")
            assert f"{primary.url}: status_5xx" in message and f"{down}: connection" in message
            assert f"{fallback.url}: status_5xx" in message

    with_bns(2, scenario)


def test_produce_block_falls_back_to_older_versions_and_remembers() -> None:
    async def scenario(bns: list[FakeBN]) -> None:
        old, modern = bns
        block = {"slot": "7", "body": {}}
        old.answer("GET", "/eth/v2/validator/blocks/7", {"version": "altair", "data": block})
        modern.answer(
            "GET",
            "/eth/v3/validator/blocks/7",
            {"version": "deneb", "execution_payload_blinded": True, "data": block},
            headers={"Eth-Consensus-Version": "deneb", "Eth-Execution-Payload-Blinded": "true"},
        )
        async with BeaconNodeClient([old.url]) as client:
            for _ in range(3):
                produced = await client.produce_block(7, "0x" + "aa" * 96, graffiti="0x" + "00" * 32)
                assert produced == {"version": "altair", "blinded": False, "block": block}
            assert old.count("GET", "/eth/v3/validator/blocks/7") == 1  # remembered after the first call
            assert old.count("GET", "/eth/v2/validator/blocks/7") == 3
            query = old.hits[-1][2]
            assert "randao_reveal=0x" in query and "graffiti=0x" in query
            assert client.stats()[old.url]["variants"] == {"produce_block": "v2"}
        async with BeaconNodeClient([modern.url]) as client:
            produced = await client.produce_block(7, "0x" + "aa" * 96, builder_boost_factor=100)
            assert produced == {"version": "deneb", "blinded": True, "block": block}
            assert "builder_boost_factor=100" in modern.hits[-1][2]
        # a phase0-only BN: v1, whose answer names no version
        phase0 = FakeBN()
        phase0.answer("GET", "/eth/v1/validator/blocks/7", {"data": block})
        await phase0.start()
        try:
            async with BeaconNodeClient([phase0.url]) as client:
                assert (await client.produce_block(7, "0xaa"))["version"] == "phase0"
        finally:
            await phase0.stop()

    with_bns(2, scenario)


def test_aggregate_attestation_v1_fallback_and_a_real_not_found() -> None:
    async def scenario(bns: list[FakeBN]) -> None:
        (bn,) = bns
        aggregate = {"aggregation_bits": "0x01", "data": ATT_DATA, "signature": "0x" + "cc" * 96}
        bn.answer("GET", "/eth/v1/validator/aggregate_attestation", {"data": aggregate})
        async with BeaconNodeClient([bn.url]) as client:
            assert await client.aggregate_attestation(5, "0x" + "22" * 32, 0) == ("", aggregate)
            assert "committee_index" not in bn.hits[-1][2]
            # the BN has no such aggregate: both versions say 404; the error is definitive
            bn.answer(
                "GET",
                "/eth/v1/validator/aggregate_attestation",
                {"code": 404, "message": "no aggregate"},
                404,
            )
            with pytest.raises(BNResponseError, match="404"):
                await client.aggregate_attestation(5, "0x" + "22" * 32, 0)

    with_bns(1, scenario)


def test_validators_post_then_get_in_chunks_and_resolve() -> None:
    pubkeys = [f"0x{i:096x}" for i in range(70)]

    def record(pubkey: str, index: int) -> dict[str, Any]:
        return {"index": str(index), "status": "active_ongoing", "validator": {"pubkey": pubkey}}

    async def get(request: web.Request) -> web.StreamResponse:
        ids = request.query.getall("id")
        return data([record(p, int(p, 16)) for p in ids])

    async def post(request: web.Request) -> web.StreamResponse:
        ids = (await request.json())["ids"]
        return data([record(p, int(p, 16)) for p in ids])

    async def scenario(bns: list[FakeBN]) -> None:
        old, modern = bns
        path = "/eth/v1/beacon/states/head/validators"
        old.route("GET", path, get)
        modern.route("POST", path, post)
        async with BeaconNodeClient([old.url]) as client:
            resolved = await client.resolve_validators(pubkeys)
            assert [(v.pubkey, v.index) for v in resolved] == [(p, i) for i, p in enumerate(pubkeys)]
            assert old.count("GET", path) == 3 and old.count("POST", path) == 1
        async with BeaconNodeClient([modern.url]) as client:
            assert len(await client.validators(pubkeys)) == 70
            assert modern.count("POST", path) == 1 and modern.count("GET", path) == 0
            assert await client.validators([]) == []

    with_bns(2, scenario)


def test_registrations_go_in_bodies_of_500_and_a_refusal_names_its_place_in_the_whole_list() -> None:
    path = "/eth/v1/validator/register_validator"
    registrations = [{"n": i} for i in range(1234)]
    refused: set[int] = set()
    bodies: list[list[int]] = []

    async def register(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        bodies.append([r["n"] for r in body])
        failures = [{"index": i, "message": "bad signature"} for i, r in enumerate(body) if r["n"] in refused]
        if failures:
            return web.json_response(
                {"code": 400, "message": "some failed", "failures": failures}, status=400
            )
        return web.Response(status=200)

    async def scenario(bns: list[FakeBN]) -> None:
        (bn,) = bns
        bn.route("POST", path, register)
        async with BeaconNodeClient([bn.url]) as client:
            answer = await client.submit(SubmissionKind.REGISTRATIONS, registrations)
            assert answer.status == 200
            assert bodies == [list(range(0, 500)), list(range(500, 1000)), list(range(1000, 1234))]
            bodies.clear()
            refused.update({777, 790})
            with pytest.raises(BNResponseError, match="some failed") as caught:
                await client.submit(SubmissionKind.REGISTRATIONS, registrations)
            assert [f["index"] for f in caught.value.body["failures"]] == [777, 790]
            assert len(bodies) == 2  # the refused body ends the submission
            bodies.clear()
            await client.submit(SubmissionKind.REGISTRATIONS, [])
            assert bodies == [[]]

    with_bns(1, scenario)


def test_duties() -> None:
    async def scenario(bns: list[FakeBN]) -> None:
        (bn,) = bns
        duty = {"pubkey": "0xaa", "validator_index": "3", "slot": "9"}
        bn.answer(
            "POST",
            "/eth/v1/validator/duties/attester/1",
            {"dependent_root": "0x01", "execution_optimistic": False, "data": [duty]},
        )
        bn.answer("GET", "/eth/v1/validator/duties/proposer/1", {"dependent_root": "0x02", "data": [duty]})
        bn.answer("POST", "/eth/v1/validator/duties/sync/1", {"execution_optimistic": True, "data": []})
        async with BeaconNodeClient([bn.url]) as client:
            attester = await client.attester_duties(1, [3, 4])
            assert attester.duties == (duty,) and attester.dependent_root == "0x01"
            assert json.loads(bn.hits[-1][3]) == ["3", "4"]
            assert (await client.proposer_duties(1)).dependent_root == "0x02"
            assert (await client.sync_duties(1, [3])).execution_optimistic

    with_bns(1, scenario)


def test_submissions_versions_headers_and_every_primary() -> None:
    async def accept(request: web.Request) -> web.StreamResponse:
        return web.Response(status=200)

    async def scenario(bns: list[FakeBN]) -> None:
        first, second = bns
        for bn in bns:
            for path in (
                "/eth/v1/beacon/pool/attestations",
                "/eth/v2/beacon/pool/attestations",
                "/eth/v2/beacon/blocks",
                "/eth/v1/beacon/pool/sync_committees",
                "/eth/v1/validator/contribution_and_proofs",
                "/eth/v2/validator/aggregate_and_proofs",
            ):
                bn.route("POST", path, accept)
        second.delay = 0.3  # accepts later: still receives every submission
        async with BeaconNodeClient([first.url, second.url]) as client:
            assert (await client.submit(SubmissionKind.ATTESTATIONS, [{"a": 1}], "deneb")).url == first.url
            await client.submit(SubmissionKind.ATTESTATIONS, [{"a": 2}], "electra")
            await client.submit(SubmissionKind.BLOCK, {"message": {"body": {}}}, "deneb")
            await client.submit(SubmissionKind.SYNC_COMMITTEE_MESSAGES, [{"s": 1}])
            await client.submit(SubmissionKind.CONTRIBUTION_AND_PROOFS, [{"c": 1}])
            await client.submit(SubmissionKind.AGGREGATE_AND_PROOFS, [{"g": 1}], "fulu")
            await asyncio.sleep(0.6)
        for bn in bns:
            posted = [
                (path, json.loads(body), headers.get("Eth-Consensus-Version"))
                for _, path, _, body, headers in bn.hits
            ]
            assert posted == [
                ("/eth/v1/beacon/pool/attestations", [{"a": 1}], None),
                ("/eth/v2/beacon/pool/attestations", [{"a": 2}], "electra"),
                ("/eth/v2/beacon/blocks", {"message": {"body": {}}}, "deneb"),
                ("/eth/v1/beacon/pool/sync_committees", [{"s": 1}], None),
                ("/eth/v1/validator/contribution_and_proofs", [{"c": 1}], None),
                ("/eth/v2/validator/aggregate_and_proofs", [{"g": 1}], "fulu"),
            ]

    with_bns(2, scenario)


def test_block_v1_fallback_and_a_refused_submission() -> None:
    async def scenario(bns: list[FakeBN]) -> None:
        (bn,) = bns

        async def accept(request: web.Request) -> web.StreamResponse:
            return web.Response(status=200)

        bn.route("POST", "/eth/v1/beacon/blocks", accept)
        bn.answer(
            "POST",
            "/eth/v1/beacon/pool/attestations",
            {"code": 400, "message": "invalid signature", "failures": []},
            400,
        )
        async with BeaconNodeClient([bn.url]) as client:
            assert (await client.submit_block({"message": {}}, "altair")).variant == "v1"
            with pytest.raises(BNResponseError, match="invalid signature"):
                await client.submit_attestations([{}], "altair")

    with_bns(1, scenario)
    assert (
        is_electra_or_later("electra") and is_electra_or_later("gloas") and not is_electra_or_later("deneb")
    )
    assert not is_electra_or_later("")


def test_check_chain() -> None:
    async def scenario(bns: list[FakeBN]) -> None:
        first, second = bns
        down = closed_port_url()
        async with BeaconNodeClient([first.url, down], [second.url]) as client:
            info = await client.check_chain(FORK, b"\0" * 32)  # not pinned: adopted
            assert info.genesis_validators_root == GVR and info.genesis_time == 1700000000
            assert info.spec["SECONDS_PER_SLOT"] == "6" and info.unreachable == (down,)
            assert (await client.check_chain(FORK, GVR)).genesis_fork_version == FORK
            with pytest.raises(
                ChainMismatch,
                match=r"is on another chain: genesis fork version 0x10000038, the cluster lock says 0x00000000$",
            ):
                await client.check_chain(b"\0" * 4, GVR)
            with pytest.raises(ChainMismatch, match="genesis validators root 0x4b4b"):
                await client.check_chain(FORK, b"\1" * 32)
            second.answer("GET", "/eth/v1/config/spec", {"data": {**SPEC, "SECONDS_PER_SLOT": "12"}})
            with pytest.raises(
                ChainMismatch, match=r"disagree on SECONDS_PER_SLOT \('6' vs '12'\): not one chain"
            ):
                await client.check_chain(FORK, GVR)
            second.answer(
                "GET",
                "/eth/v1/beacon/genesis",
                {"data": {**GENESIS, "genesis_validators_root": "0x" + "00" * 32}},
            )
            second.answer("GET", "/eth/v1/config/spec", {"data": SPEC})
            with pytest.raises(ChainMismatch, match="disagree on genesis_validators_root"):
                await client.check_chain(FORK, b"\0" * 32)
            second.answer("GET", "/eth/v1/beacon/genesis", {"data": {"genesis_time": "x"}})
            with pytest.raises(ChainMismatch, match="unreadable genesis"):
                await client.check_chain(FORK, GVR)
        async with BeaconNodeClient([down]) as client:
            with pytest.raises(BNUnavailable, match="no beacon node answered genesis and spec"):
                await client.check_chain(FORK, GVR)

    with_bns(2, scenario)


def test_a_submission_the_bn_already_has_is_delivered_not_refused() -> None:
    """Every co-validator submits the combined message: the BN that heard it first from another says
    so (Lodestar 1.5.1: 500 ..._ALREADY_KNOWN / PublishError.Duplicate). A mix with another error, or a
    GET, is still an error."""

    async def scenario(bns: list[FakeBN]) -> None:
        (bn,) = bns
        known = {"code": 500, "message": "ATTESTATION_ERROR_ATTESTATION_ALREADY_KNOWN"}
        bn.answer("POST", "/eth/v1/beacon/pool/attestations", known, 500)
        bn.answer("POST", "/eth/v1/beacon/blocks", {"code": 500, "message": "PublishError.Duplicate"}, 500)
        mixed = {"code": 400, "message": "some failed", "failures": [
            {"index": 0, "message": "SYNC_COMMITTEE_ERROR_MESSAGE_ALREADY_KNOWN"},
            {"index": 1, "message": "invalid signature"},
        ]}  # fmt: skip
        bn.answer("POST", "/eth/v1/beacon/pool/sync_committees", mixed, 400)
        async with BeaconNodeClient([bn.url]) as client:
            assert (await client.submit_attestations([{}], "altair")).status == 200
            assert (await client.submit_block({"message": {}}, "altair")).status == 200
            with pytest.raises(BNResponseError, match="some failed"):
                await client.submit_sync_committee_messages([{}, {}])

    with_bns(1, scenario)


def test_check_chain_accepts_the_fork_active_at_genesis() -> None:
    """Lodestar 1.5.1 with altair at epoch 0 answers genesis_fork_version = the altair version; its
    spec's GENESIS_FORK_VERSION is the lock's. Any other version is still another chain."""

    async def scenario(bns: list[FakeBN]) -> None:
        (bn,) = bns
        bn.answer(
            "GET", "/eth/v1/beacon/genesis", {"data": {**GENESIS, "genesis_fork_version": "0x01000001"}}
        )
        bn.answer("GET", "/eth/v1/config/spec", {"data": {**SPEC, "GENESIS_FORK_VERSION": "0x00000001"}})
        async with BeaconNodeClient([bn.url]) as client:
            info = await client.check_chain(bytes.fromhex("00000001"), GVR)
            assert info.genesis_fork_version == bytes.fromhex("01000001")
            with pytest.raises(
                ChainMismatch, match="genesis fork version 0x01000001, the cluster lock says 0x00000002"
            ):
                await client.check_chain(bytes.fromhex("00000002"), GVR)

    with_bns(1, scenario)


def test_syncing_marks_a_bn_and_node_version() -> None:
    async def scenario(bns: list[FakeBN]) -> None:
        first, second = bns
        second.answer("GET", "/eth/v1/node/syncing", {"data": {"is_syncing": True, "head_slot": "1"}})
        async with BeaconNodeClient([first.url, second.url]) as client:
            assert await client.check_syncing() == {first.url: False, second.url: True}
            assert client.candidates() == [first.url, second.url]
            assert not client.healthy(second.url)
            assert await client.node_version() == "FakeBN/v1"

    with_bns(2, scenario)


def test_server_sent_events_with_late_headers() -> None:
    async def events(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(1.0)  # a BN that sends its headers only with the first event
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b': comment\n\nevent: head\ndata: {"slot": "1"}\n\n')
        await asyncio.sleep(0.2)
        await response.write(b'event: head\ndata: {"slot":\ndata: "2"}\n\nevent: bad\ndata: {\n\n')
        return response

    async def scenario(bns: list[FakeBN]) -> None:
        (bn,) = bns
        bn.route("GET", "/eth/v1/events", events)
        async with BeaconNodeClient([closed_port_url(), bn.url], timeouts={"default": 0.5}) as client:
            received = [item async for item in client.events(["head"])]
            assert received == [("head", {"slot": "1"}), ("head", {"slot": "2"})]
            assert "topics=head" in bn.hits[-1][2]

    with_bns(1, scenario)


def test_bn_credentials_and_api_keys_never_appear_in_errors_status_or_metrics() -> None:
    """Issue 16 (Low): BN URLs may carry credentials or an API key (in the userinfo or the path);
    they appeared verbatim in the status, metrics labels, 502 bodies and logs. A BN is now known by
    its redacted name everywhere; the real URL is used only to connect."""
    from covalidator.runtime.bn_client import BNUnavailable, redact

    secrets = ("op3rator", "pa55-w0rd", "key-7f3a9c")
    dead = closed_port_url().replace("http://", f"http://{secrets[0]}:{secrets[1]}@") + f"/v2/{secrets[2]}"
    seen: list[str] = []

    async def scenario(bns: list[FakeBN]) -> None:
        live = bns[0].url.replace("http://", f"http://{secrets[0]}:{secrets[1]}@")
        client = BeaconNodeClient([dead], [live])
        client.observer = lambda url, endpoint, seconds, error: seen.append(f"{url} {error}")
        try:
            assert await client.genesis()  # through the live one: its credentials are used to connect
            assert bns[0].hits and bns[0].hits[-1][4].get("Authorization", "").startswith("Basic ")
            solo = BeaconNodeClient([dead])
            with pytest.raises(BNUnavailable) as failure:
                await solo.genesis()
            await solo.close()
            texts = [
                str(failure.value),
                json.dumps(client.stats()),
                *seen,
                *client.primaries,
                *client.fallbacks,
            ]
            for text in texts:
                for secret in secrets:
                    assert secret not in text, (secret, text)
            assert client.primaries == (redact(dead),) and redact(dead).endswith("/...")
        finally:
            await client.close()

    with_bns(1, scenario)
    assert redact("https://bn.example:5052") == "https://bn.example:5052"
    assert redact("http://u:p@[::1]:5052/x") == "http://[::1]:5052/..."


def test_a_bn_that_moves_to_another_chain_mid_run_is_set_aside_until_it_comes_back() -> None:
    """Issue 16 (BN faults): a BN replaced or resynced onto another network keeps answering, with
    another chain's data. The periodic genesis check sets it aside: calls and the proxy go to the BN
    still on the chain, the status names it, and it is asked again once it answers this chain's genesis."""
    from covalidator.runtime.bn_client import BNUnavailable
    from covalidator.runtime.monitoring import HealthInputs, not_ready_reasons

    async def scenario(bns: list[FakeBN]) -> None:
        client = BeaconNodeClient([bns[0].url], [bns[1].url])
        try:
            info = await client.check_chain(bytes.fromhex("10000038"), bytes.fromhex("4b" * 32))
            assert await client.recheck_chain(info) == {}
            other = {**GENESIS, "genesis_validators_root": "0x" + "99" * 32}
            bns[0].answer("GET", "/eth/v1/beacon/genesis", {"data": other})  # the primary moved
            moved = await client.recheck_chain(info)
            primary = client.primaries[0]
            assert list(moved) == [primary] and "not this chain's" in moved[primary]
            assert client.candidates() == [client.fallbacks[0]]  # never asked, not even last
            before = len(bns[0].hits)
            assert await client.genesis()  # answered by the fallback
            assert len(bns[0].hits) == before
            assert client.stats()[primary]["wrong_chain"]

            def reasons(wrong: tuple[str, ...]) -> list[str]:
                inputs = HealthInputs({}, 4, 3, {}, 0, 10**9, bn_wrong_chain=wrong, bn_count=2)
                return [r["reason"] for r in not_ready_reasons(inputs)]

            assert reasons((primary,)) == []  # one BN left on the chain: still ready
            assert reasons((primary, client.fallbacks[0])) == ["bn_wrong_chain"]
            bns[1].answer("GET", "/eth/v1/beacon/genesis", {"data": {**GENESIS, "genesis_time": "1"}})
            await client.recheck_chain(info)
            with pytest.raises(BNUnavailable):  # no BN left on the chain: nothing is asked at all
                await client.genesis()
            bns[0].answer("GET", "/eth/v1/beacon/genesis", {"data": GENESIS})  # back
            assert list(await client.recheck_chain(info)) == [client.fallbacks[0]]
            assert client.candidates()[0] == primary
        finally:
            await client.close()

    with_bns(2, scenario)
