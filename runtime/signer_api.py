"""The Remote Signing (Web3Signer) API a keyless validator client uses as its signer (signer mode).

`GET /api/v1/eth2/publicKeys` lists the cluster's GROUP pubkeys (0x, lower-case hex: Lodestar matches
duties against the strings as given). `POST /api/v1/eth2/sign/{identifier}` becomes a `SignRequest`
model event; the model answers (node/signer.py) with the group signature, always as the JSON object
`{"signature": ...}` (Lodestar parses nothing else, whatever it sends as Accept), or with a status and
an error body naming the reason. `GET /upcheck` says the process is up. A body that is not JSON is a
400 here; every other decision is the model's. This module formats HTTP; it decides nothing.
"""

from __future__ import annotations

from typing import Any, Protocol

from aiohttp import web

from covalidator.model.cluster.config import NodeConfig
from covalidator.model.node.events import PassToBN, ReplyToVC, SignRequest
from covalidator.runtime.http_guard import HttpGuard
from covalidator.runtime.json_depth import loads_bounded

MAX_BODY = 16 * 2**20  # a full block with its attestations fits many times over

PUBLIC_KEYS = "/api/v1/eth2/publicKeys"
SIGN = "/api/v1/eth2/sign/{identifier}"
UPCHECK = "/upcheck"


class Asker(Protocol):
    async def ask(self, make: Any, timeout_s: float) -> ReplyToVC | PassToBN | None: ...


def error_response(status: int, message: str) -> web.Response:
    return web.json_response({"code": status, "message": message}, status=status)


class SignerAPI:
    def __init__(self, runner: Asker, config: NodeConfig, guard: HttpGuard | None = None) -> None:
        self.runner = runner
        self.guard = guard or HttpGuard()
        self.guard.json_paths = lambda request: request.method == "POST"
        self.config = config
        self.held = 0  # requests waiting for the model right now
        self.answered: dict[int, int] = {}  # status -> count (the status endpoint reports it)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self.guard.middleware])
        app.router.add_get(PUBLIC_KEYS, self.public_keys)
        app.router.add_post(SIGN, self.sign)
        app.router.add_get(UPCHECK, self.upcheck)
        return app

    def _wait_s(self) -> float:
        """A safety net above the model's own deadlines (at most one slot): it always answers first."""
        return float(self.config.chain.clock.slot_ms * 3 / 1000)

    async def public_keys(self, request: web.Request) -> web.Response:
        return web.json_response([v.group for v in self.config.validators])

    async def upcheck(self, request: web.Request) -> web.Response:
        return web.Response(text="OK")

    async def sign(self, request: web.Request) -> web.Response:
        identifier = request.match_info["identifier"]
        try:
            body = await request.json(loads=loads_bounded)
        except (ValueError, UnicodeDecodeError) as error:
            return self._count(error_response(400, f"malformed JSON body: {error}"))
        self.held += 1
        try:
            reply = await self.runner.ask(lambda rid: SignRequest(rid, identifier, body), self._wait_s())
        finally:
            self.held -= 1
        if not isinstance(reply, ReplyToVC):
            return self._count(error_response(503, "no answer from the node in time"))
        return self._count(web.json_response(reply.body, status=reply.status))

    def _count(self, response: web.Response) -> web.Response:
        self.answered[response.status] = self.answered.get(response.status, 0) + 1
        return response
