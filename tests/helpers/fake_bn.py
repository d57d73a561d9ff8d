"""A scriptable fake beacon node on 127.0.0.1 for the runtime's BN client and proxy tests.

Every request is recorded (`hits`); a handler per (method, path) answers, or a default 404 in the
style of old fastify-based BNs (Lodestar 1.5.1: {"statusCode": 404, "error": "Not Found", "message":
"Route GET:/... not found"}). `behaviour` switches the whole node to "syncing" (503), "error" (500) or
"slow" (sleep before answering).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

GENESIS = {
    "genesis_time": "1700000000",
    "genesis_validators_root": "0x" + "4b" * 32,
    "genesis_fork_version": "0x10000038",
}
SPEC = {
    "SECONDS_PER_SLOT": "6",
    "SLOTS_PER_EPOCH": "8",
    "GENESIS_FORK_VERSION": "0x10000038",
    "ALTAIR_FORK_VERSION": "0x20000038",
    "ALTAIR_FORK_EPOCH": "0",
    "CONFIG_NAME": "dev",
}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(body).encode(), status=status, content_type="application/json", headers=headers
    )


def data(value: Any, **extra: Any) -> web.Response:
    return json_response({"data": value, **extra})


@dataclass
class FakeBN:
    handlers: dict[tuple[str, str], Handler] = field(default_factory=dict)
    hits: list[tuple[str, str, str, bytes, dict[str, str]]] = field(default_factory=list)
    behaviour: str = "ok"
    delay: float = 0.0
    runner: web.AppRunner | None = None
    port: int = 0

    def route(self, method: str, path: str, handler: Handler) -> None:
        self.handlers[(method, path)] = handler

    def answer(
        self, method: str, path: str, body: Any, status: int = 200, headers: dict[str, str] | None = None
    ) -> None:
        async def handler(request: web.Request) -> web.StreamResponse:
            return json_response(body, status, headers)

        self.route(method, path, handler)

    def standard(self) -> FakeBN:
        self.answer("GET", "/eth/v1/beacon/genesis", {"data": GENESIS})
        self.answer("GET", "/eth/v1/config/spec", {"data": SPEC})
        self.answer("GET", "/eth/v1/node/version", {"data": {"version": "FakeBN/v1"}})
        self.answer(
            "GET",
            "/eth/v1/node/syncing",
            {"data": {"is_syncing": False, "head_slot": "10", "sync_distance": "0"}},
        )
        return self

    def count(self, method: str, path: str) -> int:
        return sum(1 for m, p, _, _, _ in self.hits if (m, p) == (method, path))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.hits.append((request.method, request.path, request.query_string, body, dict(request.headers)))
        if self.delay or self.behaviour == "slow":
            await asyncio.sleep(self.delay or 30)
        if self.behaviour == "syncing":
            return json_response({"code": 503, "message": "Beacon node is currently syncing"}, 503)
        if self.behaviour == "error":
            return json_response({"code": 500, "message": "internal error"}, 500)
        if self.behaviour == "malformed":  # a 200 whose body is not JSON (a broken BN or proxy)
            return web.Response(status=200, text='{"data": {"slot": "1"', content_type="application/json")
        handler = self.handlers.get((request.method, request.path))
        if handler is None:
            message = f"Route {request.method}:{request.path} not found"
            return json_response({"message": message, "error": "Not Found", "statusCode": 404}, 404)
        return await handler(request)

    async def start(self, port: int = 0) -> FakeBN:
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
