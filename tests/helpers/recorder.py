"""A recording HTTP proxy for tests: sits between a VC and a node, forwards every request unchanged
(or rewritten by `rewrite`), and keeps each exchange (method, path, query, request body and headers,
status, response body and headers) for checks against the Beacon-API spec afterwards."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from tests.helpers.aio import listening_socket, port_of

HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "host"})


@dataclass
class Exchange:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]
    status: int = 0
    answer: Any = None
    answer_headers: dict[str, str] = field(default_factory=dict)


Rewrite = Callable[[Exchange], Exchange]


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw.strip() else None
    except ValueError:
        return raw.decode(errors="replace")


class Recorder:
    def __init__(self, target: str, rewrite: Rewrite | None = None) -> None:
        self.target = target.rstrip("/")
        self.rewrite = rewrite
        self.exchanges: list[Exchange] = []
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.url = ""

    async def start(self) -> Recorder:
        app = web.Application(client_max_size=32 * 2**20)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = listening_socket()
        await web.SockSite(self._runner, sock).start()
        self.url = f"http://127.0.0.1:{port_of(sock)}"
        self._session = aiohttp.ClientSession()
        return self

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def handle(self, request: web.Request) -> web.Response:
        assert self._session is not None
        raw = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        exchange = Exchange(request.method, request.path, dict(request.query), _json(raw), headers)
        if self.rewrite is not None:
            exchange = self.rewrite(exchange)
        data = json.dumps(exchange.body).encode() if exchange.body is not None else None
        async with self._session.request(
            exchange.method,
            self.target + exchange.path,
            params=exchange.query,
            data=data,
            headers=exchange.headers,
            timeout=aiohttp.ClientTimeout(total=30),
        ) as response:
            answer = await response.read()
            exchange.status = response.status
            exchange.answer = _json(answer)
            exchange.answer_headers = {
                k: v for k, v in response.headers.items() if k.lower() not in HOP_BY_HOP
            }
        self.exchanges.append(exchange)
        return web.Response(body=answer, status=exchange.status, headers=exchange.answer_headers)
