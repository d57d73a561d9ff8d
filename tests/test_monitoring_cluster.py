"""/livez, /readyz and /metrics of four `covalidator run` processes against a fake chain BN that the
test stops, makes syncing and restarts, and with two of the four nodes killed and restarted: /readyz
goes 503 with the right reason each time and back to 200 after. The test plays each node's VC by
calling its validator API (a node whose VC is silent for an epoch is not ready)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.aio import run
from tests.helpers.devnet_cluster import devnet_cluster
from tests.helpers.node_proc import chain_bn, free_ports, group_pubkeys, make_cluster

NODES = 4
SYNCING = {"data": {"is_syncing": True, "head_slot": "1", "sync_distance": "90"}}
SYNCED = {"data": {"is_syncing": False, "head_slot": "10", "sync_distance": "0"}}


def sample(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and labels.items() <= s.labels.items():
                return float(s.value)
    return None


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=3)) as response:
            body = await response.text()
            return response.status, (await response.json()) if "json" in response.content_type else body
    except (aiohttp.ClientError, TimeoutError) as error:
        return 0, str(error)


@pytest.mark.slow
def test_readyz_names_bn_down_bn_syncing_and_too_few_peers_and_recovers(tmp_path: Path) -> None:
    cluster = tmp_path / "c"
    make_cluster(cluster, nodes=NODES, validators=2)
    genesis = int(time.time()) - 3

    async def scenario() -> None:
        bn = chain_bn(group_pubkeys(cluster), genesis_time=genesis, slot_s=1, slots_per_epoch=8)
        mon = free_ports(NODES)
        monitoring = lambda i: ("--monitoring", f"127.0.0.1:{mon[i]}")  # noqa: E731
        async with (
            devnet_cluster(cluster, bn, per_node=monitoring, env={}, connect=False) as running,
            aiohttp.ClientSession() as session,
        ):
            api = running.ports
            monitor = [f"http://127.0.0.1:{p}" for p in mon]
            vc_alive = True

            async def play_vcs() -> None:
                while vc_alive:
                    for port in api:
                        await get(session, f"http://127.0.0.1:{port}/eth/v1/node/version")
                    await asyncio.sleep(1.0)

            async def readiness(i: int, want: int, reason: str | None, timeout: float = 30.0) -> Any:
                deadline = time.monotonic() + timeout
                while True:
                    status, body = await get(session, f"{monitor[i]}/readyz")
                    names = [r["reason"] for r in body.get("reasons", [])] if isinstance(body, dict) else []
                    if status == want and (reason is None or reason in names):
                        return body
                    if time.monotonic() > deadline:
                        log = (cluster / f"node{i}.log").read_text()[-3000:]
                        raise AssertionError(
                            f"node{i} /readyz: {status} {body}, wanted {want} {reason}\n{log}"
                        )
                    await asyncio.sleep(0.3)

            vcs = asyncio.create_task(play_vcs())
            for i in range(NODES):
                await readiness(i, 200, None, timeout=60)
                assert (await get(session, f"{monitor[i]}/livez"))[0] == 200
            # ready needs a quorum of peers, not all: the link to the last node started may still be
            # in its dial backoff, so its gauge is read until it says connected (or 30 s pass)
            deadline = time.monotonic() + 30
            while True:
                status, text = await get(session, f"{monitor[0]}/metrics")
                connected = status == 200 and sample(
                    text, "covalidator_peer_connected", peer_index="1", peer="4"
                )
                if connected == 1 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.3)
            assert status == 200
            assert sample(text, "covalidator_ready", peer_index="1", cluster_name="covalidator cluster") == 1
            assert sample(text, "covalidator_peer_connected", peer_index="1", peer="4") == 1
            assert sample(text, "covalidator_bn_up", bn=bn.url, role="primary") == 1

            port = bn.port
            await bn.stop()  # the BN goes away: every node says so, and still lives
            body = await readiness(0, 503, "bn_down")
            assert "127.0.0.1" in body["reasons"][0]["detail"]
            assert (await get(session, f"{monitor[0]}/livez"))[0] == 200
            await bn.start(port)
            await readiness(0, 200, None)

            bn.answer("GET", "/eth/v1/node/syncing", SYNCING)
            await readiness(1, 503, "bn_syncing")
            bn.answer("GET", "/eth/v1/node/syncing", SYNCED)
            await readiness(1, 200, None)

            for i in (2, 3):  # two of four gone: 2 < a quorum of 3
                await running.kill(i)
            body = await readiness(0, 503, "too_few_peers")
            # (node 0 may still name bn_syncing beside it: the wait above was for node 1's view of the BN)
            peers = [r["detail"] for r in body["reasons"] if r["reason"] == "too_few_peers"]
            assert peers and "2 of 4 connected" in peers[0], body
            status, text = await get(session, f"{monitor[0]}/metrics")
            assert sample(text, "covalidator_ready", peer_index="1") == 0
            assert sample(text, "covalidator_peer_connected", peer="3") == 0
            assert sample(text, "covalidator_peer_connected", peer="2") == 1
            for i in (2, 3):
                await running.start(i)
                running.killed.discard(i)
            await readiness(0, 200, None, timeout=60)
            vc_alive = False
            await vcs
            await get(session, f"{monitor[0]}/livez")

    run(scenario(), timeout=240)
