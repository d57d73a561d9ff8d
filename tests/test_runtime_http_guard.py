"""Who may talk to the VC-facing APIs (issue 16, Medium: a local process or a web page changing state
through the VC API), on 127.0.0.1 against a fake beacon node: each test performs the attack and shows
it stopped before the model or the BN sees anything, and the real VC's kind of request still passing.
Also the proxy's own bounded pool and upstream URLs built from parts (Low findings)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from covalidator.runtime.bn_client import BeaconNodeClient
from covalidator.runtime.http_guard import HttpGuard, host_name
from covalidator.runtime.proxy import ReverseProxy
from covalidator.runtime.signer_api import SignerAPI
from covalidator.runtime.validator_api import ValidatorAPI
from tests.helpers.aio import listening_socket, port_of, run
from tests.helpers.fake_bn import FakeBN
from tests.test_runtime_proxy import config

TOKEN = "s3cret-token"


class CountingRunner:
    """Counts what reaches the model; answers nothing (the guard must stop requests before this)."""

    def __init__(self) -> None:
        self.asked = 0

    def clock(self) -> int:
        return 0

    async def ask(self, make: Any, timeout_s: float) -> None:
        self.asked += 1
        return None


Scenario = Callable[[FakeBN, str, CountingRunner, ReverseProxy], Awaitable[None]]


def with_api(scenario: Scenario, guard: HttpGuard | None = None, signer: bool = False) -> None:
    async def main() -> None:
        bn = await FakeBN().standard().start()
        client = BeaconNodeClient([bn.url])
        proxy = ReverseProxy(client, event_streams=2)
        model = CountingRunner()
        if signer:
            app = SignerAPI(model, config(), guard).app()  # type: ignore[arg-type]
        else:
            app = ValidatorAPI(model, config(), proxy.forward, guard=guard).app()
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        sock = listening_socket()
        await web.SockSite(runner, sock).start()
        try:
            await scenario(bn, f"http://127.0.0.1:{port_of(sock)}", model, proxy)
        finally:
            await runner.cleanup()
            await proxy.close()
            await client.close()
            await bn.stop()

    run(main(), 30.0)


ATTESTATIONS = "/eth/v1/beacon/pool/attestations"
JSON = {"Content-Type": "application/json"}


def test_a_web_page_cannot_post_to_the_node_nor_read_through_it() -> None:
    async def scenario(bn: FakeBN, url: str, model: CountingRunner, proxy: ReverseProxy) -> None:
        async with aiohttp.ClientSession() as s:
            # a cross-origin POST (a form, or fetch with text/plain: no CORS preflight in a browser)
            origin = {"Origin": "https://evil.example", **JSON}
            async with s.post(url + ATTESTATIONS, data=b"[]", headers=origin) as r:
                assert r.status == 403 and "Origin" in (await r.json())["message"]
            async with s.get(url + "/eth/v1/node/version", headers={"Origin": "https://evil.example"}) as r:
                assert r.status == 403
            # DNS rebinding: same origin (no Origin header), but the page's own name as Host
            async with s.get(url + "/eth/v1/beacon/genesis", headers={"Host": "evil.example:3600"}) as r:
                assert r.status == 403 and "evil.example" in (await r.json())["message"]
            # a body a browser may send without a preflight is never read as JSON
            async with s.post(url + ATTESTATIONS, data=b"[]", headers={"Content-Type": "text/plain"}) as r:
                assert r.status == 415
            assert model.asked == 0 and bn.hits == []
            # what a VC sends passes: an IP Host, JSON, no Origin
            async with s.post(url + ATTESTATIONS, data=b"[]", headers=JSON) as r:
                assert r.status == 503  # reached the (silent) model
            async with s.get(url + "/eth/v1/beacon/genesis") as r:
                assert r.status != 403
            assert model.asked == 1 and len(bn.hits) == 1

    with_api(scenario)


def test_allowed_vhosts_and_localhost_pass_others_do_not() -> None:
    guard = HttpGuard.of(["covalidator-1"])

    async def scenario(bn: FakeBN, url: str, model: CountingRunner, proxy: ReverseProxy) -> None:
        async with aiohttp.ClientSession() as s:
            for host, status in (
                ("covalidator-1:3600", 404),
                ("localhost", 404),
                ("[::1]:3600", 404),
                ("x", 403),
            ):
                async with s.get(url + "/eth/v1/unknown", headers={"Host": host}) as r:
                    assert r.status == status, host

    with_api(scenario, guard)
    assert [host_name(h) for h in ("a:1", "[::1]:2", "[::1]", "b", "1.2.3.4:5")] == [
        "a",
        "::1",
        "::1",
        "b",
        "1.2.3.4",
    ]


def test_with_a_token_every_request_must_carry_it() -> None:
    guard = HttpGuard.of((), TOKEN)

    async def scenario(bn: FakeBN, url: str, model: CountingRunner, proxy: ReverseProxy) -> None:
        basic = "Basic " + base64.b64encode(f"vc:{TOKEN}".encode()).decode()
        wrong = "Basic " + base64.b64encode(b"vc:guess").decode()
        async with aiohttp.ClientSession() as s:
            for auth in ("", "Bearer guess", wrong, f"Bearer {TOKEN}x", "Bearer"):
                async with s.post(
                    url + ATTESTATIONS, data=b"[]", headers={"Authorization": auth, **JSON}
                ) as r:
                    assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Bearer"), auth
            assert model.asked == 0
            for auth in (f"Bearer {TOKEN}", basic):
                async with s.post(
                    url + ATTESTATIONS, data=b"[]", headers={"Authorization": auth, **JSON}
                ) as r:
                    assert r.status == 503
            assert model.asked == 2
        assert guard.refused["token"] == 5

    with_api(scenario, guard)


def test_the_signer_api_has_the_same_guard() -> None:
    guard = HttpGuard.of((), TOKEN)

    async def scenario(bn: FakeBN, url: str, model: CountingRunner, proxy: ReverseProxy) -> None:
        sign = url + "/api/v1/eth2/sign/0x" + "a1" * 48
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession() as s:
            async with s.post(sign, data=b"{}", headers=JSON) as r:
                assert r.status == 401
            async with s.post(sign, data=b"{}", headers={**bearer, "Content-Type": "text/plain"}) as r:
                assert r.status == 415
            async with s.post(sign, data=b"{}", headers={**bearer, **JSON, "Origin": "http://x"}) as r:
                assert r.status == 403
            assert model.asked == 0
            async with s.post(sign, data=b"{}", headers={**bearer, **JSON}) as r:
                assert r.status == 503 and model.asked == 1

    with_api(scenario, guard, signer=True)


def test_the_proxy_has_its_own_pool_and_caps_event_streams() -> None:
    async def events(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b": open\n\n")
        await asyncio.sleep(30)
        return response

    async def scenario(bn: FakeBN, url: str, model: CountingRunner, proxy: ReverseProxy) -> None:
        bn.route("GET", "/eth/v1/events", events)
        assert proxy.session is not proxy.bn.session  # passthrough never uses the node's own pool
        async with aiohttp.ClientSession() as s:
            held = [await s.get(url + "/eth/v1/events?topics=head") for _ in range(2)]
            for response in held:
                assert response.status == 200 and await response.content.readline() == b": open\n"
            async with s.get(url + "/eth/v1/events?topics=head") as r:
                assert r.status == 503 and "event streams" in (await r.json())["message"]
            async with s.get(url + "/eth/v1/beacon/genesis") as r:  # other traffic still flows
                assert r.status == 200
            for response in held:
                response.close()
        assert proxy.refused_streams == 1

    with_api(scenario)


def test_an_absolute_form_target_cannot_send_the_proxy_elsewhere() -> None:
    async def scenario(bn: FakeBN, url: str, model: CountingRunner, proxy: ReverseProxy) -> None:
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"GET http://evil.invalid:1/eth/v1/beacon/genesis?x=%2541 HTTP/1.1\r\n"
            b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        await writer.drain()
        head = await reader.readline()
        writer.close()
        assert head.startswith(b"HTTP/1.1 200"), head
        [(method, path, query, _, _)] = bn.hits
        # the fake BN records the query decoded once: '%41' means the BN got '%2541', as sent
        assert (method, path, query) == ("GET", "/eth/v1/beacon/genesis", "x=%41")

    with_api(scenario)


def test_validator_ids_are_decoded_once_mapped_and_encoded_again() -> None:
    from tests.test_runtime_proxy import GROUP, SHARES

    share = SHARES[0][1]  # this node (share index 2) names validator 0 by this share pubkey

    async def scenario(bn: FakeBN, url: str, model: CountingRunner, proxy: ReverseProxy) -> None:
        path = "/eth/v1/beacon/states/head/validators"
        # '%252C' is an encoded '%2C': one id, never split at a comma decoded twice
        query = f"id={share}%252C1,{share}"
        async with aiohttp.ClientSession() as s, s.get(url + f"{path}?{query}") as r:
            assert r.status == 404  # the fake BN has no such route; what it was asked is the point
        [(_, _, asked, _, _)] = bn.hits
        assert asked == f"id={share}%2C1,{GROUP[0]}"  # (decoded once by the fake BN's record)

    with_api(scenario)
