"""The reverse proxy and the VC API's pubkey mapping, on 127.0.0.1 against fake beacon nodes: streamed
bodies both ways, the event stream relayed event by event, hop-by-hop headers, failover, and the
share <-> group pubkey rewrites of the validators and duties endpoints."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from covalidator.model.clock import SlotClock
from covalidator.model.cluster.config import ChainConfig, NodeConfig, ValidatorKeys
from covalidator.model.eth.signing import ForkSchedule
from covalidator.runtime import proxy
from covalidator.runtime.bn_client import BeaconNodeClient
from covalidator.runtime.proxy import ReverseProxy, forward_headers
from covalidator.runtime.validator_api import ValidatorAPI
from tests.helpers.aio import listening_socket, port_of, run
from tests.helpers.fake_bn import SPEC, FakeBN

GROUP = ["0x" + f"{i:02x}" * 48 for i in (0xA1, 0xA2)]
SHARES = [tuple("0x" + f"{i + 16 * s:02x}" * 48 for s in range(1, 5)) for i in (0x01, 0x02)]


def config() -> NodeConfig:
    chain = ChainConfig(SlotClock(0, 6000, 8), ForkSchedule.from_spec_config(SPEC, b"\x4b" * 32))
    validators = tuple(ValidatorKeys(g, s) for g, s in zip(GROUP, SHARES, strict=True))
    return NodeConfig(share_index=2, threshold=3, validators=validators, chain=chain)


class NoRunner:
    """The proxied endpoints never reach the model."""

    def clock(self) -> int:
        return 0


def closed_url() -> str:
    sock = listening_socket()
    port = port_of(sock)
    sock.close()
    return f"http://127.0.0.1:{port}"


Scenario = Callable[[list[FakeBN], str, aiohttp.ClientSession], Awaitable[None]]


def with_proxy(scenario: Scenario, bns: int = 1, dead_first: bool = False, timeout: float = 20.0) -> None:
    """`bns` fake BNs (a dead primary first if `dead_first`), a ValidatorAPI whose forward is the proxy."""

    async def main() -> None:
        fakes = [await FakeBN().standard().start() for _ in range(bns)]
        urls = [b.url for b in fakes]
        primaries = [closed_url(), urls[0]] if dead_first else urls[:1]
        client = BeaconNodeClient(primaries, urls[1:])
        proxy = ReverseProxy(client)
        api = ValidatorAPI(NoRunner(), config(), proxy.forward)
        runner = web.AppRunner(api.app(), access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        sock = listening_socket()
        await web.SockSite(runner, sock).start()
        try:
            async with aiohttp.ClientSession(auto_decompress=False) as session:
                await scenario(fakes, f"http://127.0.0.1:{port_of(sock)}", session)
        finally:
            await runner.cleanup()
            await proxy.close()
            await client.close()
            for fake in fakes:
                await fake.stop()

    run(main(), timeout)


def test_bodies_stream_both_ways_with_status_headers_and_query_unchanged() -> None:
    big = bytes(range(256)) * 8192  # 2 MiB: more than the proxy buffers, so streamed upstream

    async def echo(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        response = web.StreamResponse(
            status=202, headers={"X-Echo-Query": request.raw_path.partition("?")[2]}
        )
        response.enable_chunked_encoding()
        await response.prepare(request)
        for i in range(0, len(body), 65536):
            await response.write(body[i : i + 65536])
        await response.write_eof()
        return response

    async def scenario(bns: list[FakeBN], url: str, session: aiohttp.ClientSession) -> None:
        bns[0].route("POST", "/eth/v1/debug/echo", echo)

        async def chunks() -> Any:
            for i in range(0, len(big), 100_000):
                yield big[i : i + 100_000]

        async with session.post(
            URL(f"{url}/eth/v1/debug/echo?a=1&b=x%2Cy", encoded=True),
            data=chunks(),
            headers={"X-Custom": "kept"},
        ) as response:
            assert response.status == 202
            assert response.headers["X-Echo-Query"] == "a=1&b=x%2Cy"
            assert await response.read() == big
        method, path, _, body, headers = bns[0].hits[-1]
        assert (method, path, body) == ("POST", "/eth/v1/debug/echo", big)
        assert headers["X-Custom"] == "kept"

    with_proxy(scenario)


def test_hop_by_hop_headers_are_not_forwarded() -> None:
    headers = forward_headers(
        CIMultiDict(
            {
                "Connection": "keep-alive, X-Private",
                "Keep-Alive": "timeout=5",
                "X-Private": "secret",
                "Transfer-Encoding": "chunked",
                "Upgrade": "h2c",
                "Host": "vc-side",
                "Accept": "application/json",
                "Eth-Consensus-Version": "deneb",
            }
        )
    )
    assert sorted(headers) == ["Accept", "Eth-Consensus-Version"]

    async def scenario(bns: list[FakeBN], url: str, session: aiohttp.ClientSession) -> None:
        async with session.get(
            f"{url}/eth/v1/node/syncing",
            headers={"Connection": "X-Private", "X-Private": "1", "Te": "trailers"},
        ) as response:
            assert response.status == 200
            assert (await response.json())["data"]["is_syncing"] is False
        seen = {k.lower() for k in bns[0].hits[-1][4]}
        assert "x-private" not in seen and "te" not in seen

    with_proxy(scenario)


def test_the_event_stream_is_relayed_event_by_event_and_stays_open() -> None:
    release = asyncio.Event()

    async def events(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'event: head\ndata: {"slot":"1"}\n\n')
        await release.wait()  # the second event only after the client saw the first
        await response.write(b'event: head\ndata: {"slot":"2"}\n\n')
        await asyncio.sleep(30)  # a BN keeps the stream open
        return response

    async def scenario(bns: list[FakeBN], url: str, session: aiohttp.ClientSession) -> None:
        bns[0].route("GET", "/eth/v1/events", events)
        async with session.get(
            f"{url}/eth/v1/events?topics=head", headers={"Accept": "text/event-stream"}
        ) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/event-stream")
            first = await asyncio.wait_for(response.content.readuntil(b"\n\n"), 5)
            assert b'"slot":"1"' in first
            release.set()
            second = await asyncio.wait_for(response.content.readuntil(b"\n\n"), 5)
            assert b'"slot":"2"' in second
            with_timeout_open = asyncio.wait_for(response.content.read(1), 0.5)
            try:
                await with_timeout_open
                raise AssertionError("the stream ended; it should stay open")
            except TimeoutError:
                pass
        assert bns[0].hits[-1][2] == "topics=head"

    with_proxy(scenario)


def test_a_dead_primary_and_a_5xx_are_skipped_and_no_bn_is_a_502() -> None:
    async def scenario(bns: list[FakeBN], url: str, session: aiohttp.ClientSession) -> None:
        bns[0].answer("GET", "/eth/v1/node/peer_count", {"data": {"connected": "1"}})
        bns[1].answer("GET", "/eth/v1/node/peer_count", {"data": {"connected": "2"}})
        async with session.get(f"{url}/eth/v1/node/peer_count") as response:  # primary dead: the live one
            assert (await response.json())["data"]["connected"] == "1"
        bns[0].behaviour = "error"
        async with session.get(f"{url}/eth/v1/node/peer_count") as response:  # 500: the fallback answers
            assert response.status == 200
            assert (await response.json())["data"]["connected"] == "2"
        bns[1].behaviour = "syncing"
        async with session.get(f"{url}/eth/v1/node/peer_count") as response:  # no good one: the first 5xx
            assert response.status == 500
            assert (await response.json())["message"] == "internal error"
        bns[0].behaviour = bns[1].behaviour = "ok"
        async with session.get(f"{url}/eth/v1/node/unknown") as response:  # a 4xx is the answer
            assert response.status == 404
        assert bns[0].count("GET", "/eth/v1/node/unknown") == 1
        assert bns[1].count("GET", "/eth/v1/node/unknown") == 0
        for fake in bns:
            await fake.stop()
        async with session.get(f"{url}/eth/v1/node/peer_count") as response:
            assert response.status == 502
            assert "no beacon node answered" in (await response.json())["message"]

    with_proxy(scenario, bns=2, dead_first=True)


def test_validators_and_duties_map_share_pubkeys_to_group_pubkeys_and_back() -> None:
    share, other_share = SHARES[0][1], SHARES[1][1]  # node share index 2

    def record(pubkey: str, index: int) -> dict[str, Any]:
        return {"index": str(index), "status": "active_ongoing", "validator": {"pubkey": pubkey}}

    async def validators(request: web.Request) -> web.StreamResponse:
        if request.method == "POST":
            ids = (await request.json())["ids"]
        else:
            ids = request.query.get("id", "").split(",")
        known = {GROUP[0]: 7, GROUP[1]: 8}
        body = {"data": [record(i, known[i]) for i in ids if i in known], "finalized": False}
        return web.json_response(body)

    async def one(request: web.Request) -> web.StreamResponse:
        return web.json_response({"data": record(GROUP[0], 7)})

    async def duties(request: web.Request) -> web.StreamResponse:
        indices = await request.json()
        data = [{"pubkey": GROUP[0], "validator_index": i, "slot": "9"} for i in indices]
        return web.json_response({"dependent_root": "0x" + "00" * 32, "data": data})

    async def scenario(bns: list[FakeBN], url: str, session: aiohttp.ClientSession) -> None:
        path = "/eth/v1/beacon/states/head/validators"
        bns[0].route("POST", path, validators)
        bns[0].route("GET", path, validators)
        bns[0].route("GET", f"{path}/{GROUP[0]}", one)
        bns[0].route("POST", "/eth/v1/validator/duties/attester/3", duties)

        async with session.post(f"{url}{path}", json={"ids": [share, other_share, "12"]}) as response:
            body = await response.json()
        assert json.loads(bns[0].hits[-1][3])["ids"] == [GROUP[0], GROUP[1], "12"]
        assert [r["validator"]["pubkey"] for r in body["data"]] == [share, other_share]
        async with session.get(f"{url}{path}?id={share},{other_share.upper()[2:]}") as response:
            body = await response.json()
        assert bns[0].hits[-1][2] == f"id={GROUP[0]},{other_share.upper()[2:]}"  # unknown form: unchanged
        assert [r["validator"]["pubkey"] for r in body["data"]] == [share]
        async with session.get(f"{url}{path}/{share}") as response:
            body = await response.json()
        assert bns[0].hits[-1][1] == f"{path}/{GROUP[0]}"
        assert body["data"]["validator"]["pubkey"] == share
        async with session.post(f"{url}/eth/v1/validator/duties/attester/3", json=["7"]) as response:
            body = await response.json()
        assert body["data"] == [{"pubkey": share, "validator_index": "7", "slot": "9"}]
        assert body["dependent_root"] == "0x" + "00" * 32
        json_type = {"Content-Type": "application/json"}
        async with session.post(f"{url}{path}", data=b"{not json", headers=json_type) as response:
            assert response.status == 400  # a malformed body to rewrite: a clear 400, no crash
        started = time.monotonic()
        async with session.get(f"{url}/eth/v1/node/version") as response:  # intercepted
            assert (await response.json())["data"]["version"].startswith("covalidator/")
        assert time.monotonic() - started < 5

    with_proxy(scenario)


def test_a_large_json_answer_is_rewritten_whole_and_one_over_the_limit_passes_unchanged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    share = SHARES[0][1]
    duties = [{"pubkey": GROUP[0], "validator_index": str(i), "slot": str(i)} for i in range(30_000)]

    async def many(request: web.Request) -> web.StreamResponse:
        body = json.dumps({"dependent_root": "0x" + "00" * 32, "data": duties}).encode()
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for i in range(0, len(body), 16_384):  # many small chunks: the proxy must read them all
            await response.write(body[i : i + 16_384])
        await response.write_eof()
        return response

    async def scenario(bns: list[FakeBN], url: str, session: aiohttp.ClientSession) -> None:
        bns[0].route("POST", "/eth/v1/validator/duties/attester/4", many)
        async with session.post(f"{url}/eth/v1/validator/duties/attester/4", json=["1"]) as response:
            body = await response.json()
        assert len(body["data"]) == 30_000 and {d["pubkey"] for d in body["data"]} == {share}
        monkeypatch.setattr(proxy, "REWRITE_LIMIT", 100_000)
        async with session.post(f"{url}/eth/v1/validator/duties/attester/4", json=["1"]) as response:
            body = await response.json()
        assert body["data"] == duties  # complete, unmapped, rather than cut or refused

    with_proxy(scenario)
