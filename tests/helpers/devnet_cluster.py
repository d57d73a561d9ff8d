"""A devnet cluster for runtime tests: `create-cluster` with interop keys on the devnet network (what
the devnet BN's chain expects), and a wait until every `covalidator run` process has all its peers."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
from click.testing import CliRunner

from covalidator.runtime.cli import main
from tests.helpers.node_proc import free_ports

NO_MONITORING = {"COVALIDATOR_MONITORING": "off"}  # several nodes on one host: no shared metrics port


def make_devnet_cluster(folder: Path, nodes: int, validators: int) -> None:
    peers = ",".join(f"127.0.0.1:{port}" for port in free_ports(nodes))
    args = [
        "create-cluster", "--nodes", str(nodes), "--validators", str(validators), "--network", "devnet",
        "--interop-keys", "--peer-addresses", peers, "--kdf", "pbkdf2", "--kdf-cost", "1", "--out", str(folder),
    ]  # fmt: skip
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output


async def wait_connected(
    urls: list[str],
    processes: list[asyncio.subprocess.Process],
    cluster: Path,
    timeout_s: float = 60.0,
) -> None:
    """Until each node's status says all its peers are connected (AssertionError with the log of a node
    that exited, or after `timeout_s`)."""
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while True:
            up = 0
            for url in urls:
                try:
                    async with session.get(url + "/covalidator/v1/status") as r:
                        up += (await r.json())["data"]["peers_connected"] == len(urls) - 1
                except (aiohttp.ClientError, ValueError, KeyError, TypeError):
                    pass
            if up == len(urls):
                return
            for i, p in enumerate(processes):
                if p.returncode is not None:
                    raise AssertionError((cluster / f"node{i}.log").read_text())
            assert time.monotonic() < deadline, "the cluster never connected"
            await asyncio.sleep(0.3)
