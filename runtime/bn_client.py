"""The beacon node client: every Beacon-API call the node makes to its BNs, with failover and statistics.

Decides how to reach the BNs, not what to ask them: which BN answers (several primaries raced in
parallel, the first good answer wins; fallbacks tried when no primary gave one), which API version a
BN speaks (newest first; a 404/405/501 moves to the next older version, and a version that answered is
remembered per BN), and what counts as an answer:

    good         2xx with a JSON body (the winner)
    definitive   another 4xx (the request itself is wrong, or the BN has no such object: 404): returned
                 as `BNResponseError` without asking the fallbacks, which would answer the same
    unavailable  timeout, connection error, 5xx, 503 (syncing) or an unreadable body: the next BN is
                 asked; when none is left, `BNUnavailable` names each BN's failure

Every BN is raced in round one (a primary that is down fails fast and never delays the winner); the
fallbacks join round one when no primary is known healthy, else they form round two. Submissions
(POSTs of signed objects) go to every primary and are not cancelled when the first accepts, so each
BN gossips them. Per-endpoint timeouts (`DEFAULT_TIMEOUTS`, overridable). Per-BN health (down,
syncing) and per-(BN, endpoint) latency and errors are kept for `stats()`.

At start, `check_chain` reads genesis and spec from every BN and checks them against the cluster
lock's genesis fork version and genesis validators root (an all-zero root in the lock is not pinned:
the BN's is adopted) and against each other; a mismatch is a `ChainMismatch` with a one-line message.

Must not: interpret duties or data, or retry on its own schedule (the model decides what to fetch
again); it raises `BNError` and the caller turns that into the model's *Failed events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp
from yarl import URL

from covalidator.model.eth.specs import FORKS
from covalidator.model.node.events import SubmissionKind, ValidatorInfo
from covalidator.model.node.fetch import (
    AggregateCall,
    AttestationDataCall,
    BeaconCall,
    BlockCall,
    ContributionCall,
)

log = logging.getLogger("covalidator.bn")

Json = Any

REGISTRATION_BATCH: Final = 500  # builder registrations per body (`register_validators`)

DEFAULT_TIMEOUTS: Final[dict[str, float]] = {
    "default": 5.0,
    "genesis": 5.0,
    "spec": 5.0,
    "node_version": 5.0,
    "syncing": 2.0,
    "validators": 10.0,
    "duties": 5.0,
    "attestation_data": 3.0,
    "produce_block": 8.0,
    "aggregate_attestation": 3.0,
    "sync_committee_contribution": 3.0,
    "submit": 4.0,
    "submit_block": 8.0,
    "passthrough": 60.0,
}
GET_IDS_PER_REQUEST: Final = 32  # the GET validators fallback puts ids in the URL: keep it short
ROUTE_MISSING: Final = frozenset({404, 405, 501})
ETH_CONSENSUS_VERSION: Final = "Eth-Consensus-Version"
_ZERO_ROOT: Final = b"\0" * 32


class BNError(Exception):
    """A BN call that gave no usable answer."""


class BNUnavailable(BNError):
    """No BN answered (timeouts, connection errors, 5xx, syncing); the message names each failure."""


class BNResponseError(BNError):
    """A BN answered the request with a client error (4xx): asking another BN would not help."""

    def __init__(self, url: str, status: int, body: Json) -> None:
        message = body.get("message") if isinstance(body, dict) else None
        super().__init__(f"{url} answered {status}: {message or str(body)[:200]}")
        self.url, self.status, self.body = url, status, body


def _failures_from(body: Json, offset: int) -> Json:
    """A 400 body of a batch that started at `offset`, its failures' indices counted from the start of
    the whole list."""
    if not isinstance(body, dict) or not isinstance(body.get("failures"), list):
        return body
    failures = [
        {**f, "index": f["index"] + offset} if isinstance(f, dict) and type(f.get("index")) is int else f
        for f in body["failures"]
    ]
    return {**body, "failures": failures}


class ChainMismatch(Exception):
    """The BNs are not on the cluster's chain (or not on one chain): a fatal configuration error."""


@dataclass(frozen=True)
class BNResponse:
    url: str  # the BN that answered
    status: int
    body: Json  # parsed JSON (None when empty)
    headers: Mapping[str, str]
    variant: str  # the API version that answered ("v1", "v2", "v3", "post", "get")

    @property
    def version(self) -> str:
        """The fork name, from the Eth-Consensus-Version header or the body's "version"."""
        header = self.headers.get(ETH_CONSENSUS_VERSION.lower(), "")
        if header:
            return header.lower()
        version = self.body.get("version") if isinstance(self.body, dict) else None
        return version.lower() if isinstance(version, str) else ""

    @property
    def data(self) -> Json:
        return self.body.get("data") if isinstance(self.body, dict) else None


@dataclass(frozen=True)
class Duties:
    duties: tuple[Json, ...]  # Beacon-API AttesterDuty / ProposerDuty / SyncDuty objects
    dependent_root: str = ""
    execution_optimistic: bool = False


@dataclass(frozen=True)
class ChainInfo:
    genesis_time: int
    genesis_validators_root: bytes
    genesis_fork_version: bytes
    spec: dict[str, Any]  # /eth/v1/config/spec data, as the BN spells it
    genesis: dict[str, Any]  # /eth/v1/beacon/genesis data
    unreachable: tuple[str, ...] = ()  # BNs that did not answer at start (warned, not fatal)


@dataclass(frozen=True)
class _Variant:
    name: str
    method: str
    path: str
    params: tuple[tuple[str, str], ...] = ()
    body: Json = None
    has_body: bool = False
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class _Failure:
    url: str
    cause: str  # timeout | connection | status_5xx | syncing | bad_body
    detail: str


@dataclass
class _EndpointStats:
    count: int = 0
    errors: int = 0
    latency_ms: deque[float] = field(default_factory=lambda: deque(maxlen=512))
    max_ms: float = 0.0

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latency_ms)

        def quantile(q: float) -> float | None:
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None

        return {
            "count": self.count,
            "errors": self.errors,
            "p50_ms": quantile(0.5),
            "p99_ms": quantile(0.99),
            "max_ms": self.max_ms,
        }


@dataclass
class _Health:
    down: bool = False
    syncing: bool = False
    wrong_chain: str = ""  # why this BN is on another chain now (never asked while set)
    last_error: str = ""
    last_ok_ms: int | None = None
    errors: dict[str, int] = field(default_factory=dict)
    endpoints: dict[str, _EndpointStats] = field(default_factory=dict)


def _url(base: str) -> str:
    return base.rstrip("/")


def redact(url: str) -> str:
    """How a BN URL is shown (status, metrics labels, errors, logs): scheme://host:port only. Its
    credentials, and its path and query where providers put API keys, become '/...'."""
    parsed = URL(url)
    try:
        shown = str(parsed.origin())
    except ValueError:  # not absolute: show nothing of it
        return "<beacon node>"
    extra = parsed.raw_path not in ("", "/") or parsed.raw_query_string or parsed.raw_user
    return shown + ("/..." if extra else "")


def is_electra_or_later(version: str) -> bool:
    """Fork names after deneb take SingleAttestation and v2-only pool/aggregate endpoints. A fork name
    covalidator does not know is newer than the ones it knows."""
    version = version.lower()
    return bool(version) and (version not in FORKS or FORKS.index(version) >= FORKS.index("electra"))


def _hex_bytes(text: Any, length: int, what: str) -> bytes:
    if not isinstance(text, str) or not text.startswith("0x") or len(text) != 2 + 2 * length:
        raise BNError(f"the BN's {what} is not 0x-hex of {length} bytes: {str(text)[:80]!r}")
    try:
        return bytes.fromhex(text[2:])
    except ValueError:
        raise BNError(f"the BN's {what} is not hex: {text[:80]!r}") from None


class BeaconNodeClient:
    """Primaries (raced) and fallbacks; `timeouts` overrides DEFAULT_TIMEOUTS per endpoint name."""

    def __init__(
        self,
        primaries: Sequence[str],
        fallbacks: Sequence[str] = (),
        *,
        timeouts: Mapping[str, float] | None = None,
        session: aiohttp.ClientSession | None = None,
        user_agent: str = "covalidator",
    ) -> None:
        if not primaries:
            raise ValueError("at least one beacon node URL is needed")
        # each BN is known by its redacted name (every message, label and status uses it); the real
        # URL, which may carry credentials or an API key, is used only to connect
        self._real: dict[str, str] = {}
        real_primaries = [_url(u) for u in primaries]
        self.primaries = tuple(self._name(u) for u in dict.fromkeys(real_primaries))
        self.fallbacks = tuple(
            self._name(u) for u in dict.fromkeys(_url(u) for u in fallbacks) if u not in real_primaries
        )
        self.timeouts = {**DEFAULT_TIMEOUTS, **(timeouts or {})}
        self._own_session = session is None
        self._session = session
        self._user_agent = user_agent
        self._health: dict[str, _Health] = {u: _Health() for u in (*self.primaries, *self.fallbacks)}
        self._variant: dict[tuple[str, str], str] = {}  # (url, family) -> the variant that answered
        self._background: set[asyncio.Task[Any]] = set()
        # every call accounted (url, endpoint, seconds, error or None): the node's Prometheus metrics
        self.observer: Callable[[str, str, float, str | None], None] | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            # auto_decompress off: the reverse proxy passes bodies through unchanged; JSON calls here
            # ask for identity encoding
            self._session = aiohttp.ClientSession(
                auto_decompress=False,
                headers={"User-Agent": self._user_agent},
                connector=aiohttp.TCPConnector(limit=256, limit_per_host=64),
            )
        return self._session

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self._own_session and self._session is not None:
            await self._session.close()

    async def __aenter__(self) -> BeaconNodeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- health and statistics ------------------------------------------------------------------------

    def timeout(self, endpoint: str) -> float:
        return self.timeouts.get(endpoint, self.timeouts["default"])

    def _name(self, real: str) -> str:
        name, number = redact(real), 1
        while name in self._real and self._real[name] != real:  # two BNs that redact alike
            number += 1
            name = f"{redact(real)}#{number}"
        self._real[name] = real
        return name

    def scrub(self, text: str) -> str:
        """`text` (an error from the HTTP client, which may quote the URL) with every BN's real URL,
        and its credentials, path and query, replaced by its name."""
        for name, real in self._real.items():
            text = text.replace(real, name)
            parsed = URL(real)
            secrets = (parsed.raw_password, parsed.raw_query_string, parsed.raw_path.strip("/"))
            for secret in secrets:
                if secret and len(secret) >= 4:
                    text = text.replace(secret, "...")
        return text

    def real_url(self, name: str) -> str:
        """The URL to connect to for a BN's name (its credentials and key included)."""
        return self._real.get(name, name)

    def healthy(self, url: str) -> bool:
        health = self._health[url]
        return not health.down and not health.syncing and not health.wrong_chain

    def on_chain(self, url: str) -> bool:
        return not self._health[url].wrong_chain

    def off_chain(self) -> list[str]:
        """The BNs set aside by `recheck_chain` (on another chain now)."""
        return [u for u in (*self.primaries, *self.fallbacks) if not self.on_chain(u)]

    def candidates(self) -> list[str]:
        """Every BN on the cluster's chain, best first: healthy primaries, healthy fallbacks, then the
        others. A BN found on another chain is never asked (`recheck_chain`)."""
        every = [u for u in (*self.primaries, *self.fallbacks) if self.on_chain(u)]
        return [u for u in every if self.healthy(u)] + [u for u in every if not self.healthy(u)]

    async def recheck_chain(self, info: ChainInfo) -> dict[str, str]:
        """Ask every BN its genesis again: one that now answers another genesis validators root or
        genesis time (replaced, resynced to another network) is set aside until it answers this
        chain's again. Returns {name: why} of those set aside now."""

        async def read(url: str) -> str | None:
            result = await self._http(url, "genesis", _Variant("v1", "GET", "/eth/v1/beacon/genesis"))
            if isinstance(result, _Failure) or result.status != 200 or not isinstance(result.data, dict):
                return None  # no verdict from a BN that does not answer
            data = result.data
            root, time_s = (
                str(data.get("genesis_validators_root", "")).lower(),
                str(data.get("genesis_time", "")),
            )
            if root != "0x" + info.genesis_validators_root.hex() or time_s != str(info.genesis_time):
                return f"genesis root {root[:18]}... time {time_s}, not this chain's"
            return ""

        every = [*self.primaries, *self.fallbacks]
        verdicts = await asyncio.gather(*(read(u) for u in every))
        for url, verdict in zip(every, verdicts, strict=True):
            if verdict is None:
                continue
            health = self._health[url]
            if verdict and not health.wrong_chain:
                log.error(
                    "beacon node %s is on another chain now (%s): not asked until it is back", url, verdict
                )
            elif not verdict and health.wrong_chain:
                log.warning("beacon node %s is on the cluster's chain again", url)
            health.wrong_chain = verdict
        return {u: self._health[u].wrong_chain for u in self.off_chain()}

    def record(self, url: str, endpoint: str, started: float, error: str | None = None) -> None:
        """Account one call (the reverse proxy records through here too)."""
        health = self._health.setdefault(url, _Health())
        stats = health.endpoints.setdefault(endpoint, _EndpointStats())
        elapsed = (time.monotonic() - started) * 1000
        if self.observer is not None:
            self.observer(url, endpoint, elapsed / 1000, error)
        stats.count += 1
        stats.latency_ms.append(elapsed)
        stats.max_ms = max(stats.max_ms, elapsed)
        if error is None:
            health.down = False
            health.last_ok_ms = int(time.time() * 1000)
            return
        stats.errors += 1
        cause = error.split(":", 1)[0]
        health.errors[cause] = health.errors.get(cause, 0) + 1
        health.last_error = error
        if cause in ("timeout", "connection"):
            health.down = True
        elif cause == "syncing":
            health.syncing = True

    def stats(self) -> dict[str, Any]:
        return {
            url: {
                "role": "primary" if url in self.primaries else "fallback",
                "down": h.down,
                "syncing": h.syncing,
                "wrong_chain": h.wrong_chain or None,
                "last_error": h.last_error,
                "last_ok_ms": h.last_ok_ms,
                "errors": dict(h.errors),
                "variants": {fam: v for (u, fam), v in self._variant.items() if u == url},
                "endpoints": {name: s.summary() for name, s in h.endpoints.items()},
            }
            for url, h in self._health.items()
        }

    # ---- the core: one call, raced over BNs, with API-version fallback ---------------------------------

    async def _http(self, url: str, endpoint: str, variant: _Variant) -> BNResponse | _Failure:
        headers = {"Accept": "application/json", "Accept-Encoding": "identity", **dict(variant.headers)}
        started = time.monotonic()
        try:
            async with self.session.request(
                variant.method,
                self.real_url(url) + variant.path,
                params=list(variant.params) or None,
                json=variant.body if variant.has_body else None,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout(endpoint)),
            ) as response:
                raw = await response.read()
                status = response.status
                response_headers = {k.lower(): v for k, v in response.headers.items()}
        except TimeoutError:
            failure = _Failure(url, "timeout", f"no answer within {self.timeout(endpoint)} s")
        except (aiohttp.ClientError, OSError) as error:
            failure = _Failure(url, "connection", self.scrub(f"{type(error).__name__}: {error}"))
        else:
            try:
                body = json.loads(raw) if raw.strip() else None
            except ValueError:
                body = raw[:200].decode(errors="replace")
                if 200 <= status < 300:
                    failure = _Failure(url, "bad_body", f"{status} with a body that is not JSON")
                    self.record(url, endpoint, started, f"{failure.cause}: {failure.detail}")
                    return failure
            if variant.method == "POST" and status >= 400 and _already_known(body):
                # the same combined message reached this BN first from another co-validator (each
                # submits it): delivered, not refused (Lodestar 1.5.1: 500 ..._ALREADY_KNOWN, Duplicate)
                status = 200
            if status == 503:
                failure = _Failure(url, "syncing", f"503: {_message(body)}")
            elif status >= 500:
                failure = _Failure(url, "status_5xx", f"{status}: {_message(body)}")
            else:
                self.record(
                    url, endpoint, started, None if status < 300 else f"status_{status}: {_message(body)}"
                )
                if status < 300:
                    self._health[url].syncing = False
                return BNResponse(url, status, body, response_headers, variant.name)
        self.record(url, endpoint, started, f"{failure.cause}: {failure.detail}")
        return failure

    async def _attempt(
        self, url: str, endpoint: str, family: str, variants: Sequence[_Variant]
    ) -> BNResponse | _Failure:
        """One BN: the remembered variant first, then the others newest first; a route-missing answer
        (404/405/501) moves on; a variant that answers 2xx after another was missing is remembered."""
        remembered = self._variant.get((url, family))
        ordered = sorted(variants, key=lambda v: v.name != remembered)
        first: BNResponse | _Failure | None = None
        for position, variant in enumerate(ordered):
            result = await self._http(url, endpoint, variant)
            first = result if first is None else first
            missing = isinstance(result, BNResponse) and result.status in ROUTE_MISSING
            if missing and position < len(ordered) - 1:
                continue
            if isinstance(result, BNResponse) and 200 <= result.status < 300:
                if len(variants) > 1:
                    self._variant[(url, family)] = variant.name
                return result
            return first if missing else result  # every variant missing: the preferred one's answer
        raise AssertionError("no variants")

    async def _race(
        self, urls: Sequence[str], endpoint: str, family: str, variants: Sequence[_Variant], submit: bool
    ) -> tuple[BNResponse | None, BNResponse | None, list[_Failure]]:
        """(good, definitive, failures) over `urls` in parallel; the first good answer ends the race
        (the others are cancelled, except submissions, which every BN should receive)."""
        tasks = [asyncio.create_task(self._attempt(u, endpoint, family, variants)) for u in urls]
        definitive: BNResponse | None = None
        failures: list[_Failure] = []
        try:
            for next_done in asyncio.as_completed(tasks):
                result = await next_done
                if isinstance(result, _Failure):
                    failures.append(result)
                elif 200 <= result.status < 300:
                    return result, definitive, failures
                elif definitive is None:
                    definitive = result
            return None, definitive, failures
        finally:
            for task in tasks:
                if not task.done():
                    if submit:
                        self._background.add(task)
                        task.add_done_callback(self._background.discard)
                    else:
                        task.cancel()

    async def call(
        self, endpoint: str, variants: Sequence[_Variant], *, family: str = "", submit: bool = False
    ) -> BNResponse:
        """The first good answer (2xx) over every BN; BNResponseError for a definitive 4xx;
        BNUnavailable when no BN answered."""
        family = family or endpoint
        primaries = [u for u in self.primaries if self.on_chain(u)]
        fallbacks = [u for u in self.fallbacks if self.on_chain(u)]
        healthy_primary = any(self.healthy(u) for u in primaries)
        first_round = primaries + ([] if healthy_primary else fallbacks)
        rounds = [first_round] + ([fallbacks] if healthy_primary and fallbacks else [])
        failures: list[_Failure] = []
        for urls in rounds:
            good, definitive, failed = await self._race(urls, endpoint, family, variants, submit)
            failures += failed
            if good is not None:
                return good
            if definitive is not None:
                raise BNResponseError(definitive.url, definitive.status, definitive.body)
        raise BNUnavailable(
            f"{endpoint}: no beacon node answered ("
            + "; ".join(f"{f.url}: {f.cause} {f.detail}" for f in failures)
            + ")"
        )

    async def _data(self, endpoint: str, variants: Sequence[_Variant], **options: Any) -> Json:
        response = await self.call(endpoint, variants, **options)
        if not isinstance(response.body, dict) or "data" not in response.body:
            raise BNError(f"{endpoint}: {response.url} answered without a data field")
        return response.body["data"]

    # ---- chain, node -----------------------------------------------------------------------------------

    async def genesis(self) -> dict[str, Any]:
        data = await self._data("genesis", [_Variant("v1", "GET", "/eth/v1/beacon/genesis")])
        if not isinstance(data, dict):
            raise BNError("genesis: data is not an object")
        return data

    async def spec(self) -> dict[str, Any]:
        data = await self._data("spec", [_Variant("v1", "GET", "/eth/v1/config/spec")])
        if not isinstance(data, dict):
            raise BNError("spec: data is not an object")
        return data

    async def node_version(self) -> str:
        data = await self._data("node_version", [_Variant("v1", "GET", "/eth/v1/node/version")])
        return str(data.get("version", "")) if isinstance(data, dict) else ""

    async def syncing(self, url: str | None = None) -> dict[str, Any]:
        """/eth/v1/node/syncing of one BN (`url`) or the first that answers; a BN that says it is
        syncing is marked so (raced after the healthy ones) until it answers a call with 2xx."""
        variant = _Variant("v1", "GET", "/eth/v1/node/syncing")
        if url is None:
            response = await self.call("syncing", [variant])
        else:
            real = _url(url)
            name = url if url in self._real else next((n for n, r in self._real.items() if r == real), real)
            result = await self._http(name, "syncing", variant)
            if isinstance(result, _Failure):
                raise BNUnavailable(f"syncing: {result.url}: {result.cause} {result.detail}")
            response = result
        data = response.data
        if not isinstance(data, dict):
            raise BNError("syncing: data is not an object")
        self._health[response.url].syncing = data.get("is_syncing") is True
        return data

    async def check_syncing(self) -> dict[str, bool | None]:
        """Ask every BN whether it is syncing (None: it did not answer)."""
        every = [*self.primaries, *self.fallbacks]
        results = await asyncio.gather(*(self.syncing(u) for u in every), return_exceptions=True)
        return {
            u: (r.get("is_syncing") is True if isinstance(r, dict) else None)
            for u, r in zip(every, results, strict=True)
        }

    async def check_chain(self, fork_version: bytes, genesis_validators_root: bytes) -> ChainInfo:
        """Genesis and spec from every BN, checked against the lock's genesis fork version and genesis
        validators root (all zero: adopt the BN's) and against each other. ChainMismatch on any
        disagreement; BNUnavailable when no BN answers."""
        every = [*self.primaries, *self.fallbacks]

        async def read(url: str) -> tuple[dict[str, Any], dict[str, Any]]:
            answers = []
            for endpoint, path in (("genesis", "/eth/v1/beacon/genesis"), ("spec", "/eth/v1/config/spec")):
                result = await self._http(url, endpoint, _Variant("v1", "GET", path))
                if isinstance(result, _Failure):
                    raise BNUnavailable(f"{url}: {result.cause} {result.detail}")
                if result.status != 200 or not isinstance(result.data, dict):
                    raise BNUnavailable(f"{url}: {endpoint} answered {result.status}")
                answers.append(result.data)
            return answers[0], answers[1]

        results = await asyncio.gather(*(read(u) for u in every), return_exceptions=True)
        reached = [(u, r) for u, r in zip(every, results, strict=True) if isinstance(r, tuple)]
        unreachable = tuple(u for u, r in zip(every, results, strict=True) if not isinstance(r, tuple))
        if not reached:
            reasons = "; ".join(str(r) for r in results)
            raise BNUnavailable(f"no beacon node answered genesis and spec ({reasons})")
        pinned = genesis_validators_root != _ZERO_ROOT
        info: ChainInfo | None = None
        keys: dict[str, Any] = {}
        for url, (genesis, spec) in reached:
            try:
                fork = _hex_bytes(genesis.get("genesis_fork_version"), 4, "genesis_fork_version")
                root = _hex_bytes(genesis.get("genesis_validators_root"), 32, "genesis_validators_root")
                genesis_time = int(genesis.get("genesis_time", ""))
            except (BNError, ValueError) as error:
                raise ChainMismatch(f"beacon node {url}: unreadable genesis ({error})") from None
            # a BN with a fork active from genesis may answer that fork's version (Lodestar 1.5.1,
            # altair at epoch 0: 0x01000001); its spec's GENESIS_FORK_VERSION is then the lock's
            spec_fork = str(spec.get("GENESIS_FORK_VERSION", "")).lower()
            if fork != fork_version and spec_fork != "0x" + fork_version.hex():
                raise ChainMismatch(
                    f"beacon node {url} is on another chain: genesis fork version 0x{fork.hex()}, "
                    f"the cluster lock says 0x{fork_version.hex()}"
                )
            if pinned and root != genesis_validators_root:
                raise ChainMismatch(
                    f"beacon node {url} is on another chain: genesis validators root 0x{root.hex()}, "
                    f"the cluster lock says 0x{genesis_validators_root.hex()}"
                )
            compared = {k: v for k, v in spec.items() if _is_chain_key(k)}
            compared["genesis_validators_root"], compared["genesis_time"] = root.hex(), genesis_time
            if info is None:
                info = ChainInfo(genesis_time, root, fork, dict(spec), dict(genesis), unreachable)
                keys, first_url = compared, url
                continue
            differing = sorted(k for k in keys.keys() | compared.keys() if keys.get(k) != compared.get(k))
            if differing:
                name = differing[0]
                raise ChainMismatch(
                    f"beacon nodes {first_url} and {url} disagree on {name} "
                    f"({keys.get(name)!r} vs {compared.get(name)!r}): not one chain"
                )
        assert info is not None
        for url in unreachable:
            log.warning("beacon node %s did not answer genesis/spec at start", url)
        return info

    # ---- validators and duties -------------------------------------------------------------------------

    async def validators(self, ids: Sequence[str], state_id: str = "head") -> list[Json]:
        """Validator records by pubkey or index: POST (one request), else GET in chunks of
        GET_IDS_PER_REQUEST ids (older BNs, e.g. Lodestar 1.5.1)."""
        if not ids:
            return []
        path = f"/eth/v1/beacon/states/{state_id}/validators"
        chunks = [list(ids[i : i + GET_IDS_PER_REQUEST]) for i in range(0, len(ids), GET_IDS_PER_REQUEST)]

        def get(chunk: list[str]) -> _Variant:
            return _Variant("get", "GET", path, params=tuple(("id", i) for i in chunk))

        post = _Variant("post", "POST", path, body={"ids": list(ids)}, has_body=True)
        first = await self.call("validators", [post, get(chunks[0])])
        data = first.data
        if not isinstance(data, list):
            raise BNError("validators: data is not a list")
        if first.variant == "post" or len(chunks) == 1:
            return data
        rest = await asyncio.gather(
            *(self._data("validators", [get(c)], family="validators_get") for c in chunks[1:])
        )
        for part in rest:
            if not isinstance(part, list):
                raise BNError("validators: data is not a list")
            data += part
        return data

    async def resolve_validators(self, pubkeys: Sequence[str]) -> tuple[ValidatorInfo, ...]:
        """The model's `ValidatorsResolved` content: index and status of each known pubkey."""
        out = []
        for record in await self.validators(pubkeys):
            try:
                pubkey = record["validator"]["pubkey"].lower()
                out.append(ValidatorInfo(pubkey, int(record["index"]), str(record.get("status", ""))))
            except (KeyError, TypeError, ValueError, AttributeError):
                raise BNError(f"validators: a malformed record {str(record)[:120]}") from None
        return tuple(out)

    async def _duties(self, variant: _Variant) -> Duties:
        response = await self.call("duties", [variant])
        body = response.body
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise BNError(f"duties: {response.url} answered without a data list")
        return Duties(
            tuple(body["data"]), str(body.get("dependent_root", "")), body.get("execution_optimistic") is True
        )

    async def attester_duties(self, epoch: int, indices: Sequence[int]) -> Duties:
        body = [str(i) for i in indices]
        return await self._duties(
            _Variant("v1", "POST", f"/eth/v1/validator/duties/attester/{epoch}", body=body, has_body=True)
        )

    async def proposer_duties(self, epoch: int) -> Duties:
        return await self._duties(_Variant("v1", "GET", f"/eth/v1/validator/duties/proposer/{epoch}"))

    async def sync_duties(self, epoch: int, indices: Sequence[int]) -> Duties:
        body = [str(i) for i in indices]
        return await self._duties(
            _Variant("v1", "POST", f"/eth/v1/validator/duties/sync/{epoch}", body=body, has_body=True)
        )

    # ---- data to sign -----------------------------------------------------------------------------------

    async def answer(self, call: BeaconCall) -> Json:
        """The BN's answer to one call a data request makes (model/node/fetch.py)."""
        match call:
            case AttestationDataCall(slot=slot, committee_index=ci):
                return await self.attestation_data(slot, ci)
            case BlockCall(slot=slot, randao_reveal=reveal):
                return await self.produce_block(slot, reveal)
            case AggregateCall(slot=slot, attestation_data_root=root, committee_index=ci):
                _, aggregate = await self.aggregate_attestation(slot, root, ci)
                return aggregate
            case ContributionCall(slot=slot, subcommittee_index=sub, beacon_block_root=root):
                return await self.sync_committee_contribution(slot, sub, root)
        raise TypeError(f"not a beacon call: {call!r}")

    async def attestation_data(self, slot: int, committee_index: int) -> Json:
        params = (("slot", str(slot)), ("committee_index", str(committee_index)))
        return await self._data(
            "attestation_data", [_Variant("v1", "GET", "/eth/v1/validator/attestation_data", params)]
        )

    async def produce_block(
        self,
        slot: int,
        randao_reveal: str,
        graffiti: str | None = None,
        builder_boost_factor: int | None = None,
    ) -> dict[str, Any]:
        """{"version", "blinded", "block"} (the model's PROPOSER data): v3, else v2, else v1 (phase0)."""
        params = [("randao_reveal", randao_reveal)] + ([("graffiti", graffiti)] if graffiti else [])
        v3_params = params + (
            [("builder_boost_factor", str(builder_boost_factor))] if builder_boost_factor is not None else []
        )
        response = await self.call(
            "produce_block",
            [
                _Variant("v3", "GET", f"/eth/v3/validator/blocks/{slot}", tuple(v3_params)),
                _Variant("v2", "GET", f"/eth/v2/validator/blocks/{slot}", tuple(params)),
                _Variant("v1", "GET", f"/eth/v1/validator/blocks/{slot}", tuple(params)),
            ],
        )
        body = response.body
        if not isinstance(body, dict) or "data" not in body:
            raise BNError(f"produce_block: {response.url} answered without data")
        blinded = False
        if response.variant == "v3":
            flag = response.headers.get(
                "eth-execution-payload-blinded", body.get("execution_payload_blinded")
            )
            blinded = flag is True or str(flag).lower() == "true"
        version = response.version or ("phase0" if response.variant == "v1" else "")
        if not version:
            raise BNError(f"produce_block: {response.url} did not say which fork the block is for")
        return {"version": version, "blinded": blinded, "block": body["data"]}

    async def aggregate_attestation(
        self, slot: int, attestation_data_root: str, committee_index: int
    ) -> tuple[str, Json]:
        """(fork version, Attestation): v2, else v1 (pre-electra BNs)."""
        v1 = (("attestation_data_root", attestation_data_root), ("slot", str(slot)))
        response = await self.call(
            "aggregate_attestation",
            [
                _Variant(
                    "v2",
                    "GET",
                    "/eth/v2/validator/aggregate_attestation",
                    (*v1, ("committee_index", str(committee_index))),
                ),
                _Variant("v1", "GET", "/eth/v1/validator/aggregate_attestation", v1),
            ],
        )
        return response.version, response.data

    async def sync_committee_contribution(
        self, slot: int, subcommittee_index: int, beacon_block_root: str
    ) -> Json:
        params = (
            ("slot", str(slot)),
            ("subcommittee_index", str(subcommittee_index)),
            ("beacon_block_root", beacon_block_root),
        )
        return await self._data(
            "sync_committee_contribution",
            [_Variant("v1", "GET", "/eth/v1/validator/sync_committee_contribution", params)],
        )

    # ---- submissions ---------------------------------------------------------------------------------------

    def _versioned_post(self, v1_path: str, v2_path: str, body: Json, version: str) -> list[_Variant]:
        header = ((ETH_CONSENSUS_VERSION, version),) if version else ()
        v2 = _Variant("v2", "POST", v2_path, body=body, has_body=True, headers=header)
        v1 = _Variant("v1", "POST", v1_path, body=body, has_body=True)
        return [v2] if is_electra_or_later(version) else [v1, v2] if version else [v1]

    async def submit_attestations(self, attestations: Sequence[Json], version: str) -> BNResponse:
        """electra and later: v2 with SingleAttestation objects; before: v1 (v2 if v1 is missing)."""
        variants = self._versioned_post(
            "/eth/v1/beacon/pool/attestations",
            "/eth/v2/beacon/pool/attestations",
            list(attestations),
            version,
        )
        return await self.call("submit", variants, family="submit_attestations", submit=True)

    async def submit_aggregate_and_proofs(self, aggregates: Sequence[Json], version: str) -> BNResponse:
        variants = self._versioned_post(
            "/eth/v1/validator/aggregate_and_proofs",
            "/eth/v2/validator/aggregate_and_proofs",
            list(aggregates),
            version,
        )
        return await self.call("submit", variants, family="submit_aggregate_and_proofs", submit=True)

    async def submit_block(self, block: Json, version: str, *, blinded: bool = False) -> BNResponse:
        """v2 with Eth-Consensus-Version, v1 on BNs without it."""
        kind = "blinded_blocks" if blinded else "blocks"
        header = ((ETH_CONSENSUS_VERSION, version),) if version else ()
        variants = [
            _Variant("v2", "POST", f"/eth/v2/beacon/{kind}", body=block, has_body=True, headers=header),
            _Variant("v1", "POST", f"/eth/v1/beacon/{kind}", body=block, has_body=True, headers=header),
        ]
        return await self.call("submit_block", variants, family=f"submit_{kind}", submit=True)

    async def submit_sync_committee_messages(self, messages: Sequence[Json]) -> BNResponse:
        variant = _Variant(
            "v1", "POST", "/eth/v1/beacon/pool/sync_committees", body=list(messages), has_body=True
        )
        return await self.call("submit", [variant], family="submit_sync_committee_messages", submit=True)

    async def submit_contribution_and_proofs(self, contributions: Sequence[Json]) -> BNResponse:
        path = "/eth/v1/validator/contribution_and_proofs"
        variant = _Variant("v1", "POST", path, body=list(contributions), has_body=True)
        return await self.call("submit", [variant], family="submit_contribution_and_proofs", submit=True)

    async def submit(self, kind: SubmissionKind, body: Json, version: str = "") -> BNResponse:
        """Execute a model `SubmitToBN` (kind, body, version)."""
        if kind is SubmissionKind.BLOCK:
            blinded = isinstance(body, dict) and _is_blinded(body)
            return await self.submit_block(body, version, blinded=blinded)
        objects = body if isinstance(body, list) else [body]
        if kind is SubmissionKind.ATTESTATIONS:
            return await self.submit_attestations(objects, version)
        if kind is SubmissionKind.AGGREGATE_AND_PROOFS:
            return await self.submit_aggregate_and_proofs(objects, version)
        if kind is SubmissionKind.SYNC_COMMITTEE_MESSAGES:
            return await self.submit_sync_committee_messages(objects)
        if kind is SubmissionKind.CONTRIBUTION_AND_PROOFS:
            return await self.submit_contribution_and_proofs(objects)
        if kind is SubmissionKind.VOLUNTARY_EXIT:  # one SignedVoluntaryExit object
            path = "/eth/v1/beacon/pool/voluntary_exits"
            variant = _Variant("v1", "POST", path, body=body, has_body=True)
            return await self.call("submit", [variant], family="submit_voluntary_exit", submit=True)
        if kind is SubmissionKind.REGISTRATIONS:
            return await self.register_validators(objects)
        if kind is SubmissionKind.PREPARE_PROPOSER:
            path = "/eth/v1/validator/prepare_beacon_proposer"
            variant = _Variant("v1", "POST", path, body=objects, has_body=True)
            return await self.call("submit", [variant], family="prepare_beacon_proposer", submit=True)
        raise ValueError(f"unknown submission kind {kind!r}")

    async def register_validators(self, registrations: Sequence[Json]) -> BNResponse:
        """POST /eth/v1/validator/register_validator in bodies of at most REGISTRATION_BATCH, one after
        another, as validator clients send them (Lighthouse's VC: 500). A BN hands them to relays that
        check every signature, so one body of a large cluster's registrations outlasts any timeout: the
        devnet BN took 7 s over 5,000 at start-up, past the 4 s the node waits. The first body refused
        ends the submission; a 400's failures are numbered over the whole list, as if sent in one."""
        path = "/eth/v1/validator/register_validator"
        answer: BNResponse | None = None
        for start in range(0, max(len(registrations), 1), REGISTRATION_BATCH):
            body = list(registrations[start : start + REGISTRATION_BATCH])
            variant = _Variant("v1", "POST", path, body=body, has_body=True)
            try:
                answer = await self.call("submit", [variant], family="register_validator", submit=True)
            except BNResponseError as error:
                raise BNResponseError(error.url, error.status, _failures_from(error.body, start)) from None
        assert answer is not None
        return answer

    # ---- events ------------------------------------------------------------------------------------------

    async def events(self, topics: Iterable[str]) -> AsyncIterator[tuple[str, Json]]:
        """(event name, data) from the first BN that opens `/eth/v1/events` (server-sent events). The
        stream has no read timeout; it ends when the BN closes it (the caller reconnects)."""
        params = [("topics", t) for t in topics]
        failures = []
        for url in self.candidates():
            started = time.monotonic()
            try:
                response = await self.session.get(
                    self.real_url(url) + "/eth/v1/events",
                    params=params,
                    headers={"Accept": "text/event-stream", "Accept-Encoding": "identity"},
                    timeout=aiohttp.ClientTimeout(
                        total=None, sock_connect=self.timeout("default"), sock_read=None
                    ),
                )
            except (aiohttp.ClientError, OSError, TimeoutError) as error:
                self.record(url, "events", started, self.scrub(f"connection: {error}"))
                failures.append(self.scrub(f"{url}: {error}"))
                continue
            if response.status != 200:
                response.release()
                self.record(url, "events", started, f"status_{response.status}: events")
                failures.append(f"{url}: {response.status}")
                continue
            self.record(url, "events", started)
            async with response:
                async for name, data in _server_sent_events(response.content):
                    yield name, data
            return
        raise BNUnavailable("events: no beacon node opened the stream (" + "; ".join(failures) + ")")


def _message(body: Json) -> str:
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])[:200]
    return str(body)[:200] if body is not None else ""


ALREADY_KNOWN_MARKERS: Final = ("already_known", "already known", "duplicate")


def _already_known(body: Json) -> bool:
    """The BN's error says it has this message already (every failure, if it lists some)."""
    messages = [_message(body)]
    if isinstance(body, dict) and isinstance(body.get("failures"), list) and body["failures"]:
        messages = [_message(f) for f in body["failures"]]
    return all(any(m in text.lower() for m in ALREADY_KNOWN_MARKERS) for text in messages)


def _is_chain_key(key: str) -> bool:
    return key in (
        "SECONDS_PER_SLOT",
        "SLOTS_PER_EPOCH",
        "GENESIS_FORK_VERSION",
        "DEPOSIT_CONTRACT_ADDRESS",
    ) or (key.endswith(("_FORK_VERSION", "_FORK_EPOCH")))


def _is_blinded(block: dict[str, Any]) -> bool:
    message = block.get("message", {})
    body = message.get("body", {}) if isinstance(message, dict) else {}
    return isinstance(body, dict) and "execution_payload_header" in body


async def _server_sent_events(stream: aiohttp.StreamReader) -> AsyncIterator[tuple[str, Json]]:
    name, data_lines = "message", list[str]()
    while True:
        try:
            line = await stream.readline()
        except ValueError:  # a line longer than the reader's limit: skip the event
            name, data_lines = "message", []
            continue
        if not line:
            return
        text = line.decode(errors="replace").rstrip("\r\n")
        if not text:
            if data_lines:
                raw = "\n".join(data_lines)
                with contextlib.suppress(ValueError):
                    yield name, json.loads(raw)
            name, data_lines = "message", []
        elif text.startswith(":"):
            continue
        else:
            key, _, value = text.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if key == "event":
                name = value
            elif key == "data":
                data_lines.append(value)
