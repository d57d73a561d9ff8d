"""Four `covalidator run` processes on 127.0.0.1 against one fake chain BN: they connect over the
authenticated peer transport, decide an attestation duty's data by QBFT, persist it and serve the same
data to each VC request; each stops cleanly on SIGTERM and each node's trace replays action for action
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
from tests.helpers.node_proc import (
    COVALIDATOR,
    chain_bn,
    free_port,
    group_pubkeys,
    make_cluster,
    start_node,
    stop_node,
)

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


def test_four_nodes_decide_persist_and_serve_the_same_data_and_their_traces_replay(cluster: Path) -> None:
    genesis = int(time.time()) - 3  # slot 8 (the first duty: validator 0, committee 0) starts in ~5 s

    async def scenario() -> list[dict[str, Any]]:
        bn = await chain_bn(group_pubkeys(cluster), genesis_time=genesis).start()
        ports = [free_port() for _ in range(NODES)]
        processes = [
            await start_node(cluster, i, bn.url, ports[i], "--round-ms", "300") for i in range(NODES)
        ]
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        served: list[dict[str, Any]] = []
        try:
            async with aiohttp.ClientSession() as session:
                deadline = time.monotonic() + 30
                while True:  # every node up and dialled to its 3 peers
                    statuses = [await get_json(session, f"{u}/covalidator/v1/status") for u in urls]
                    if all(s == 200 and b["data"]["peers_connected"] == NODES - 1 for s, b in statuses):
                        break
                    for i, p in enumerate(processes):
                        assert p.returncode is None, (cluster / f"node{i}.log").read_text()
                    assert time.monotonic() < deadline, f"the cluster never connected: {statuses}"
                    await asyncio.sleep(0.2)
                await asyncio.sleep(max(0.0, genesis + 8.4 - time.time()))  # the duty has started

                async def ask(url: str) -> dict[str, Any]:
                    until = time.monotonic() + 6
                    while True:
                        status, body = await get_json(
                            session, f"{url}/eth/v1/validator/attestation_data", slot="8", committee_index="0"
                        )
                        if status == 200:
                            return dict(body["data"])
                        assert time.monotonic() < until, f"{url}: no decided data ({status} {body})"
                        await asyncio.sleep(0.1)

                served = list(await asyncio.gather(*(ask(u) for u in urls)))
        finally:
            codes = await asyncio.gather(*(stop_node(p) for p in processes))
            await bn.stop()
        for i, code in enumerate(codes):
            log = (cluster / f"node{i}.log").read_text()
            assert code == 0 and "Traceback" not in log, log
        return served

    served = run(scenario(), 90)
    assert all(data == served[0] for data in served), served  # one decided value, served by every node
    assert served[0]["slot"] == "8" and served[0]["target"]["epoch"] == "1"
    for i in range(NODES):
        trace = cluster / f"node{i}" / "data" / "trace"
        replayed = subprocess.run([*COVALIDATOR, "replay", str(trace)], capture_output=True, text=True, timeout=60)
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr
        assert "Persisted" in replayed.stdout and "PeerMessage" in replayed.stdout, replayed.stdout
