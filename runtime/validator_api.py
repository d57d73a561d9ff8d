"""The Beacon API that the validator client talks to, as if covalidator were its beacon node.

Intercepted endpoints become model events (`VCRequest` / `VCSubmission`) and are answered from the
model's `ReplyToVC` (a request for data not yet decided hangs until the model answers: decided and
persisted, or a Beacon-API error at its deadline). Duties and validator endpoints are proxied with
the DV mapping: the VC knows only this node's SHARE pubkeys, the chain only the GROUP pubkeys.
Everything else goes to the reverse proxy unchanged. This module formats HTTP; it decides nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol
from urllib.parse import quote, unquote

from aiohttp import web

from covalidator import __version__
from covalidator.model.cluster.config import NodeConfig
from covalidator.model.node.events import (
    PassToBN,
    ReplyToVC,
    SubmissionKind,
    VCRequest,
    VCRequestKind,
    VCSubmission,
)
from covalidator.runtime.http_guard import HttpGuard
from covalidator.runtime.json_depth import loads_bounded


class Forward(Protocol):
    """The reverse proxy's entry (`runtime.proxy.ReverseProxy.forward`): the request to a BN, with
    optional rewrites of the JSON response, the query string, the JSON request body and the path."""

    def __call__(
        self,
        request: web.Request,
        response_rewrite: Callable[[Any], Any] | None,
        query_rewrite: Callable[[str], str] | None,
        *,
        body_rewrite: Callable[[Any], Any] | None = None,
        path: str | None = None,
    ) -> Awaitable[web.StreamResponse]: ...


ETH_CONSENSUS_VERSION = "Eth-Consensus-Version"
STATUS_PATH = "/covalidator/v1/status"  # the node's own health: peers, BNs, queue (not a Beacon API)
# an operator's partials over a NEW builder registration (`covalidator registration sign`; not a Beacon API)
REGISTRATIONS_PATH = "/covalidator/v1/registrations"


def is_intercepted_post(request: web.Request) -> bool:
    """A POST that covalidator reads as JSON itself (not the passthrough's catch-all route)."""
    resource = request.match_info.route.resource
    return request.method == "POST" and resource is not None and resource.canonical != "/{tail}"


def error_response(status: int, message: str) -> web.Response:
    return web.json_response({"code": status, "message": message}, status=status)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=str)


class PubkeyMapper:
    """group <-> this node's share pubkeys, for the validator and duties endpoints.

    Each VC chooses how it names a validator: a middleware-mode VC holds SHARE keystores and asks
    about share pubkeys; a signer-mode VC knows the GROUP pubkeys from the signer API and asks about
    those. A validator the VC has asked about by its group pubkey is answered with its group pubkey
    from then on (`seen_as_group`); every other one with this node's share."""

    def __init__(self, config: NodeConfig) -> None:
        self.share_of_group = {v.group: v.shares[config.share_index - 1] for v in config.validators}
        self.group_of_share = {s: g for g, s in self.share_of_group.items()}
        self.seen_as_group: set[str] = set()

    def to_group(self, value: str) -> str:
        key = value.lower()
        if key in self.share_of_group:
            self.seen_as_group.add(key)  # the VC names it by its group key: answer in kind
        group: str = self.group_of_share.get(key, value)
        return group

    def to_share(self, obj: Any) -> Any:
        """Every group pubkey of the cluster in a JSON value, replaced by this node's share pubkey
        (unless the VC names that validator by its group pubkey)."""
        if isinstance(obj, dict):
            return {k: self.to_share(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self.to_share(v) for v in obj]
        if isinstance(obj, str):
            key = obj.lower()
            if key in self.seen_as_group:
                return obj
            return self.share_of_group.get(key, obj)
        return obj


class ValidatorAPI:
    def __init__(
        self,
        runner: Any,
        config: NodeConfig,
        forward: Forward,
        bn_version: Callable[[], str] = lambda: "",
        status: Callable[[], dict[str, Any]] | None = None,
        guard: HttpGuard | None = None,
    ) -> None:
        self.runner = runner
        self.guard = guard or HttpGuard()
        self.guard.json_paths = is_intercepted_post
        self.status = status
        self.config = config
        self.forward = forward
        self.mapper = PubkeyMapper(config)
        self.bn_version = bn_version
        self.seen_vc_ms = 0  # last time the VC called us (the health endpoint reports it)
        self.held = 0  # requests waiting for the model right now
        self.on_request: Callable[[str, float], None] | None = None  # (route, seconds): the node's metrics

    def app(self) -> web.Application:
        app = web.Application(client_max_size=32 * 2**20, middlewares=[self.guard.middleware, self._touch])
        r = app.router
        r.add_get("/eth/v1/node/version", self.version)
        r.add_get(STATUS_PATH, self.node_status)
        r.add_get("/eth/v1/validator/attestation_data", self.attestation_data)
        for v in ("v1", "v2", "v3"):
            r.add_get(f"/eth/{v}/validator/blocks/{{slot}}", self.produce_block)
        r.add_get("/eth/v1/validator/blinded_blocks/{slot}", self.produce_block)
        for v in ("v1", "v2"):
            r.add_post(f"/eth/{v}/beacon/blocks", self.submit_block)
            r.add_post(f"/eth/{v}/beacon/blinded_blocks", self.submit_block)
            r.add_post(f"/eth/{v}/beacon/pool/attestations", self.submit(SubmissionKind.ATTESTATIONS))
            r.add_get(f"/eth/{v}/validator/aggregate_attestation", self.aggregate_attestation)
            r.add_post(
                f"/eth/{v}/validator/aggregate_and_proofs", self.submit(SubmissionKind.AGGREGATE_AND_PROOFS)
            )
        r.add_post("/eth/v1/beacon/pool/sync_committees", self.submit(SubmissionKind.SYNC_COMMITTEE_MESSAGES))
        r.add_get("/eth/v1/validator/sync_committee_contribution", self.sync_contribution)
        r.add_post(
            "/eth/v1/validator/contribution_and_proofs", self.submit(SubmissionKind.CONTRIBUTION_AND_PROOFS)
        )
        r.add_post(
            "/eth/v1/validator/beacon_committee_selections",
            self.selections(VCRequestKind.BEACON_COMMITTEE_SELECTIONS),
        )
        r.add_post(
            "/eth/v1/validator/sync_committee_selections",
            self.selections(VCRequestKind.SYNC_COMMITTEE_SELECTIONS),
        )
        r.add_post("/eth/v1/beacon/pool/voluntary_exits", self.voluntary_exit)
        r.add_post("/eth/v1/validator/register_validator", self.submit(SubmissionKind.REGISTRATIONS))
        r.add_post("/eth/v1/validator/prepare_beacon_proposer", self.submit(SubmissionKind.PREPARE_PROPOSER))
        r.add_post(REGISTRATIONS_PATH, self.submit(SubmissionKind.OPERATOR_REGISTRATION))
        r.add_get("/eth/v1/beacon/states/{state_id}/validator_balances", self.validators)
        r.add_post("/eth/v1/beacon/states/{state_id}/validator_balances", self.validators)
        r.add_get("/eth/v1/beacon/states/{state_id}/validators", self.validators)
        r.add_post("/eth/v1/beacon/states/{state_id}/validators", self.validators)
        r.add_get("/eth/v1/beacon/states/{state_id}/validators/{validator_id}", self.validators)
        r.add_get("/eth/v1/validator/duties/proposer/{epoch}", self.duties)
        r.add_get("/eth/v2/validator/duties/proposer/{epoch}", self.duties)
        r.add_post("/eth/v1/validator/duties/attester/{epoch}", self.duties)
        r.add_post("/eth/v1/validator/duties/sync/{epoch}", self.duties)
        r.add_route("*", "/{tail:.*}", self.passthrough)
        return app

    @web.middleware
    async def _touch(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        self.seen_vc_ms = self.runner.clock()
        if self.on_request is None:
            return await handler(request)
        begin = time.perf_counter()
        try:
            return await handler(request)
        finally:
            route = request.match_info.route.resource
            self.on_request(route.canonical if route is not None else "other", time.perf_counter() - begin)

    # -- helpers ----------------------------------------------------------------------------------------

    def _wait_s(self) -> float:
        """A safety net above the model's own deadlines: it always answers first."""
        return float(self.config.chain.clock.slot_ms * 3 / 1000)

    async def _ask(self, make: Callable[[int], VCRequest | VCSubmission]) -> ReplyToVC | PassToBN | None:
        self.held += 1
        try:
            reply: ReplyToVC | PassToBN | None = await self.runner.ask(make, self._wait_s())
            return reply
        finally:
            self.held -= 1

    @staticmethod
    async def _json_body(request: web.Request, indexed: bool = False) -> Any:
        """The JSON body, or a 400 (`indexed`: with the empty `failures` list the beacon-APIs'
        IndexedErrorMessage of the submission endpoints requires)."""
        try:
            return await request.json(loads=loads_bounded)
        except (ValueError, UnicodeDecodeError) as error:
            body: dict[str, Any] = {"code": 400, "message": f"malformed JSON body: {error}"}
            raise web.HTTPBadRequest(
                text=json.dumps({**body, "failures": []} if indexed else body),
                content_type="application/json",
            ) from None

    @staticmethod
    def _reply(
        reply: ReplyToVC | PassToBN | None,
        shape: Callable[[Any], Any] = lambda body: body,
        version: bool = False,
        extra_headers: dict[str, str] | None = None,
    ) -> web.Response:
        if reply is None or isinstance(reply, PassToBN):  # (PassToBN only where a handler forwards it)
            return error_response(503, "no answer from the co-validators in time")
        if reply.status != 200:
            return web.json_response(reply.body, status=reply.status)
        headers = dict(extra_headers or {})
        if version and reply.version:
            headers[ETH_CONSENSUS_VERSION] = reply.version
        body = shape(reply.body)
        if body is None:
            return web.Response(status=200, headers=headers)
        return web.json_response(body, status=200, headers=headers)

    # -- intercepted ------------------------------------------------------------------------------------

    async def version(self, request: web.Request) -> web.Response:
        bn = self.bn_version()
        return web.json_response(
            {"data": {"version": f"covalidator/v{__version__}" + (f" ({bn})" if bn else "")}}
        )

    async def node_status(self, request: web.Request) -> web.Response:
        body = self.status() if self.status is not None else {}
        return web.json_response({"data": {**body, "seen_vc_ms": self.seen_vc_ms}}, dumps=_dumps)

    async def attestation_data(self, request: web.Request) -> web.Response:
        params = {
            "slot": request.query.get("slot", ""),
            "committee_index": request.query.get("committee_index", ""),
        }
        reply = await self._ask(lambda rid: VCRequest(rid, VCRequestKind.ATTESTATION_DATA, params))
        return self._reply(reply)

    async def produce_block(self, request: web.Request) -> web.Response:
        version_path = request.path.split("/")[2]
        params = {
            "slot": request.match_info["slot"],
            "randao_reveal": request.query.get("randao_reveal", ""),
            "graffiti": request.query.get("graffiti"),
            "blinded": "blinded_blocks" in request.path,
        }
        reply = await self._ask(lambda rid: VCRequest(rid, VCRequestKind.BLOCK, params))
        if not isinstance(reply, ReplyToVC) or reply.status != 200:
            return self._reply(reply)
        body = reply.body
        # the values come with the decided proposal (a Byzantine leader's words): decimal or "0"
        value = _decimal_or_zero(body.get("execution_payload_value"))
        if version_path == "v3":
            headers = {
                "Eth-Execution-Payload-Blinded": "true"
                if body.get("execution_payload_blinded") is True
                else "false",
                "Eth-Execution-Payload-Value": value,
                "Eth-Consensus-Block-Value": _decimal_or_zero(body.get("consensus_block_value")),
            }
            return self._reply(reply, version=True, extra_headers=headers)
        # `block_value`: not in the beacon-APIs spec, but Lodestar 1.5.1's VC reads it from v1/v2 answers
        # (its BN sends it) and fails the proposal without it; other clients ignore the extra field
        if version_path == "v2":
            shape = lambda b: {"version": b["version"], "data": b["data"], "block_value": value}  # noqa: E731
            return self._reply(reply, shape, version=True)
        return self._reply(reply, lambda b: {"data": b["data"], "block_value": value})

    async def aggregate_attestation(self, request: web.Request) -> web.StreamResponse:
        params = dict(request.query)
        reply = await self._ask(lambda rid: VCRequest(rid, VCRequestKind.AGGREGATE_ATTESTATION, params))
        if isinstance(reply, PassToBN):  # not a cluster duty: the BN answers
            return await self.forward(request, None, None)
        v2 = request.path.startswith("/eth/v2/")
        return self._reply(reply, (lambda b: b) if v2 else (lambda b: {"data": b["data"]}), version=v2)

    async def sync_contribution(self, request: web.Request) -> web.StreamResponse:
        params = dict(request.query)
        reply = await self._ask(lambda rid: VCRequest(rid, VCRequestKind.SYNC_CONTRIBUTION, params))
        if isinstance(reply, PassToBN):
            return await self.forward(request, None, None)
        return self._reply(reply)

    def selections(self, kind: VCRequestKind) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            body = await self._json_body(request)
            reply = await self._ask(lambda rid: VCRequest(rid, kind, {"selections": body}))
            return self._reply(reply)

        return handler

    def submit(self, kind: SubmissionKind) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            body = await self._json_body(request, indexed=True)
            if not isinstance(body, list):
                return web.json_response(
                    {"code": 400, "message": "expected a JSON array", "failures": []}, status=400
                )
            version = request.headers.get(ETH_CONSENSUS_VERSION, "")
            reply = await self._ask(lambda rid: VCSubmission(rid, kind, tuple(body), version))
            return self._reply(reply, lambda b: None)

        return handler

    async def voluntary_exit(self, request: web.Request) -> web.StreamResponse:
        """One SignedVoluntaryExit: a partial over this node's share (or the group's signature) for the
        cluster; an exit of another validator goes to the BN as it is."""
        body = await self._json_body(request)
        if not isinstance(body, dict):
            return error_response(400, "expected a JSON object (SignedVoluntaryExit)")
        reply = await self._ask(lambda rid: VCSubmission(rid, SubmissionKind.VOLUNTARY_EXIT, (body,)))
        if isinstance(reply, PassToBN):
            return await self.forward(request, None, None)
        return self._reply(reply, lambda b: None)

    async def submit_block(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        if not isinstance(body, dict):
            return error_response(400, "expected a JSON object")
        version = request.headers.get(ETH_CONSENSUS_VERSION, "")
        reply = await self._ask(lambda rid: VCSubmission(rid, SubmissionKind.BLOCK, (body,), version))
        return self._reply(reply, lambda b: None)

    # -- proxied with the DV pubkey mapping ---------------------------------------------------------------

    async def validators(self, request: web.Request) -> web.StreamResponse:
        """GET/POST .../validators, .../validator_balances and GET .../validators/{validator_id}: share
        pubkeys the VC asks about become group pubkeys for the BN (query `id`, body `ids` or an array,
        path), and back in the answer."""

        def rewrite_query(query: str) -> str:
            parts = []
            for item in query.split("&"):
                key, eq, value = item.partition("=")
                if key == "id":  # decoded once, mapped, encoded again (commas kept as the VC sent them)
                    ids = unquote(value).split(",")
                    value = quote(",".join(self.mapper.to_group(v) for v in ids), safe=",")
                parts.append(f"{key}={value}" if eq else key)
            return "&".join(parts)

        def rewrite_body(body: Any) -> Any:
            if isinstance(body, list):  # validator_balances: a bare array of ids
                return [self.mapper.to_group(i) if isinstance(i, str) else i for i in body]
            if isinstance(body, dict) and isinstance(body.get("ids"), list):
                ids = [self.mapper.to_group(i) if isinstance(i, str) else i for i in body["ids"]]
                return {**body, "ids": ids}
            return body

        path = None
        validator_id = request.match_info.get("validator_id")
        if validator_id is not None and validator_id.lower() in self.mapper.group_of_share:
            path = request.path.rsplit("/", 1)[0] + "/" + self.mapper.to_group(validator_id)
        elif validator_id is not None:
            self.mapper.to_group(validator_id)  # a group pubkey: remembered as the VC's choice
        body_rewrite = rewrite_body if request.method == "POST" else None
        return await self.forward(
            request, self.mapper.to_share, rewrite_query, body_rewrite=body_rewrite, path=path
        )

    async def duties(self, request: web.Request) -> web.StreamResponse:
        return await self.forward(request, self.mapper.to_share, None)

    async def passthrough(self, request: web.Request) -> web.StreamResponse:
        return await self.forward(request, None, None)


def _decimal_or_zero(value: object) -> str:
    """A block value for a header or a JSON field: a decimal uint256 string as given, else "0" (a
    proposal's extra fields are a leader's words: an object there broke the VC's answer)."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 78:
        return value
    return "0"
