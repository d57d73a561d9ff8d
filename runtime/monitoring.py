"""The monitoring address (default 127.0.0.1:3620): /metrics, /livez, /readyz, and the node's status.

  /metrics                  Prometheus text format (`runtime.metrics`)
  /livez                    200 while the process serves HTTP
  /readyz                   200 {"ready": true} or 503 {"ready": false, "reasons": [...]}: each reason
                            a name and a detail (`READY_REASONS`)
  /covalidator/v1/status    the node's status (peers, BNs, queue) with the duty tracker's summaries,
                            recent failures, and the readiness verdict (what `covalidator status` shows)

Readiness is judged from the parts' own state, plus one probe: every few seconds each BN is asked
/eth/v1/node/syncing (a BN that answers nothing is down). Decides nothing about duties.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from covalidator.model.qbft.rules import quorum_size

log = logging.getLogger("covalidator.monitoring")

STATUS_PATH = "/covalidator/v1/status"
POOL_PATH = "/covalidator/v1/pool"  # exits and registrations (node/pool.py)
MAX_CLOCK_OFFSET_MS = 1_000  # a peer further off than this makes the node not ready
BN_PROBE_S = 2.0

READY_REASONS = {
    "bn_down": "no beacon node answers",
    "bn_syncing": "every beacon node that answers is syncing",
    "too_few_peers": "fewer than a QBFT quorum of the cluster (this node included) connected",
    "clock_offset": "a connected peer's clock is off by more than the bound",
    "vc_not_seen": "the validator client has not called this node for an epoch",
    "store_unavailable": "the store cannot commit (disk full, I/O error): nothing is served or signed",
    "bn_wrong_chain": "every beacon node now answers another chain's genesis (set aside, never asked)",
}


@dataclass(frozen=True)
class HealthInputs:
    bn_syncing: dict[str, bool | None]  # url -> syncing? (None: no answer); {} before the first probe
    n: int
    peers_connected: int  # other nodes whose connection is up
    clock_offsets_ms: dict[int, float]  # connected peer -> offset
    vc_silent_ms: int  # since the VC's last call (or since start when it never called)
    epoch_ms: int
    store_error: str | None = None  # the store's last commit failed with this
    bn_wrong_chain: tuple[str, ...] = ()  # BNs set aside: they answer another chain's genesis now
    bn_count: int = 0


def not_ready_reasons(h: HealthInputs) -> list[dict[str, str]]:
    """Why the node is not ready (empty: ready); each {"reason": name, "detail": text}."""
    reasons: list[dict[str, str]] = []

    def add(name: str, detail: str) -> None:
        reasons.append({"reason": name, "detail": detail})

    answered = {u: s for u, s in h.bn_syncing.items() if s is not None}
    if h.bn_syncing and not answered:
        add("bn_down", f"no answer from {', '.join(sorted(h.bn_syncing))}")
    elif answered and all(answered.values()):
        add("bn_syncing", f"syncing: {', '.join(sorted(answered))}")
    quorum = int(quorum_size(h.n))
    if h.peers_connected + 1 < quorum:
        add(
            "too_few_peers",
            f"{h.peers_connected + 1} of {h.n} connected (this node included), quorum {quorum}",
        )
    # this node's clock against the cluster's: the MEDIAN of the peers' offsets, so one peer whose
    # clock is off, or who lies in its pongs, makes only itself look off, never this node not ready
    if h.clock_offsets_ms:
        ordered = sorted(h.clock_offsets_ms.values())
        middle = ordered[(len(ordered) - 1) // 2 : len(ordered) // 2 + 1]  # one value, or the two middle ones
        median = min(middle, key=abs)  # of two, the one nearer agreement: a single peer never decides
        if abs(median) > MAX_CLOCK_OFFSET_MS:
            each = ", ".join(f"peer {p}: {o:+.0f} ms" for p, o in sorted(h.clock_offsets_ms.items()))
            add("clock_offset", f"median offset to the peers {median:+.0f} ms ({each})")
    if h.vc_silent_ms > h.epoch_ms:
        add(
            "vc_not_seen",
            f"no VC call for {h.vc_silent_ms / 1000:.0f} s (an epoch is {h.epoch_ms / 1000:.0f} s)",
        )
    if h.store_error is not None:
        add("store_unavailable", h.store_error)
    if h.bn_wrong_chain and len(h.bn_wrong_chain) >= h.bn_count:
        add("bn_wrong_chain", ", ".join(h.bn_wrong_chain))
    return reasons


class Monitoring:
    """Serves the endpoints for a running `NodeApp` (read only; its parts may still be None)."""

    def __init__(self, node: Any, host: str, port: int) -> None:
        self.node = node
        self.host, self.port = host, port
        self.bn_syncing: dict[str, bool | None] = {}
        self.started_ms = int(time.time() * 1000)
        self._runner: web.AppRunner | None = None
        self._probe: asyncio.Task[None] | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/livez", self.livez)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get(STATUS_PATH, self.status)
        app.router.add_get(POOL_PATH, self.pool)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()  # OSError (port in use) is the caller's configuration error
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]
        self._probe = asyncio.create_task(self._probe_bns(), name="bn-probe")

    async def stop(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
        if self._runner is not None:
            await self._runner.cleanup()

    async def _probe_bns(self) -> None:
        while True:
            bn = self.node.bn
            if bn is not None:
                try:
                    self.bn_syncing = await bn.check_syncing()
                except Exception as error:  # never fatal: the verdict stays as it was
                    log.debug("BN probe: %s", error)
            await asyncio.sleep(BN_PROBE_S)

    async def pool(self, request: web.Request) -> web.Response:
        """Exits and registrations: per message, the operators whose partials this node holds, and its
        phase (`covalidator exit status`, `covalidator registration status`)."""
        runner = self.node.runner
        if runner is None:
            return web.json_response({"code": 503, "message": "the node is starting"}, status=503)
        return web.json_response({"data": await runner.pool_status()})

    # -- the verdict --------------------------------------------------------------------------------

    def health_inputs(self) -> HealthInputs:
        node = self.node
        config = node.config
        peers = node.transport.stats().get("peers", {}) if node.transport is not None else {}
        connected = {int(i): p for i, p in peers.items() if p.get("connected")}
        clock = config.chain.clock if config is not None else None
        now = int(time.time() * 1000)
        seen = node.api.seen_vc_ms if node.api is not None and node.api.seen_vc_ms else self.started_ms
        return HealthInputs(
            bn_syncing=dict(self.bn_syncing),
            n=config.n if config is not None else 1,
            peers_connected=len(connected),
            clock_offsets_ms={
                i: float(p["clock_offset_ms"])
                for i, p in connected.items()
                if p.get("clock_offset_ms") is not None
            },
            vc_silent_ms=max(0, now - seen),
            epoch_ms=clock.slot_ms * clock.slots_per_epoch if clock is not None else 2**62,
            store_error=node.runner.store_error if node.runner is not None else None,
            bn_wrong_chain=tuple(node.bn.off_chain()) if node.bn is not None else (),
            bn_count=len(node.bn.primaries) + len(node.bn.fallbacks) if node.bn is not None else 0,
        )

    def reasons(self) -> list[dict[str, str]]:
        if self.node.config is None:
            return [{"reason": "starting", "detail": "waiting for the beacon node's genesis and spec"}]
        return not_ready_reasons(self.health_inputs())

    # -- handlers -----------------------------------------------------------------------------------

    async def livez(self, request: web.Request) -> web.Response:
        return web.json_response({"alive": True})

    async def readyz(self, request: web.Request) -> web.Response:
        reasons = self.reasons()
        return web.json_response({"ready": not reasons, "reasons": reasons}, status=503 if reasons else 200)

    async def metrics(self, request: web.Request) -> web.Response:
        prometheus = self.node.prometheus
        body = prometheus.exposition() if prometheus is not None else b""
        return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    async def status(self, request: web.Request) -> web.Response:
        node = self.node
        body: dict[str, Any] = node.status() if node.config is not None else {}
        reasons = self.reasons()
        body["ready"] = {"ready": not reasons, "reasons": reasons}
        body["bn_probe"] = self.bn_syncing
        body["duties"] = node.tracker.as_json() if node.tracker is not None else {}
        body["cluster"] = node.identity_fields()
        return web.json_response(body, dumps=_dumps)


def _dumps(obj: Any) -> str:
    import json

    return json.dumps(obj, default=str)
