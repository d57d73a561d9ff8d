"""Four `covalidator run` processes on 127.0.0.1 against one fake chain BN: they connect over the
authenticated peer transport, decide attestation duties' data by QBFT, persist it and serve the same
data to each VC request, with one node SIGKILLed and restarted on its data folder; each stops cleanly
on SIGTERM and each node's trace (the restarted one's across two runs) replays action for action
(persist before serve checked along the way)."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.helpers.aio import run
from tests.helpers.devnet_cluster import devnet_cluster
from tests.helpers.node_proc import COVALIDATOR, chain_bn, group_pubkeys, make_cluster, next_duty_slot

NODES = 4


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cluster4") / "c"
    make_cluster(folder, nodes=NODES, validators=2)
    return folder


async def get_json(session: aiohttp.ClientSession, url: str, **params: str) -> tuple[int, Any]:
    try:
        async with session.get(url, params=params or None) as response:
            return response.status, await response.json()
    except aiohttp.ClientError as error:
        return 0, str(error)


def test_four_nodes_decide_with_one_killed_the_restarted_node_catches_up_and_every_trace_replays(
    cluster: Path,
) -> None:
    """Validator 0 attests at slot 8e (committee 0), validator 1 at slot 8e + 4 (committee 1), every
    epoch e. Node 3 is SIGKILLed before a validator-0 duty: the other three decide and serve it (3 of
    4). Node 3 restarts on its data folder and joins a validator-1 duty's consensus: all four serve one
    value. Duty slots are picked once the processes are up (a slow machine only shifts them)."""
    genesis = int(time.time()) - 3

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        bn = chain_bn(group_pubkeys(cluster), genesis_time=genesis, stride=4)
        async with (
            devnet_cluster(cluster, bn, "--round-ms", "300", env={}) as running,
            aiohttp.ClientSession() as session,
        ):
            urls = running.urls

            async def ask(url: str, slot: int, committee: int) -> dict[str, Any]:
                until = time.monotonic() + 6
                while True:
                    status, body = await get_json(
                        session,
                        f"{url}/eth/v1/validator/attestation_data",
                        slot=str(slot),
                        committee_index=str(committee),
                    )
                    if status == 200:
                        return dict(body["data"])
                    assert time.monotonic() < until, f"{url}: no decided data ({status} {body})"
                    await asyncio.sleep(0.1)

            await running.kill(3)
            first = next_duty_slot(genesis, 0)
            await asyncio.sleep(max(0.0, genesis + first + 0.4 - time.time()))
            three = list(await asyncio.gather(*(ask(u, first, 0) for u in urls[:3])))
            await running.start(3)
            running.killed.discard(3)  # it stops cleanly this time
            await running.connected(timeout_s=30)
            second = next_duty_slot(genesis, 4)
            await asyncio.sleep(max(0.0, genesis + second + 0.4 - time.time()))
            four = list(await asyncio.gather(*(ask(u, second, 1) for u in urls)))
        return three, four

    three, four = run(scenario(), 90)
    assert all(data == three[0] for data in three), three  # one decided value, served by three nodes
    assert int(three[0]["slot"]) % 8 == 0 and three[0]["index"] == "0"
    assert all(data == four[0] for data in four), four
    assert int(four[0]["slot"]) % 8 == 4 and four[0]["index"] == "1"
    for i in range(NODES):
        trace = cluster / f"node{i}" / "data" / "trace"
        replayed = subprocess.run(
            [*COVALIDATOR, "replay", str(trace)], capture_output=True, text=True, timeout=60
        )
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr
        assert "Persisted" in replayed.stdout and "PeerMessage" in replayed.stdout, replayed.stdout
        assert ("2 start(s)" if i == 3 else "1 start(s)") in replayed.stdout, replayed.stdout
