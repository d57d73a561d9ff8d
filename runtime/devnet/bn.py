"""The devnet beacon node: `model.sim_chain.SimChain` served as a Beacon-API BN over real HTTP.

Serves, in wall-clock time (the chain's virtual ms ARE Unix ms; genesis a few seconds ahead; fast
slots), the endpoints a validator client and `runtime/bn_client.py` use: genesis, config/spec,
node version/syncing/health, validators (GET and POST), attester/proposer/sync duties,
attestation_data, produceBlockV3 (and v2), aggregate_attestation (v1, v2), sync_committee_contribution,
every submission (pool attestations v1/v2, blocks v1/v2, aggregate_and_proofs v1/v2, sync committee
messages, contribution_and_proofs), voluntary exits (group signature checked; the validator becomes
`active_exiting`), builder registrations (each signature checked under the builder domain),
proposer preparation, and `/eth/v1/events`
(head and block events when each slot's block arrives). The selections endpoints answer 501: a
plain BN, not DV middleware. JSON as the beacon-APIs spec says (decimal-string uint64, 0x hex, `data`
envelopes, `dependent_root`, `execution_optimistic`, `Eth-Consensus-Version` on versioned answers).

Every submission goes to the chain's judge (real BLS against the GROUP pubkeys, slashable pairs);
`GET /devnet/report` returns its figures (`report.Report`). Bad input is a Beacon-API error body
(400 with code and message), never a crash. One view of the chain (node 0: blocks never late).

Run in-process (`await DevnetBN(DevnetConfig(...)).start()`, `await bn.stop()`) or as a process:
`python -m covalidator.runtime.devnet.bn --validators 8 --epochs 3 [--info-file F]`, which prints one
JSON line with its url, port and genesis time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from covalidator.model.cluster.config import unhex
from covalidator.model.crypto import bls
from covalidator.model.eth.networks import network
from covalidator.model.eth.signing import Kind, SigningError, signing_root
from covalidator.model.eth.specs import FAR_FUTURE_EPOCH
from covalidator.model.node.events import SubmissionKind
from covalidator.sim.chain import FORK, PRESETS, ChainParams, SimChain, _hash_hex

from . import use_fixture_bls_backend
from .report import Report

log = logging.getLogger("covalidator.devnet.bn")

SLOW_S = 1.0  # a request answered this late, or the event loop held this long, is logged and counted

VERSION = "covalidator-devnet/v0.1.0/python"
GWEI_32_ETH = "32000000000"
UINT64_MAX = 2**64 - 1
EVENT_TOPICS = frozenset(  # the spec's topics; only head and block are ever sent
    (
        "head",
        "block",
        "attestation",
        "single_attestation",
        "voluntary_exit",
        "bls_to_execution_change",
        "proposer_slashing",
        "attester_slashing",
        "finalized_checkpoint",
        "chain_reorg",
        "contribution_and_proof",
        "payload_attributes",
    )
)
STATE_ID = re.compile(r"head|genesis|finalized|justified|\d{1,20}|0x[0-9a-fA-F]{64}")
PUBKEY = re.compile(r"0x[0-9a-fA-F]{96}")
MAX_SEED_LOOKAHEAD = 4  # an exit's epoch is the current one + 1 + this (the churn is never full here)


class BadRequest(Exception):
    """The request is wrong: a 400 with this message."""


@dataclass(frozen=True)
class DevnetConfig:
    validators: int = 8  # the cluster's validators: interop keys 0..V-1
    epochs: int = 3  # how many epochs the report counts duties for
    seconds_per_slot: int = 2
    genesis_delay_s: float = 3.0  # genesis this long after start (rounded up to a whole second)
    genesis_time: int | None = None  # or exactly this Unix time
    seed: int = 0
    committee_size: int = 64
    sync_members: int | None = None  # default min(4, validators)
    proposer_share: float = 0.5
    reorg_rate: float = 0.0
    fork: str = FORK  # "bellatrix": execution payloads, and the builder flow (blinded blocks)
    secret_keys: tuple[int, ...] = ()  # the validators' keys (default: interop 0..V-1)
    preset: str = "minimal"  # or "mainnet": 32-slot epochs, 512-member sync committees

    def chain(self, now_s: float) -> SimChain:
        genesis = (
            self.genesis_time if self.genesis_time is not None else int(now_s + self.genesis_delay_s) + 1
        )
        params = ChainParams(
            validators=self.validators,
            nodes=1,
            threshold=1,
            committee_size=self.committee_size,
            sync_members=min(4, self.validators) if self.sync_members is None else self.sync_members,
            proposer_share=self.proposer_share,
            late_block_rate=0.0,
            reorg_rate=self.reorg_rate,
            slot_ms=self.seconds_per_slot * 1000,
            genesis_ms=genesis * 1000,
            seed=self.seed,
            fork=self.fork,
            secret_keys=self.secret_keys,
            preset=PRESETS[self.preset],
        )
        return SimChain(params, self.epochs)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(body).encode(), status=status, content_type="application/json", headers=headers
    )


def error_response(status: int, message: str, failures: list[dict[str, Any]] | None = None) -> web.Response:
    body: dict[str, Any] = {"code": status, "message": message}
    if failures is not None:
        body["failures"] = failures
    return json_response(body, status)


def uint(text: Any, name: str) -> int:
    if not isinstance(text, str) or not (text.isascii() and text.isdigit()) or int(text) > UINT64_MAX:
        raise BadRequest(f"Invalid {name}: {str(text)[:80]!r}")
    return int(text)


def query(request: web.Request, name: str) -> str:
    value = request.query.get(name)
    if value is None:
        raise BadRequest(f"Missing query parameter {name}")
    return value


def hex_bytes(text: str, length: int, name: str) -> str:
    if not re.fullmatch(f"0x[0-9a-fA-F]{{{2 * length}}}", text):
        raise BadRequest(f"Invalid {name}: {text[:120]!r} is not 0x-hex of {length} bytes")
    return text.lower()


async def json_body(request: web.Request) -> Any:
    try:
        return json.loads(await request.read())
    except ValueError:
        raise BadRequest("Invalid JSON body") from None


REGISTRATION_FIELDS = ("pubkey", "fee_recipient", "gas_limit", "timestamp")


def _registration_verdicts(schedule: Any, items: dict[tuple[str, ...], Any]) -> dict[tuple[str, ...], str]:
    """Each registration's problem ("" if none): malformed ones named one by one, the signatures of
    the rest checked in one batch (bisection names the invalid ones). Runs in a worker thread."""
    verdicts: dict[tuple[str, ...], str] = {}
    signed: dict[tuple[str, ...], bls.SignedItem] = {}
    for key, item in items.items():
        message = item["message"]
        try:
            signature = unhex(hex_bytes(item["signature"], 96, "signature"))
            root = signing_root(schedule, Kind.VALIDATOR_REGISTRATION, message)
            signed[key] = bls.SignedItem(unhex(message["pubkey"]), root, signature)
        except (SigningError, BadRequest, ValueError) as error:
            verdicts[key] = f"malformed registration: {error}"
    try:
        invalid = set(bls.find_invalid(list(signed.values())))
    except ValueError:  # a point that does not decode: each checked alone
        invalid = {p for p, item in enumerate(signed.values()) if not bls.verify(*item)}
    for position, (key, item) in enumerate(signed.items()):
        verdicts[key] = f"bad registration signature for 0x{item.pubkey.hex()}" if position in invalid else ""
    return verdicts


class DevnetBN:
    """The server. `clock()` is the wall clock in seconds (a test may shift it)."""

    def __init__(
        self,
        config: DevnetConfig,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config, self.host, self.port, self.clock = config, host, port, clock
        self.chain = config.chain(clock())
        self.report = Report(self.chain)
        self.requests = 0
        self.errors: dict[int, int] = {}  # status -> count of error answers
        self.exits: dict[int, int] = {}  # validator index -> exit epoch (accepted voluntary exits)
        self.exit_messages: list[Any] = []
        self.exits_invalid = 0
        self.registrations: dict[int, dict[str, Any]] = {}  # index -> the newest valid registration
        self.registrations_invalid = 0
        # (message fields, signature) -> "" if valid, else why not: every node submits every
        # registration each epoch, and each is checked once
        self._verdicts: dict[tuple[str, ...], str] = {}
        # one batch check at a time: the nodes submit the same registrations together (at genesis,
        # 10,000 each), and a body that waited finds the ones checked meanwhile in the memo
        self._checking = asyncio.Lock()
        self.prepared: dict[int, str] = {}  # index -> fee recipient from prepare_beacon_proposer
        self.builder_blocks = 0  # blinded blocks handed out
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        # what makes a client wait (logged, and in the report): requests slower than SLOW_S from
        # handler start to answer, and stretches when the event loop ran nothing else for SLOW_S
        self.in_flight = 0
        self.slow_requests: dict[str, int] = {}  # "METHOD path" -> count
        self.loop_held_s: list[float] = []
        self._watch: asyncio.Task[None] | None = None

    # ---- lifecycle ------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def genesis_time(self) -> int:
        return int(self.chain.clock.genesis_time_ms) // 1000

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def start(self) -> DevnetBN:
        await asyncio.to_thread(self.report.prepare)  # before any request (see `Report.prepare`)
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 2**20)
        self._routes(app.router)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._watch = asyncio.create_task(self._watch_loop())
        return self

    async def stop(self) -> None:
        self._closing.set()
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> DevnetBN:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        self.requests += 1
        self.in_flight += 1
        started = time.monotonic()
        try:
            response = await self._answer(request, handler)
        finally:
            self.in_flight -= 1
        elapsed = time.monotonic() - started
        if elapsed >= SLOW_S and isinstance(response, web.Response):  # (an event stream lasts)
            name = f"{request.method} {request.path}"
            self.slow_requests[name] = self.slow_requests.get(name, 0) + 1
            log.warning(
                "devnet BN: %s answered %d after %.1f s (%d requests in flight)",
                name, response.status, elapsed, self.in_flight + 1,
            )  # fmt: skip
        return response

    async def _answer(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            response = await handler(request)
        except BadRequest as error:
            response = error_response(400, str(error))
        except web.HTTPException as error:
            response = error_response(error.status, f"{error.reason}: {request.method} {request.path}")
        except Exception as error:  # a bug here must answer, not drop the connection
            log.exception("devnet BN: %s %s failed", request.method, request.path)
            response = error_response(500, f"internal error: {type(error).__name__}: {error}")
        if response.status >= 400:
            self.errors[response.status] = self.errors.get(response.status, 0) + 1
        return response

    async def _watch_loop(self) -> None:
        """Note each stretch of SLOW_S or more in which the event loop ran nothing else (a timer of
        a quarter second came back that late): requests that arrived then waited for it."""
        tick = 0.25
        while not self._closing.is_set():
            before = time.monotonic()
            await asyncio.sleep(tick)
            held = time.monotonic() - before - tick
            if held >= SLOW_S:
                self.loop_held_s.append(round(held, 2))
                log.warning("devnet BN: the event loop ran nothing else for %.1f s", held)

    def _routes(self, r: web.UrlDispatcher) -> None:
        get, post = r.add_get, r.add_post
        get("/eth/v1/beacon/genesis", self.genesis)
        get("/eth/v1/config/spec", self.spec)
        get("/eth/v1/config/fork_schedule", self.fork_schedule)
        get("/eth/v1/config/deposit_contract", self.deposit_contract)
        get("/eth/v1/node/version", self.node_version)
        get("/eth/v1/node/syncing", self.syncing)
        get("/eth/v1/node/health", self.health)
        get("/eth/v1/beacon/states/{state_id}/fork", self.fork)
        get("/eth/v1/beacon/states/{state_id}/validator_balances", self.balances)
        post("/eth/v1/beacon/states/{state_id}/validator_balances", self.balances)
        get("/eth/v1/beacon/states/{state_id}/validators", self.validators_get)
        post("/eth/v1/beacon/states/{state_id}/validators", self.validators_post)
        get("/eth/v1/beacon/states/{state_id}/validators/{validator_id}", self.validator)
        get("/eth/v1/beacon/blocks/{block_id}/root", self.block_root)
        post("/eth/v1/validator/duties/attester/{epoch}", self.attester_duties)
        get("/eth/v1/validator/duties/proposer/{epoch}", self.proposer_duties)
        get("/eth/v2/validator/duties/proposer/{epoch}", self.proposer_duties)
        post("/eth/v1/validator/duties/sync/{epoch}", self.sync_duties)
        get("/eth/v1/validator/attestation_data", self.attestation_data)
        get("/eth/v3/validator/blocks/{slot}", self.produce_block_v3)
        get("/eth/v2/validator/blocks/{slot}", self.produce_block_v2)
        get("/eth/v1/validator/aggregate_attestation", self.aggregate_attestation)
        get("/eth/v2/validator/aggregate_attestation", self.aggregate_attestation)
        get("/eth/v1/validator/sync_committee_contribution", self.sync_contribution)
        for version in ("v1", "v2"):
            post(f"/eth/{version}/beacon/pool/attestations", self._submit(SubmissionKind.ATTESTATIONS))
            post(f"/eth/{version}/beacon/blocks", self._submit(SubmissionKind.BLOCK))
            post(f"/eth/{version}/beacon/blinded_blocks", self.blinded_block)
            post(
                f"/eth/{version}/validator/aggregate_and_proofs",
                self._submit(SubmissionKind.AGGREGATE_AND_PROOFS),
            )
        post("/eth/v1/beacon/pool/sync_committees", self._submit(SubmissionKind.SYNC_COMMITTEE_MESSAGES))
        post(
            "/eth/v1/validator/contribution_and_proofs", self._submit(SubmissionKind.CONTRIBUTION_AND_PROOFS)
        )
        post("/eth/v1/beacon/pool/voluntary_exits", self.voluntary_exit)
        get("/eth/v1/beacon/pool/voluntary_exits", self.voluntary_exit_pool)
        post("/eth/v1/validator/register_validator", self.register_validator)
        post("/eth/v1/validator/prepare_beacon_proposer", self.prepare_proposer)
        for path in (
            "beacon_committee_subscriptions",
            "sync_committee_subscriptions",
        ):
            post(f"/eth/v1/validator/{path}", self.accept_list)
        for path in ("beacon_committee_selections", "sync_committee_selections"):
            post(f"/eth/v1/validator/{path}", self.not_middleware)
        get("/eth/v1/events", self.events)
        get("/devnet/report", self.devnet_report)

    # ---- chain and node -------------------------------------------------------------------------------

    def _spec(self) -> dict[str, str]:
        preset = self.chain.preset
        out = {
            "CONFIG_NAME": "devnet",
            "PRESET_BASE": preset.name,
            "SECONDS_PER_SLOT": str(self.config.seconds_per_slot),
            "SLOTS_PER_EPOCH": str(preset.slots_per_epoch),
            "TARGET_AGGREGATORS_PER_COMMITTEE": str(preset.target_aggregators_per_committee),
            "SYNC_COMMITTEE_SIZE": str(preset.sync_committee_size),
            "SYNC_COMMITTEE_SUBNET_COUNT": str(preset.sync_committee_subnet_count),
            "TARGET_AGGREGATORS_PER_SYNC_SUBCOMMITTEE": str(preset.target_aggregators_per_sync_subcommittee),
            "EPOCHS_PER_SYNC_COMMITTEE_PERIOD": str(preset.epochs_per_sync_committee_period),
            "MAX_COMMITTEES_PER_SLOT": str(preset.max_committees_per_slot),
            "MAX_ATTESTATIONS": str(self.chain.spec.MAX_ATTESTATIONS),
            "DEPOSIT_CHAIN_ID": "1337",
            "DEPOSIT_NETWORK_ID": "1337",
            "DEPOSIT_CONTRACT_ADDRESS": "0x" + "00" * 20,
            "MIN_GENESIS_TIME": str(self.genesis_time),
        }
        for fork in self.chain.schedule.forks[1:]:
            out[f"{fork.name.upper()}_FORK_VERSION"] = "0x" + fork.version.hex()
            out[f"{fork.name.upper()}_FORK_EPOCH"] = str(fork.epoch)
        scheduled = {f.name for f in self.chain.schedule.forks}
        for name, _, version in network("devnet").forks:
            if name not in scheduled:
                out[f"{name.upper()}_FORK_VERSION"] = "0x" + version.hex()
                out[f"{name.upper()}_FORK_EPOCH"] = str(FAR_FUTURE_EPOCH)
        out["GENESIS_FORK_VERSION"] = "0x" + self.chain.schedule.genesis_fork_version.hex()
        return out

    async def genesis(self, request: web.Request) -> web.Response:
        schedule = self.chain.schedule
        return json_response(
            {
                "data": {
                    "genesis_time": str(self.genesis_time),
                    "genesis_validators_root": "0x" + schedule.genesis_validators_root.hex(),
                    "genesis_fork_version": "0x" + schedule.genesis_fork_version.hex(),
                }
            }
        )

    async def spec(self, request: web.Request) -> web.Response:
        return json_response({"data": self._spec()})

    async def fork_schedule(self, request: web.Request) -> web.Response:
        forks = self.chain.schedule.forks
        data = [
            {
                "previous_version": "0x" + forks[max(0, i - 1)].version.hex(),
                "current_version": "0x" + f.version.hex(),
                "epoch": str(f.epoch),
            }
            for i, f in enumerate(forks)
        ]
        return json_response({"data": data})

    async def deposit_contract(self, request: web.Request) -> web.Response:
        return json_response({"data": {"chain_id": "1337", "address": "0x" + "00" * 20}})

    async def node_version(self, request: web.Request) -> web.Response:
        return json_response({"data": {"version": VERSION}})

    async def syncing(self, request: web.Request) -> web.Response:
        head = max(0, self.chain.head_slot(0, self.now_ms()))
        data = {
            "head_slot": str(head),
            "sync_distance": "0",
            "is_syncing": False,
            "is_optimistic": False,
            "el_offline": False,
        }
        return json_response({"data": data})

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    def _state(self, request: web.Request) -> None:
        if not STATE_ID.fullmatch(request.match_info["state_id"]):
            raise BadRequest(f"Invalid state ID: {request.match_info['state_id'][:80]!r}")

    async def fork(self, request: web.Request) -> web.Response:
        self._state(request)
        forks = self.chain.schedule.forks
        current = self.chain.schedule.fork_at_epoch(self.chain.clock.epoch_at(self.now_ms()))
        previous = forks[max(0, forks.index(current) - 1)]
        data = {
            "previous_version": "0x" + previous.version.hex(),
            "current_version": "0x" + current.version.hex(),
            "epoch": str(current.epoch),
        }
        return json_response({"execution_optimistic": False, "finalized": False, "data": data})

    # ---- validators -----------------------------------------------------------------------------------

    def _validator_json(self, index: int) -> dict[str, Any]:
        far = str(FAR_FUTURE_EPOCH)
        exit_epoch = self.exits.get(index)
        return {
            "index": str(index),
            "balance": GWEI_32_ETH,
            "status": "active_ongoing" if exit_epoch is None else "active_exiting",
            "validator": {
                "pubkey": self.chain.pubkey(index),
                "withdrawal_credentials": _hash_hex("withdrawal", index),
                "effective_balance": GWEI_32_ETH,
                "slashed": False,
                "activation_eligibility_epoch": "0",
                "activation_epoch": "0",
                "exit_epoch": far if exit_epoch is None else str(exit_epoch),
                "withdrawable_epoch": far,
            },
        }

    def _index(self, ident: Any) -> int | None:
        if isinstance(ident, str) and PUBKEY.fullmatch(ident):
            index: int | None = self.chain.index_of.get(ident.lower())
            return index
        index = uint(ident, "validator ID")
        return index if index < self.chain.params.total else None

    def _validators(self, ids: list[Any] | None, statuses: list[Any] | None) -> web.Response:
        if ids is None:
            indices: list[int] = list(range(self.chain.params.total))
        else:
            indices = [i for i in (self._index(x) for x in ids) if i is not None]
        wanted = {str(s) for s in statuses or []}
        data = [self._validator_json(i) for i in dict.fromkeys(indices)]
        if wanted:
            data = [
                d
                for d in data
                if d["status"] in wanted or ("active" in wanted and d["status"].startswith("active"))
            ]
        return json_response({"execution_optimistic": False, "finalized": False, "data": data})

    async def balances(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            ids = await json_body(request)
            if not isinstance(ids, list):
                raise BadRequest("Invalid body: expected a list of validator ids")
        else:
            ids = [i for v in request.query.getall("id", []) for i in v.split(",") if i] or None
        indices = (
            range(self.chain.params.total)
            if ids is None
            else [i for i in map(self._index, ids) if i is not None]
        )
        data = [{"index": str(i), "balance": GWEI_32_ETH} for i in dict.fromkeys(indices)]
        return json_response({"execution_optimistic": False, "finalized": False, "data": data})

    async def validators_get(self, request: web.Request) -> web.Response:
        self._state(request)

        def listed(name: str) -> list[str] | None:
            values = [v for raw in request.query.getall(name, []) for v in raw.split(",") if v]
            return values if name in request.query else None

        return self._validators(listed("id"), listed("status"))

    async def validators_post(self, request: web.Request) -> web.Response:
        self._state(request)
        body = await json_body(request) if await request.read() else {}
        if not isinstance(body, dict):
            raise BadRequest("Invalid body: expected an object with ids and statuses")
        ids, statuses = body.get("ids"), body.get("statuses")
        if not isinstance(ids, list | None) or not isinstance(statuses, list | None):
            raise BadRequest("Invalid body: ids and statuses must be lists")
        return self._validators(ids, statuses)

    async def validator(self, request: web.Request) -> web.Response:
        self._state(request)
        index = self._index(request.match_info["validator_id"])
        if index is None:
            return error_response(404, "Validator not found")
        return json_response(
            {"execution_optimistic": False, "finalized": False, "data": self._validator_json(index)}
        )

    async def block_root(self, request: web.Request) -> web.Response:
        block_id, now = request.match_info["block_id"], self.now_ms()
        head = self.chain.head_slot(0, now)
        if block_id == "head":
            slot = head
        elif block_id == "genesis":
            slot = -1
        else:
            slot = uint(block_id, "block ID")
            if slot > head:
                return error_response(404, f"Block at slot {slot} not found")
        root = self.chain.block_root(slot, 0, now)
        return json_response({"execution_optimistic": False, "finalized": False, "data": {"root": root}})

    # ---- duties ---------------------------------------------------------------------------------------

    def _epoch(self, request: web.Request, lookahead: int = 1) -> int:
        epoch = uint(request.match_info["epoch"], "epoch")
        current = self.chain.clock.epoch_at(self.now_ms())
        if epoch > current + lookahead:
            raise BadRequest(f"Invalid epoch: {epoch}, current epoch {current}")
        return epoch

    async def _indices(self, request: web.Request) -> tuple[int, ...]:
        body = await json_body(request)
        if not isinstance(body, list):
            raise BadRequest("Invalid body: expected a list of validator indices")
        return tuple(uint(i, "validator index") for i in body)

    async def attester_duties(self, request: web.Request) -> web.Response:
        epoch = self._epoch(request)
        indices = await self._indices(request)
        duties, root = self.chain.attester_duties_json(epoch, indices, 0, self.now_ms())
        return json_response({"dependent_root": root, "execution_optimistic": False, "data": duties})

    async def proposer_duties(self, request: web.Request) -> web.Response:
        epoch = self._epoch(request)
        duties, root = self.chain.proposer_duties_json(epoch, 0, self.now_ms())
        return json_response({"dependent_root": root, "execution_optimistic": False, "data": duties})

    async def sync_duties(self, request: web.Request) -> web.Response:
        epoch = self._epoch(request, lookahead=self.chain.preset.epochs_per_sync_committee_period)
        indices = await self._indices(request)
        duties = self.chain.sync_duties_json(epoch, indices)
        return json_response({"execution_optimistic": False, "data": duties})

    # ---- data to sign ---------------------------------------------------------------------------------

    def _slot(self, text: str) -> int:
        slot = uint(text, "slot")
        current = self.chain.clock.slot_at(self.now_ms())
        if slot > current + 1:
            raise BadRequest(f"Invalid slot: {slot} is in the future (current slot {current})")
        return slot

    async def attestation_data(self, request: web.Request) -> web.Response:
        slot = self._slot(query(request, "slot"))
        committee = uint(query(request, "committee_index"), "committee_index")
        if committee >= self.chain.params.committees_per_slot:
            raise BadRequest(f"Invalid committee_index: {committee}")
        data = self.chain.attestation_data(slot, committee, 0, self.now_ms())
        return json_response({"data": data})

    def _block(self, request: web.Request, builder: bool = False) -> dict[str, Any]:
        """The slot's block. With `builder` (produceBlockV3 on a chain with payloads) a registered
        proposer gets a builder's blinded block paying its registered fee recipient; any other gets a
        local block paying its prepared fee recipient (prepare_beacon_proposer), or zero."""
        slot = self._slot(request.match_info["slot"])
        randao = hex_bytes(query(request, "randao_reveal"), 96, "randao_reveal")
        now = self.now_ms()
        proposers, _ = self.chain.proposers_at(self.chain.clock.epoch_of(slot), 0, now)
        proposer = proposers[slot]
        registration = self.registrations.get(proposer) if builder else None
        boost = request.query.get("builder_boost_factor")
        if registration is not None and boost != "0":
            self.builder_blocks += 1
            return self.chain.produce_block(
                slot, proposer, randao, 0, now, registration["fee_recipient"], True
            )
        fee = self.prepared.get(proposer, "0x" + "00" * 20)
        block: dict[str, Any] = self.chain.produce_block(slot, proposer, randao, 0, now, fee)
        return block

    async def produce_block_v3(self, request: web.Request) -> web.Response:
        produced = self._block(request, builder=True)
        blinded = bool(produced["blinded"])
        body = {
            "version": produced["version"],
            "execution_payload_blinded": blinded,
            "execution_payload_value": "0",
            "consensus_block_value": "0",
            "data": produced["block"],
        }
        headers = {
            "Eth-Consensus-Version": produced["version"],
            "Eth-Execution-Payload-Blinded": str(blinded).lower(),
            "Eth-Execution-Payload-Value": "0",
            "Eth-Consensus-Block-Value": "0",
        }
        return json_response(body, headers=headers)

    async def produce_block_v2(self, request: web.Request) -> web.Response:
        produced = self._block(request)
        body = {"version": produced["version"], "data": produced["block"]}
        return json_response(body, headers={"Eth-Consensus-Version": produced["version"]})

    async def aggregate_attestation(self, request: web.Request) -> web.Response:
        root = hex_bytes(query(request, "attestation_data_root"), 32, "attestation_data_root")
        slot = uint(query(request, "slot"), "slot")
        v2 = request.path.startswith("/eth/v2/")
        if v2:
            uint(query(request, "committee_index"), "committee_index")
        aggregate = self.chain.aggregate_attestation(slot, root)
        if aggregate is None:
            return error_response(404, f"No aggregate attestation for slot {slot} and root {root}")
        if not v2:
            return json_response({"data": aggregate})
        fork = self.chain.fork
        return json_response({"version": fork, "data": aggregate}, headers={"Eth-Consensus-Version": fork})

    async def sync_contribution(self, request: web.Request) -> web.Response:
        slot = uint(query(request, "slot"), "slot")
        sub = uint(query(request, "subcommittee_index"), "subcommittee_index")
        if sub >= self.chain.preset.sync_committee_subnet_count:
            raise BadRequest(f"Invalid subcommittee_index: {sub}")
        root = hex_bytes(query(request, "beacon_block_root"), 32, "beacon_block_root")
        return json_response({"data": self.chain.sync_contribution(slot, sub, root)})

    # ---- submissions ----------------------------------------------------------------------------------

    def _submit(self, kind: SubmissionKind) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            version = request.headers.get("Eth-Consensus-Version")
            if request.path.startswith("/eth/v2/") and version is None:
                raise BadRequest("Missing Eth-Consensus-Version header")
            if version is not None and version.lower() != self.chain.fork:
                raise BadRequest(
                    f"Invalid Eth-Consensus-Version: {version!r}, the chain is at {self.chain.fork}"
                )
            body = await json_body(request)
            if kind is SubmissionKind.BLOCK:
                ok, problem = self.chain.submit(0, kind, body, self.now_ms())
                return web.Response(status=200) if ok else error_response(400, f"Invalid block: {problem}")
            if not isinstance(body, list):
                raise BadRequest(f"Invalid body: {kind.value} must be a list")
            self.chain.verify_batch(kind, body)
            failures = []
            for position, item in enumerate(body):
                ok, problem = self.chain.submit(0, kind, [item], self.now_ms())
                if not ok:
                    failures.append({"index": position, "message": problem})
            if failures:
                return error_response(400, f"Some {kind.value} failed validation", failures)
            return web.Response(status=200)

        return handler

    async def blinded_block(self, request: web.Request) -> web.Response:
        """A signed builder block: judged like a full block (its root is the full block's), then the
        builder reveals the payload (here: the judge records who it pays)."""
        if self.chain.fork == FORK:
            raise BadRequest(f"Blinded blocks are not supported: the devnet is at {FORK}, without payloads")
        body = await json_body(request)
        if not isinstance(body, dict) or "execution_payload_header" not in (body.get("message") or {}).get(
            "body", {}
        ):
            raise BadRequest("Invalid body: expected a SignedBlindedBeaconBlock")
        ok, problem = self.chain.submit(0, SubmissionKind.BLOCK, body, self.now_ms())
        return web.Response(status=200) if ok else error_response(400, f"Invalid blinded block: {problem}")

    async def voluntary_exit(self, request: web.Request) -> web.Response:
        """A SignedVoluntaryExit: the validator's group signature (EIP-7044 domain from Deneb on) over an
        exit whose epoch has come; the validator is then `active_exiting`."""
        body = await json_body(request)
        message = body.get("message") if isinstance(body, dict) else None
        if not isinstance(message, dict) or not isinstance(body.get("signature"), str):
            raise BadRequest("Invalid body: expected a SignedVoluntaryExit")
        index = uint(message.get("validator_index"), "validator_index")
        epoch = uint(message.get("epoch"), "epoch")
        now_epoch = self.chain.clock.epoch_at(self.now_ms())
        if index >= self.chain.params.total:
            raise BadRequest(f"Invalid voluntary exit: unknown validator index {index}")
        if epoch > now_epoch:
            raise BadRequest(f"Invalid voluntary exit: epoch {epoch} is in the future (current {now_epoch})")
        root = signing_root(self.chain.schedule, Kind.VOLUNTARY_EXIT, message, now_epoch)
        if not bls.verify(
            unhex(self.chain.pubkey(index)), root, unhex(hex_bytes(body["signature"], 96, "signature"))
        ):
            self.exits_invalid += 1
            raise BadRequest(f"Invalid voluntary exit: bad signature for validator {index}")
        if index not in self.exits:
            self.exits[index] = now_epoch + 1 + MAX_SEED_LOOKAHEAD
            self.exit_messages.append(body)
        return web.Response(status=200)

    async def voluntary_exit_pool(self, request: web.Request) -> web.Response:
        return json_response({"data": self.exit_messages})

    async def register_validator(self, request: web.Request) -> web.Response:
        """SignedValidatorRegistrationV1 objects: each must be its validator's group signature under
        the builder domain; the newest (by timestamp) of each validator is kept, as a relay would."""
        body = await json_body(request)
        if not isinstance(body, list):
            raise BadRequest("Invalid body: expected a list")
        ids = [self._registration_id(item) for item in body]
        known = {
            key: self._verdicts[key] for key in ids if not isinstance(key, str) and key in self._verdicts
        }
        unseen = {
            key: item
            for key, item in zip(ids, body, strict=True)
            if not isinstance(key, str) and key not in known
        }
        if unseen:
            # the signatures no earlier body carried, in one batch, off the event loop: 10,000 of them
            # (every validator at genesis) held the loop past the nodes' timeout. (`known` is this
            # body's own copy: another request may clear the memo meanwhile.)
            async with self._checking:
                done = {key: self._verdicts[key] for key in unseen if key in self._verdicts}
                known.update(done)
                unseen = {key: item for key, item in unseen.items() if key not in done}
                if unseen:
                    verdicts = await asyncio.to_thread(_registration_verdicts, self.chain.schedule, unseen)
                    self._remember(verdicts)
                    known.update(verdicts)
        failures = []
        for position, (item, key) in enumerate(zip(body, ids, strict=True)):
            problem = key if isinstance(key, str) else known[key]
            if problem:
                self.registrations_invalid += 1
                failures.append({"index": position, "message": problem})
                continue
            message = item["message"]
            index = self.chain.index_of[message["pubkey"].lower()]
            held = self.registrations.get(index)
            if held is None or int(held["timestamp"]) <= int(message["timestamp"]):
                self.registrations[index] = message
        if failures:
            return error_response(400, "Some registrations failed validation", failures)
        return web.Response(status=200)

    def _registration_id(self, item: Any) -> tuple[str, ...] | str:
        """What a registration's verdict depends on: its message fields and signature, as sent; or why
        it is not {message, signature} of a known validator."""
        message = item.get("message") if isinstance(item, dict) else None
        if not isinstance(message, dict) or not isinstance(item.get("signature"), str):
            return "expected {message, signature}"
        pubkey = message.get("pubkey")
        if not isinstance(pubkey, str) or pubkey.lower() not in self.chain.index_of:
            return f"unknown validator {pubkey}"
        return (*(str(message.get(k)) for k in REGISTRATION_FIELDS), item["signature"])

    def _remember(self, verdicts: dict[tuple[str, ...], str]) -> None:
        if len(self._verdicts) + len(verdicts) > 1 << 16:
            self._verdicts.clear()
        self._verdicts.update(verdicts)

    async def prepare_proposer(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        if not isinstance(body, list):
            raise BadRequest("Invalid body: expected a list")
        for item in body:
            if not isinstance(item, dict) or not isinstance(item.get("fee_recipient"), str):
                raise BadRequest("Invalid body: expected [{validator_index, fee_recipient}]")
            self.prepared[uint(item.get("validator_index"), "validator_index")] = item[
                "fee_recipient"
            ].lower()
        return web.Response(status=200)

    async def accept_list(self, request: web.Request) -> web.Response:
        if not isinstance(await json_body(request), list):
            raise BadRequest("Invalid body: expected a list")
        return web.Response(status=200)

    async def not_middleware(self, request: web.Request) -> web.Response:
        return error_response(
            501, "Not implemented: this beacon node is not distributed validator middleware"
        )

    # ---- events ---------------------------------------------------------------------------------------

    def _head_events(self, slot: int, topics: set[str], now: int) -> list[tuple[str, dict[str, Any]]]:
        chain = self.chain
        epoch = chain.clock.epoch_of(slot)
        root = chain.block_root(slot, 0, now)
        out: list[tuple[str, dict[str, Any]]] = []
        if "head" in topics:
            head = {
                "slot": str(slot),
                "block": root,
                "state": _hash_hex("state", chain.params.seed, slot, 0),
                "epoch_transition": slot % chain.preset.slots_per_epoch == 0,
                "previous_duty_dependent_root": chain.attester_dependent_root(epoch, 0, now),
                "current_duty_dependent_root": chain.proposer_dependent_root(epoch, 0, now),
                "execution_optimistic": False,
            }
            out.append(("head", head))
        if "block" in topics:
            out.append(("block", {"slot": str(slot), "block": root, "execution_optimistic": False}))
        return out

    async def events(self, request: web.Request) -> web.StreamResponse:
        topics = {t for raw in request.query.getall("topics", []) for t in raw.split(",") if t}
        if not topics:
            raise BadRequest("Missing query parameter topics")
        unknown = sorted(topics - EVENT_TOPICS)
        if unknown:
            raise BadRequest(f"Invalid topics: {', '.join(unknown)}")
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        slot = self.chain.head_slot(0, self.now_ms()) + 1
        while not self._closing.is_set():
            wait_s = (self.chain.arrival_ms(0, slot) - self.now_ms()) / 1000
            if wait_s > 0:
                try:
                    await asyncio.wait_for(self._closing.wait(), wait_s)
                    break
                except TimeoutError:
                    pass
            try:
                for name, data in self._head_events(slot, topics, self.now_ms()):
                    await response.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
            except (ConnectionError, RuntimeError):
                break
            slot += 1
        return response

    # ---- the judge ------------------------------------------------------------------------------------

    async def devnet_report(self, request: web.Request) -> web.Response:
        flag = {"1", "true", "yes"}
        figures = self.report.figures(
            self.now_ms(),
            slots=request.query.get("slots", "") in flag,
            latencies=request.query.get("latencies", "") in flag,
        )
        figures["requests"] = self.requests
        figures["slow_requests"] = dict(sorted(self.slow_requests.items()))
        figures["loop_held_s"] = self.loop_held_s
        figures["exits"] = {
            "accepted": {str(i): str(e) for i, e in sorted(self.exits.items())},
            "invalid": self.exits_invalid,
        }
        figures["payments"] = {
            str(slot): {"fee_recipient": fee, "builder": builder}
            for slot, (fee, builder) in sorted(self.chain.judge.payments.items())
        }
        figures["builder_blocks_offered"] = self.builder_blocks
        figures["registrations"] = {
            "held": {str(i): m for i, m in sorted(self.registrations.items())},
            "invalid": self.registrations_invalid,
        }
        figures["error_answers"] = {str(k): v for k, v in sorted(self.errors.items())}
        return json_response(figures)


# ---- as a process --------------------------------------------------------------------------------------


async def serve(config: DevnetConfig, host: str, port: int, info_file: str | None) -> None:
    import signal

    bn = await DevnetBN(config, host, port).start()
    info = {"url": bn.url, "port": bn.port, "genesis_time": bn.genesis_time}
    line = json.dumps(info)
    print(line, flush=True)
    if info_file:
        from pathlib import Path

        from covalidator.runtime.keys_io import write_file

        write_file(Path(info_file), (line + "\n").encode())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await bn.stop()


def _read_keys(folder: str, validators: int) -> tuple[int, ...]:
    from pathlib import Path

    from covalidator.runtime import keys_io

    entries = sorted(keys_io.read_keystores(Path(folder)), key=lambda e: int(e.path.stem.rsplit("-", 1)[-1]))
    if len(entries) != validators:
        raise SystemExit(f"--keys {folder}: {len(entries)} keystores for --validators {validators}")
    return tuple(bls.secret_from_bytes(keys_io.decrypt_keystore_file(e)) for e in entries)


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m covalidator.runtime.devnet.bn", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    parser.add_argument("--validators", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3, help="epochs the report counts duties for")
    parser.add_argument("--seconds-per-slot", type=int, default=2)
    parser.add_argument("--genesis-delay", type=float, default=3.0, help="seconds from now to genesis")
    parser.add_argument("--genesis-time", type=int, default=None, help="exact Unix genesis time")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--fork", choices=(FORK, "bellatrix"), default=FORK, help="bellatrix: payloads, builder flow"
    )
    parser.add_argument("--info-file", default=None, help="also write the url/port/genesis JSON line here")
    parser.add_argument("--preset", choices=("minimal", "mainnet"), default="minimal")
    parser.add_argument(
        "--keys",
        default=None,
        help="a folder of keystore-{j}.json + .txt (as `covalidator combine` writes): the validators "
        "instead of the interop keys (a DKG-made cluster)",
    )
    args = parser.parse_args(argv)
    if args.validators < 1 or args.epochs < 1 or args.seconds_per_slot < 1:
        parser.error("--validators, --epochs and --seconds-per-slot must be >= 1")
    config = DevnetConfig(
        validators=args.validators,
        epochs=args.epochs,
        seconds_per_slot=args.seconds_per_slot,
        genesis_delay_s=args.genesis_delay,
        genesis_time=args.genesis_time,
        seed=args.seed,
        fork=args.fork,
        secret_keys=_read_keys(args.keys, args.validators) if args.keys else (),
        preset=args.preset,
    )
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    use_fixture_bls_backend()
    asyncio.run(serve(config, args.host, args.port, args.info_file))


if __name__ == "__main__":
    main()
