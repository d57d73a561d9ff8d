"""A Byzantine co-operator with a valid identity key (issue 16): node 3 of a 4-node devnet is played by
this test, through the node's own peer transport (its lock key, TLS pinned, every frame and QBFT message
signed by it), and sends Hypothesis-generated, well-formed hostile traffic for BYZANTINE_SECONDS (CI: 20)
while the three honest nodes and their VCs do their duties:

- QBFT envelopes for duties now, soon, far ahead and long past, of every kind, every message type, rounds
  near and far, made-up values and bodies, justifications of its own messages (up to past the bound) and
  of honest senders' it cannot sign for;
- batches of partial signatures (up to past the bound) for real and made-up validators, made-up roots
  and signatures, at every duty kind;
- pool partials (voluntary exits, registrations) with made-up messages and signatures.

Pass: every honest node stays up, keeps its peer queue, runner queue and RSS within their bounds, counts
what it dropped by reason, and the cluster's duties keep reaching the chain (3 honest of 4 are a
quorum and hold the threshold); nothing slashable, nothing invalid.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from covalidator.model.duty import DutyId, DutyKind
from covalidator.model.node.events import PartialSignature, PartialSignatures, PeerPayload, PoolPartial
from covalidator.model.qbft.messages import Envelope, Message, MsgType
from covalidator.runtime import keys_io
from covalidator.runtime.devnet.bn import DevnetBN, DevnetConfig
from covalidator.runtime.node_runner import PEER_QUEUE_LIMIT
from covalidator.runtime.peer_tls import client_context, server_context
from covalidator.runtime.peers import PeerTransport
from tests.helpers.aio import run
from tests.helpers.devnet_cluster import attesters_on_chain, devnet_cluster, make_devnet_cluster, rss_kib

NODES, VALIDATORS = 4, 8
BYZANTINE = 3  # the node index this test plays (share index 4)
SECONDS = float(os.environ.get("BYZANTINE_SECONDS", "20"))
hexes = lambda n: st.binary(min_size=n, max_size=n).map(lambda b: "0x" + b.hex())  # noqa: E731


def hostile(
    now_slot: Callable[[], int], groups: list[str]
) -> st.SearchStrategy[tuple[int | None, PeerPayload]]:
    """One (recipient share index or None for all, payload) the Byzantine operator sends."""
    me = BYZANTINE + 1
    slot = st.one_of(
        st.integers(-3, 3).map(lambda d: max(0, now_slot() + d)),  # the clock read when built: the
        st.integers(-80, 80).map(lambda d: max(0, now_slot() + d)),  # draws keep one shape
        st.integers(0, 2**40),
    )
    duty = st.builds(DutyId, slot, st.sampled_from(list(DutyKind)))
    rounds = st.one_of(st.integers(1, 6), st.integers(1, 10**6))
    message = st.builds(
        Message,
        st.sampled_from(list(MsgType)),
        duty,
        st.one_of(st.just(me), st.integers(1, NODES)),  # honest senders: it cannot sign for them
        rounds,
        st.one_of(st.just(""), hexes(32)),
        st.integers(0, 8),
        st.one_of(st.just(""), hexes(32)),
    )
    envelope = st.builds(
        Envelope,
        message,
        st.one_of(st.none(), st.binary(max_size=4096)),
        st.lists(message, max_size=2 * NODES + 2).map(tuple),
    )
    pubkey = st.one_of(st.sampled_from(groups), hexes(48))
    partial = st.builds(
        PartialSignature, pubkey, hexes(32), hexes(96), st.one_of(st.none(), st.just({"epoch": "1"}))
    )
    partials = st.builds(
        PartialSignatures, duty, st.lists(partial, min_size=1, max_size=2 * VALIDATORS + 4).map(tuple)
    )
    pool = st.builds(
        PoolPartial,
        st.sampled_from([DutyKind.VOLUNTARY_EXIT, DutyKind.BUILDER_REGISTRATION]),
        pubkey,
        st.fixed_dictionaries(
            {"epoch": st.integers(0, 2**64 - 1).map(str), "validator_index": st.integers(0, 20).map(str)}
        ),
        hexes(32),
        st.just(me),
        hexes(96),
    ).map(lambda p: (p,))
    payload = st.one_of(
        envelope.map(lambda e: PeerPayload(qbft=e)),
        partials.map(lambda p: PeerPayload(partials=p)),
        pool.map(lambda p: PeerPayload(pool=p)),
    )
    return st.tuples(st.one_of(st.none(), st.integers(1, NODES - 1)), payload)


def attack(
    transport: PeerTransport,
    loop: asyncio.AbstractEventLoop,
    now_slot: Any,
    groups: list[str],
    sent: Counter[str],
) -> None:
    """Sends Hypothesis examples through the Byzantine transport until SECONDS have passed."""
    until = time.monotonic() + SECONDS

    @settings(
        max_examples=20,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(st.data())
    def one(data: Any) -> None:
        for to, payload in data.draw(st.lists(hostile(now_slot, groups), min_size=1, max_size=20)):
            kind = (
                "qbft" if payload.qbft is not None else "partials" if payload.partials is not None else "pool"
            )
            sent[kind] += 1
            if to is None:
                loop.call_soon_threadsafe(transport.broadcast, payload)
            else:
                loop.call_soon_threadsafe(transport.send, to, payload)
        time.sleep(0.005)  # the Byzantine node's own loop gets to send them

    while time.monotonic() < until:  # 20 examples a run: the attack ends within a fraction of a second
        one()


class Attacker(threading.Thread):
    """`attack` in a thread; its exception, if any, is raised again by `join_raising`."""

    def __init__(self, *args: Any) -> None:
        super().__init__(name="byzantine")
        self.args_, self.error = args, None

    def run(self) -> None:
        try:
            attack(*self.args_)
        except BaseException as error:  # handed to the test's thread
            self.error = error

    def join_raising(self) -> None:
        self.join()
        if self.error is not None:
            raise self.error


async def status(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with session.get(url + "/covalidator/v1/status") as r:
        data: dict[str, Any] = (await r.json())["data"]
        return data


async def all_connected(session: aiohttp.ClientSession, urls: list[str]) -> bool:
    """Each honest node sees its three peers, the Byzantine one included."""
    try:
        return all([(await status(session, url))["peers_connected"] == NODES - 1 for url in urls])
    except aiohttp.ClientError:
        return False  # not listening yet


def test_a_byzantine_operator_sending_hostile_traffic_stops_no_honest_duty(tmp_path: Path) -> None:
    cluster = tmp_path / "c"
    make_devnet_cluster(cluster, NODES, VALIDATORS)
    byzantine = tmp_path / "byzantine"
    shutil.move(cluster / f"node{BYZANTINE}", byzantine)  # the cluster starts the other three
    lock = keys_io.load_lock(byzantine / keys_io.LOCK_FILE)
    key = keys_io.load_identity_key(byzantine / keys_io.IDENTITY_FILE)
    host, port = lock.operators[BYZANTINE].address.rsplit(":", 1)
    groups = ["0x" + v.distributed_public_key.hex() for v in lock.distributed_validators]
    config = DevnetConfig(
        validators=VALIDATORS, epochs=6, seconds_per_slot=3, genesis_delay_s=6, committee_size=16
    )
    sent: Counter[str] = Counter()

    async def scenario() -> tuple[Any, list[list[int]], list[dict[str, Any]], int, int, int]:
        async with devnet_cluster(
            cluster, DevnetBN(config), "--round-ms", "500", vcs=True, connect=False
        ) as running:
            transport = PeerTransport(
                lock, BYZANTINE, key, host, int(port), lambda s, p, n: None,
                server_ssl=server_context(key), client_ssl=client_context(),
            )  # fmt: skip
            await transport.start()
            vcs = running.vcs[:BYZANTINE]
            async with aiohttp.ClientSession() as session:
                deadline = time.monotonic() + 60
                while not await all_connected(session, running.urls):
                    assert time.monotonic() < deadline, "the cluster never connected"
                    await asyncio.sleep(0.3)
            await asyncio.gather(*(vc.setup() for vc in vcs))
            clock = vcs[0].chain.clock
            first = max(0, clock.slot_at(vcs[0].now_ms()) + 1)
            last = first + int(SECONDS / 3) + 3
            pids = [p.pid for p in running.processes]
            rss = [[rss_kib(pid) for pid in pids]]
            duties = asyncio.gather(*(vc.run(until_slot=last) for vc in vcs))
            loop = asyncio.get_running_loop()
            now_slot = lambda: clock.slot_at(vcs[0].now_ms())  # noqa: E731
            thread = Attacker(transport, loop, now_slot, groups, sent)
            thread.start()
            queue_peak = 0
            async with aiohttp.ClientSession() as session:
                while thread.is_alive():
                    for url in running.urls:
                        queue_peak = max(queue_peak, (await status(session, url))["queue"])
                    await asyncio.sleep(0.5)
                thread.join_raising()
                rss.append([rss_kib(pid) for pid in pids])
                await duties
                await transport.stop()
                rss.append([rss_kib(pid) for pid in pids])
                assert all(p.returncode is None for p in running.processes), "an honest node died"
                statuses = [await status(session, u) for u in running.urls]
                report = await running.report()
        return report, rss, statuses, queue_peak, first, last

    report, rss, statuses, queue_peak, first, last = run(scenario(), 300 + 2 * SECONDS)
    due, done = attesters_on_chain(report, first, last)
    drops = [s.get("peers", {}).get("dropped", {}) for s in statuses]
    print(
        f"byzantine peer: sent {dict(sent)} in {SECONDS:.0f} s; honest nodes' runner queue peak {queue_peak}; "
        f"RSS KiB {rss}; peer-layer drops {drops}; runner drops {[s['peer_queue_dropped'] for s in statuses]}; "
        f"step errors {[s['step_errors'] for s in statuses]}; attester duties on chain {done}/{due}"
    )
    assert sum(sent.values()) >= 100 * SECONDS / 20, sent  # the attack was made, not skipped
    assert (report["slashable_pairs"], report["invalid_submissions"]) == (0, 0), report
    assert [s["step_errors"] for s in statuses] == [0] * BYZANTINE, statuses  # no input made the model raise
    assert queue_peak <= PEER_QUEUE_LIMIT * NODES, queue_peak
    for before, after in zip(rss[0], rss[-1], strict=True):
        assert after < 2 * before + 100_000, rss
    assert due >= 4 and done >= 0.9 * due, (done, due, report["missed"])
