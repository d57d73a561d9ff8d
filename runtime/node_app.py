"""The node process: every runtime part wired in one place, started in order, stopped in reverse.

Start: the node folder (lock, identity key, keystores checked), the batch-verification secret, the BN
client and its chain check against the lock (a mismatch is fatal: `ConfigError`), the model's config
from the BN's spec and genesis, the store (WAL, synchronous=FULL) and the `Started` event built from
it, the trace recorder (in the data folder), the VC-facing API with the reverse proxy behind it, in
signer mode the share keys and the Remote Signing API, the peer transport, the node runner; then ticks on the slot clock, the BN's head events as `HeadChanged`,
and a status line per epoch (peers, clock offsets, BN health).

Stop (SIGTERM, SIGINT or `stop()`): the API stops accepting, the runner finishes the step in progress
(a Persist it emitted is durable before the loop ends), then timers, peers, BN sessions, the trace
(flushed and fsync'ed) and the store are closed. Decides nothing about the protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from covalidator.model.cluster.config import NodeConfig, hex0x
from covalidator.model.crypto import bls
from covalidator.model.node.events import HeadChanged, Tick
from covalidator.runtime.bn_client import BeaconNodeClient, BNUnavailable, ChainInfo, ChainMismatch
from covalidator.runtime.duty_tracker import DutyTracker
from covalidator.runtime.http_guard import HttpGuard
from covalidator.runtime.metrics import Counters, Fanout, NodeIdentity, NodeMetrics, Snapshot
from covalidator.runtime.monitoring import Monitoring
from covalidator.runtime.node_runner import NodeRunner, wall_ms
from covalidator.runtime.node_setup import ConfigError, NodeFiles, load_node_files, node_config
from covalidator.runtime.peer_tls import client_context, server_context
from covalidator.runtime.peers import PeerTransport
from covalidator.runtime.proxy import ReverseProxy
from covalidator.runtime.share_keys import ShareSigner, load_share_secrets
from covalidator.runtime.signer_api import SignerAPI
from covalidator.runtime.store import Store, StoreError
from covalidator.runtime.trace import TraceHeader, TraceRecorder
from covalidator.runtime.validator_api import ValidatorAPI

log = logging.getLogger("covalidator.app")

STORE_FILE = "covalidator.sqlite"
CHAIN_RECHECK_S = 30.0  # how often each BN's genesis is asked again (a BN replaced by another chain's)
TRACE_DIR = "trace"
KEEP_DECIDED_EPOCHS = 64  # decided values and outcomes older than this are pruned (never slashing records)


@dataclass(frozen=True)
class Settings:
    lock: Path
    node_dir: Path
    beacon_nodes: tuple[str, ...]
    fallback_beacon_nodes: tuple[str, ...] = ()
    validator_api: tuple[str, int] = ("127.0.0.1", 3600)
    p2p: tuple[str, int] | None = None  # default: this operator's address in the lock
    data_dir: Path | None = None  # default: <node_dir>/data
    round_ms: int = 1_000
    trace_max_bytes: int = 64 * 2**20
    trace_keep: int | None = 20
    bn_wait_s: float | None = None  # give up if no BN answers genesis/spec within this (None: wait)
    monitoring: tuple[str, int] | None = None  # /metrics, /livez, /readyz (the CLI: 127.0.0.1:3620)
    signer_api: tuple[str, int] | None = None  # signer mode: the Remote Signing API (off by default)
    signer_api_remote: bool = False  # serve it on a non-loopback address (the operator's explicit choice)
    vc_api_vhosts: tuple[str, ...] = ()  # Host names the VC-facing APIs accept besides IPs and localhost
    vc_api_token: str | None = None  # required of every VC-facing request when set (runtime/http_guard)
    p2p_tls: bool = True  # peer traffic over TLS 1.3 pinned to the lock's identity keys

    @property
    def data(self) -> Path:
        return self.data_dir if self.data_dir is not None else self.node_dir / "data"


def parse_host_port(text: str, what: str) -> tuple[str, int]:
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not (port.isascii() and port.isdigit()) or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{what} must be HOST:PORT, got {text!r}")
    return host, int(port)


def is_loopback(host: str) -> bool:
    return host == "localhost" or host.startswith("127.") or host == "::1"


def listen_address(lock_address: str) -> tuple[str, int]:
    """Where to listen for peers by default: the lock's port, on every interface unless the lock's
    address is a loopback one (a local cluster); the lock's host may be a public name behind NAT."""
    host, port = parse_host_port(lock_address, "the lock's peer address")
    return (host if is_loopback(host) else "0.0.0.0", port)


def refuse_lost_store(data: Path) -> None:
    """A node that has run before (its trace is there) but whose store is missing or empty would
    start on an empty slashing history: refused, with what to do."""
    store = data / STORE_FILE
    if store.exists() and store.stat().st_size > 0:
        return
    if any((data / TRACE_DIR).glob("*.jsonl")):
        raise ConfigError(
            f"{store} is missing or empty, but this node has run before (its trace is in {data / TRACE_DIR}): "
            "it will not start on an empty slashing history. Restore the store from a backup, or import "
            f"the validators' slashing history first (covalidator slashing import FILE --db {store})"
        )


class NodeApp:
    def __init__(self, settings: Settings, clock: Callable[[], int] = wall_ms) -> None:
        self.settings = settings
        self.clock = clock
        self.stopping = asyncio.Event()
        self.files: NodeFiles | None = None
        self.bn: BeaconNodeClient | None = None
        self.store: Store | None = None
        self.trace: TraceRecorder | None = None
        self.transport: PeerTransport | None = None
        self.runner: NodeRunner | None = None
        self.proxy: ReverseProxy | None = None
        self.api: ValidatorAPI | None = None
        self.signer_api: SignerAPI | None = None
        self.signer_port = 0
        self.metrics = Counters()  # the model's Metric actions and duty outcomes, in the status
        self.prometheus: NodeMetrics | None = None
        self.tracker: DutyTracker | None = None
        self.monitoring: Monitoring | None = None
        self.config: NodeConfig | None = None
        self.chain_info: ChainInfo | None = None  # genesis and spec as the BNs answered at start
        self.api_port = 0
        self._web: web.AppRunner | None = None
        self._signer_web: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._bn_version = ""
        self.failed = False  # a part of the node ended unexpectedly (exit 1)

    def stop(self) -> None:
        self.stopping.set()

    # -- start ---------------------------------------------------------------------------------------

    async def start(self) -> bool:
        """Everything up; False when asked to stop before the BN answered."""
        s = self.settings
        self.files = files = load_node_files(s.lock, s.node_dir)
        if s.monitoring is not None:  # /livez answers while the node waits for its BN
            self.monitoring = Monitoring(self, *s.monitoring)
            try:
                await self.monitoring.start()
            except OSError as error:
                where = f"{s.monitoring[0]}:{s.monitoring[1]}"
                raise ConfigError(f"cannot serve monitoring on {where}: {error.strerror or error}") from None
        bls.use_batch_secret(os.urandom(32))  # batch-verification weights no peer can predict
        signer: ShareSigner | None = None
        if s.signer_api is not None:
            if not is_loopback(s.signer_api[0]) and not s.signer_api_remote:
                raise ConfigError(
                    f"--signer-api {s.signer_api[0]}:{s.signer_api[1]} is not a loopback address: anyone who "
                    "reaches it can ask for signatures; add --signer-api-allow-remote to serve it there anyway"
                )
            secrets = await asyncio.to_thread(load_share_secrets, files.lock, files.node_index, s.node_dir)
            signer = ShareSigner(secrets)
        self.bn = BeaconNodeClient(s.beacon_nodes, s.fallback_beacon_nodes)
        info = self.chain_info = await self._check_chain(files)
        if info is None:
            return False
        round_ms: dict[str, Any] = {"round_duration_ms": s.round_ms}
        if signer is not None:
            round_ms["signs_own_partials"] = True
        self.config = config = node_config(files.lock, files.share_index, info.spec, info.genesis, round_ms)
        try:
            s.data.mkdir(parents=True, exist_ok=True)
            refuse_lost_store(s.data)
            self.store = Store(
                s.data / STORE_FILE, info.genesis_validators_root, cluster=files.lock.lock_hash
            )
        except StoreError as error:
            raise ConfigError(str(error)) from None
        except OSError as error:
            raise ConfigError(f"data folder {s.data}: {error.strerror or error}") from None
        header = TraceHeader(
            lock_hash=hex0x(files.lock.lock_hash),
            share_index=files.share_index,
            spec=info.spec,
            genesis=info.genesis,
            config=round_ms,
            lock=files.lock_json,
        )
        try:
            self.trace = TraceRecorder(
                s.data / TRACE_DIR, header, max_bytes=s.trace_max_bytes, keep=s.trace_keep
            )
        except OSError as error:
            raise ConfigError(f"trace folder {s.data / TRACE_DIR}: {error.strerror or error}") from None
        clock = config.chain.clock
        since = max(0, clock.slot_at(self.clock()) - 2 * clock.slots_per_epoch)
        pubkeys = [v.group for v in config.validators]
        started = await asyncio.to_thread(
            self.store.started, self.clock(), pubkeys, since_slot=since, slots_per_epoch=clock.slots_per_epoch
        )
        host, port = s.p2p or listen_address(files.lock.operators[files.node_index].address)
        self.tracker = DutyTracker(clock.slots_per_epoch)
        self.prometheus = NodeMetrics(
            NodeIdentity(files.lock.name, hex0x(files.lock.lock_hash), files.share_index)
        )
        self.prometheus.add_snapshots(self._snapshot)
        self.bn.observer = self.prometheus.bn_call
        sink = Fanout(self.metrics, self.prometheus, self.tracker)
        self.runner = runner = NodeRunner(
            config, self.store, self.bn, None, self.trace, metrics=sink, clock=self.clock, signer=signer
        )
        runner.on_commit = self.prometheus.store_committed
        faults = os.environ.get("COVALIDATOR_INJECT_STEP_FAULTS")  # "RATE[:SEED]": fault-injection tests only
        if faults:
            rate, _, seed = faults.partition(":")
            runner.fault_rate = float(rate)
            runner._faults = random.Random(int(seed or 0) * 1000 + files.share_index)  # each node its own
            log.warning("fault injection: %.1f%% of steps will fail", runner.fault_rate * 100)
        tls: dict[str, Any] = {}
        if s.p2p_tls:  # encrypted, each peer pinned to its identity key in the lock (runtime/peer_tls.py)
            tls = {"server_ssl": server_context(files.identity_key), "client_ssl": client_context()}
        self.transport = PeerTransport(
            files.lock,
            files.node_index,
            files.identity_key,
            host,
            port,
            runner.on_peer,
            wall_ms=self.clock,
            **tls,
        )
        runner.transport = self.transport  # queues frames until the connections are up
        # the loop first, so Started is the model's first event: nothing from the VC or the peers can
        # arrive before it (they would be dropped as "before Started")
        self._spawn(runner.run(started), "runner")
        self.proxy = ReverseProxy(self.bn)
        self.api = ValidatorAPI(
            runner,
            config,
            self.proxy.forward,
            lambda: self._bn_version,
            status=self.status,
            guard=HttpGuard.of(s.vc_api_vhosts, s.vc_api_token),
        )
        self.api.on_request = self.prometheus.vc_request
        await self._serve_api()
        if s.signer_api is not None:
            self.signer_api = SignerAPI(runner, config, HttpGuard.of(s.vc_api_vhosts, s.vc_api_token))
            await self._serve_signer_api(s.signer_api)
        try:
            await self.transport.start()
        except OSError as error:
            raise ConfigError(
                f"cannot listen for peers on {host}:{port}: {error.strerror or error}"
            ) from None
        self._spawn(self._ticks(), "ticks")
        self._spawn(self._heads(), "heads")
        self._spawn(self._housekeeping(), "housekeeping")
        self._spawn(self._chain_watch(), "chain-watch")
        log.info(
            "covalidator node up",
            extra={
                "fields": {
                    "node": files.node_index,
                    "share_index": files.share_index,
                    "validators": len(config.validators),
                    "threshold": f"{config.threshold}/{config.n}",
                    "validator_api": f"{s.validator_api[0]}:{self.api_port}",
                    "signer_api": f"{s.signer_api[0]}:{self.signer_port}" if s.signer_api else "off",
                    "monitoring": f"{self.monitoring.host}:{self.monitoring.port}"
                    if self.monitoring
                    else "off",
                    "p2p": f"{host}:{self.transport.port}",
                    "slot": clock.slot_at(self.clock()),
                    "restored_decided": len(started.decided),
                    "data": str(s.data),
                }
            },
        )
        return True

    async def _check_chain(self, files: NodeFiles) -> ChainInfo | None:
        assert self.bn is not None
        delay, waited = 0.5, 0.0
        while not self.stopping.is_set():
            try:
                info = await self.bn.check_chain(files.lock.fork_version, files.lock.genesis_validators_root)
            except ChainMismatch as error:
                raise ConfigError(str(error)) from None
            except BNUnavailable as error:
                limit = self.settings.bn_wait_s
                if limit is not None and waited >= limit:
                    raise ConfigError(f"no beacon node answered within {limit:g} s: {error}") from None
                log.warning("waiting for a beacon node", extra={"fields": {"error": str(error)}})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), delay)
                waited += delay
                delay = min(delay * 2, 5.0)
                continue
            with contextlib.suppress(Exception):
                self._bn_version = await self.bn.node_version()
            return info
        return None

    async def _serve_api(self) -> None:
        assert self.api is not None
        host, port = self.settings.validator_api
        self._web = web.AppRunner(self.api.app(), access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._web.setup()
        site = web.TCPSite(self._web, host, port)
        try:
            await site.start()
        except OSError as error:
            raise ConfigError(
                f"cannot serve the validator API on {host}:{port}: {error.strerror or error}"
            ) from None
        server = getattr(site, "_server", None)
        self.api_port = server.sockets[0].getsockname()[1] if server is not None and server.sockets else port

    async def _serve_signer_api(self, address: tuple[str, int]) -> None:
        assert self.signer_api is not None
        host, port = address
        self._signer_web = web.AppRunner(
            self.signer_api.app(), access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._signer_web.setup()
        site = web.TCPSite(self._signer_web, host, port)
        try:
            await site.start()
        except OSError as error:
            raise ConfigError(
                f"cannot serve the signer API on {host}:{port}: {error.strerror or error}"
            ) from None
        server = getattr(site, "_server", None)
        self.signer_port = (
            server.sockets[0].getsockname()[1] if server is not None and server.sockets else port
        )

    def _spawn(self, work: Any, name: str) -> None:
        task = asyncio.create_task(work, name=name)
        task.add_done_callback(self._on_task_done)
        self._tasks.append(task)

    def _on_task_done(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled() or self.stopping.is_set():
            return
        error = task.exception()
        log.error("%s ended unexpectedly: %r; stopping the node", task.get_name(), error)
        self.failed = True
        self.stop()

    # -- inputs from the clock and the BN ------------------------------------------------------------

    async def _ticks(self) -> None:
        """A Tick at every third of a slot (the model's own timers carry the exact duty times)."""
        assert self.runner is not None and self.config is not None
        clock = self.config.chain.clock
        period = max(250, clock.slot_ms // 3)
        while True:
            now = self.clock()
            next_ms = now - (now - clock.genesis_time_ms) % period + period
            await asyncio.sleep(max(0.0, (next_ms - self.clock()) / 1000))
            self.runner.submit(Tick(max(next_ms, self.clock())))

    async def _heads(self) -> None:
        """The BN's head events as HeadChanged (duties refetched on a changed dependent root)."""
        assert self.bn is not None and self.runner is not None
        delay = 1.0
        while True:
            try:
                async for name, data in self.bn.events(["head"]):
                    delay = 1.0
                    event = head_changed(name, data)
                    if event is not None:
                        self.runner.submit(event)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.debug("head events: %s", error)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 12.0)

    async def _chain_watch(self) -> None:
        """Every CHAIN_RECHECK_S: a BN that now answers another chain's genesis is set aside (never
        asked, the status names it) until it answers this chain's again (`BeaconNodeClient.recheck_chain`)."""
        assert self.bn is not None and self.chain_info is not None
        while True:
            await asyncio.sleep(CHAIN_RECHECK_S)
            try:
                await self.bn.recheck_chain(self.chain_info)
            except Exception as error:  # never fatal: the verdicts stay as they were
                log.warning(
                    "could not recheck the beacon nodes' chain", extra={"fields": {"error": str(error)}}
                )

    async def _housekeeping(self) -> None:
        """Once per epoch: prune the node memory in the store, log one status line."""
        assert self.config is not None and self.store is not None
        clock = self.config.chain.clock
        epoch_ms = clock.slot_ms * clock.slots_per_epoch
        while True:
            await asyncio.sleep(epoch_ms / 1000)
            keep_from = clock.slot_at(self.clock()) - KEEP_DECIDED_EPOCHS * clock.slots_per_epoch
            if keep_from > 0:
                try:
                    await asyncio.to_thread(self.store.prune_node_memory, keep_from)
                except Exception as error:  # the store's duty memory grows a little longer; not fatal
                    log.warning("could not prune the store", extra={"fields": {"error": str(error)}})
            log.info("status", extra={"fields": self._status_fields()})
            if self.tracker is not None:
                self.tracker.flush(clock.epoch_at(self.clock()) - 2)  # those epochs' duties are over

    # -- status --------------------------------------------------------------------------------------

    def _status_fields(self) -> dict[str, Any]:
        peers = self.transport.stats() if self.transport is not None else {}
        connected = len(self.transport.connected()) if self.transport is not None else 0
        offsets = [
            abs(p.get("clock_offset_ms") or 0)
            for p in (peers.get("peers") or {}).values()
            if isinstance(p, dict)
        ]
        runner = self.runner
        return {
            "slot": self.config.chain.clock.slot_at(self.clock()) if self.config else None,
            "peers_connected": connected,
            "max_clock_offset_ms": max(offsets, default=0),
            "steps": runner.steps if runner else 0,
            "step_errors": runner.step_errors if runner else 0,
            "trace_failures": runner.trace_failures if runner else 0,
            "restarts_from_store": runner.restarts if runner else 0,
            "queue": runner.queue.qsize() if runner else 0,
            "peer_queue_dropped": dict(runner.peer_queue_dropped) if runner else {},
            "vc_api_refused": {
                **(dict(self.api.guard.refused) if self.api else {}),
                **{
                    f"signer_{k}": v
                    for k, v in (self.signer_api.guard.refused if self.signer_api else {}).items()
                },
            },
            "held_requests": (self.api.held if self.api else 0)
            + (self.signer_api.held if self.signer_api else 0),
            "monitoring": f"{self.monitoring.host}:{self.monitoring.port}" if self.monitoring else None,
        }

    def identity_fields(self) -> dict[str, Any]:
        if self.files is None:
            return {}
        lock = self.files.lock
        return {
            "name": lock.name,
            "lock_hash": hex0x(lock.lock_hash),
            "share_index": self.files.share_index,
            "nodes": lock.nodes,
            "threshold": lock.threshold,
            "validators": len(lock.distributed_validators),
        }

    def _snapshot(self) -> Snapshot:
        peers = self.transport.stats() if self.transport is not None else {}
        bns = self.bn.stats() if self.bn is not None else {}
        last = self.prometheus.last_bn_url if self.prometheus is not None else ""
        seen = self.api.seen_vc_ms if self.api is not None else 0
        return Snapshot(
            peers={int(i): p for i, p in (peers.get("peers") or {}).items()},
            transport_dropped={str(k): int(v) for k, v in (peers.get("dropped") or {}).items()},
            beacon_nodes=bns,
            fallback_in_use=bool(last) and bns.get(last, {}).get("role") == "fallback",
            held_vc_requests=self.api.held if self.api is not None else 0,
            vc_seen_seconds_ago=(self.clock() - seen) / 1000 if seen else None,
            ready=self.monitoring is not None and not self.monitoring.reasons(),
        )

    def status(self) -> dict[str, Any]:
        return {
            **self._status_fields(),
            "share_index": self.files.share_index if self.files else None,
            "peers": self.transport.stats() if self.transport is not None else {},
            "beacon_nodes": self.bn.stats() if self.bn is not None else {},
            "proxy": {"forwarded": self.proxy.forwarded, "failed": self.proxy.failed} if self.proxy else {},
            "metrics": self.metrics.as_json(),
        }

    # -- stop ----------------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop in reverse order; safe after a partial start."""
        self.stopping.set()
        if self._web is not None:
            await self._web.cleanup()  # no new VC requests; held ones end with the connection
        if self._signer_web is not None:
            await self._signer_web.cleanup()
        runner_task = next((t for t in self._tasks if t.get_name() == "runner"), None)
        if self.runner is not None:
            self.runner.stop()
            if runner_task is not None:
                with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(runner_task), 30.0)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.runner is not None:
            await self.runner.close()
        if self.tracker is not None:
            self.tracker.flush(2**63)  # the duties that ended, summarized before the process goes
        if self.monitoring is not None:
            await self.monitoring.stop()
        if self.transport is not None:
            await self.transport.stop()
        if self.proxy is not None:
            await self.proxy.close()
        if self.bn is not None:
            await self.bn.close()
        if self.trace is not None:
            try:
                self.trace.close()
            except OSError as error:  # the disk that stopped the tracing (NodeRunner._trace_failed)
                log.error("closing the trace: %s", error)
        if self.store is not None:
            self.store.close()


def head_changed(name: str, data: Any) -> HeadChanged | None:
    """A Beacon-API `head` event as the model's HeadChanged (None when it is not one)."""
    if name != "head" or not isinstance(data, dict):
        return None
    try:
        return HeadChanged(
            int(data["slot"]),
            str(data["block"]),
            str(data.get("previous_duty_dependent_root", "")),
            str(data.get("current_duty_dependent_root", "")),
        )
    except (KeyError, ValueError, TypeError):
        return None


def test_clock() -> Callable[[], int]:
    """The wall clock, or (COVALIDATOR_TEST_CLOCK_SKEW_MS, clock-skew tests only) this node's own clock
    that far off: the model's time, its timers and its peer frames' timestamps all follow it."""
    skew = int(os.environ.get("COVALIDATOR_TEST_CLOCK_SKEW_MS", "0") or 0)
    if not skew:
        return wall_ms
    log.warning("clock skew for tests: this node's clock is %+d ms off", skew)
    return lambda: wall_ms() + skew


async def serve(settings: Settings, ready: Callable[[NodeApp], None] | None = None) -> int:
    """Run a node until SIGTERM/SIGINT; the process exit code (0 clean, 2 config error, 1 failure)."""
    app = NodeApp(settings, clock=test_clock())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, app.stop)
    code, up = 0, False
    try:
        up = await app.start()
        if up:
            if ready is not None:
                ready(app)
            await app.stopping.wait()
            log.info("stopping", extra={"fields": {"reason": "failure" if app.failed else "signal"}})
            code = 1 if app.failed else 0
    finally:
        began = time.monotonic()
        await app.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        if up:
            log.info("stopped", extra={"fields": {"shutdown_ms": int((time.monotonic() - began) * 1000)}})
    return code
