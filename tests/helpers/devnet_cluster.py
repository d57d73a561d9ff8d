"""A running cluster for runtime tests: a beacon node (the devnet BN or a scripted fake), N `covalidator
run` processes on 127.0.0.1 and optionally their devnet VCs, set up and torn down in one place
(`devnet_cluster()`), and the cluster folder `create-cluster` writes for the devnet chain."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from click.testing import CliRunner

from covalidator.runtime.cli import main
from covalidator.runtime.devnet.vc import DevnetVC, load_secrets
from tests.helpers.node_proc import free_ports, start_node, stop_node

NO_MONITORING = {"COVALIDATOR_MONITORING": "off"}  # several nodes on one host: no shared metrics port


def make_devnet_cluster(folder: Path, nodes: int, validators: int, *extra: str) -> None:
    peers = ",".join(f"127.0.0.1:{port}" for port in free_ports(nodes))
    args = [
        "create-cluster", "--nodes", str(nodes), "--validators", str(validators), "--network", "devnet",
        "--interop-keys", "--peer-addresses", peers, "--kdf", "pbkdf2", "--kdf-cost", "1", "--out", str(folder),
        *extra,
    ]  # fmt: skip
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output


@dataclass
class RunningCluster:
    folder: Path
    bn: Any  # runtime.devnet.bn.DevnetBN or tests.helpers.fake_bn.FakeBN, started
    ports: list[int]  # each node's validator API
    processes: list[asyncio.subprocess.Process]
    node_args: Callable[[int], Sequence[str]]
    env: dict[str, str]
    vcs: list[DevnetVC] = field(default_factory=list)
    node_env: Callable[[int], dict[str, str]] = lambda i: {}  # on top of `env`, for node i
    killed: set[int] = field(default_factory=set)  # nodes that may end SIGKILLed

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.ports]

    async def start(self, i: int) -> None:
        self.processes[i] = await start_node(
            self.folder, i, self.bn.url, self.ports[i], *self.node_args(i), env=self.env_of(i)
        )

    def env_of(self, i: int) -> dict[str, str]:
        return {**self.env, **self.node_env(i)}

    async def report(self) -> Any:
        """The devnet BN's judgement so far, with its per-slot table (`?slots=1`)."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.bn.url + "/devnet/report", params={"slots": "1"}) as r,
        ):
            return await r.json()

    async def kill(self, i: int) -> None:
        """SIGKILL: no shutdown, whatever was in flight is lost."""
        self.killed.add(i)
        self.processes[i].kill()
        await self.processes[i].wait()

    async def connected(self, which: Sequence[int] | None = None, timeout_s: float = 60.0) -> None:
        """Until each node (of `which`) says all its peers are connected (AssertionError with the log of
        a node that exited, or after `timeout_s`)."""
        nodes = list(range(len(self.ports))) if which is None else list(which)
        deadline = time.monotonic() + timeout_s
        async with aiohttp.ClientSession() as session:
            while True:
                up = 0
                for i in nodes:
                    try:
                        async with session.get(self.urls[i] + "/covalidator/v1/status") as r:
                            up += (await r.json())["data"]["peers_connected"] == len(self.ports) - 1
                    except (aiohttp.ClientError, ValueError, KeyError, TypeError):
                        pass
                if up == len(nodes):
                    return
                for i in nodes:
                    if self.processes[i].returncode is not None:
                        raise AssertionError((self.folder / f"node{i}.log").read_text())
                assert time.monotonic() < deadline, "the cluster never connected"
                await asyncio.sleep(0.3)


@asynccontextmanager
async def devnet_cluster(
    folder: Path,
    bn: Any,
    *args: str,
    per_node: Callable[[int], Sequence[str]] = lambda i: (),
    env: dict[str, str] | None = None,
    node_env: Callable[[int], dict[str, str]] = lambda i: {},
    vcs: bool = False,
    connect: bool = True,
) -> AsyncIterator[RunningCluster]:
    """Start `bn`, one `covalidator run` per node folder of `folder` (with `args` and `per_node(i)`),
    wait until they are connected (`connect`), make each node's devnet VC (`vcs`, not yet set up);
    at the end close the VCs, stop the nodes and the BN, and check every node stopped cleanly (exit 0,
    or killed by the test) without a traceback in its log."""
    nodes = len(list(folder.glob("node*/cluster-lock.json")))
    await bn.start()
    cluster = RunningCluster(
        folder,
        bn,
        free_ports(nodes),
        [],
        lambda i: (*args, *per_node(i)),
        NO_MONITORING if env is None else env,
        node_env=node_env,
    )
    codes: list[int] = []
    try:
        for i in range(nodes):
            cluster.processes.append(
                await start_node(
                    folder, i, bn.url, cluster.ports[i], *cluster.node_args(i), env=cluster.env_of(i)
                )
            )
        if vcs:
            cluster.vcs = [
                DevnetVC(cluster.urls[i], load_secrets(str(folder / f"node{i}"))) for i in range(nodes)
            ]
        if connect:
            await cluster.connected()
        yield cluster
    finally:
        for vc in cluster.vcs:
            await vc.close()
        codes = list(await asyncio.gather(*(stop_node(p) for p in cluster.processes)))
        await bn.stop()
    for i, code in enumerate(codes):
        log = (folder / f"node{i}.log").read_text()
        assert "Traceback" not in log, log
        assert code == (-9 if i in cluster.killed else 0), log


def attesters_on_chain(report: Any, first: int, last: int) -> tuple[int, int]:
    """(due, on chain) attester duties of a devnet report's slot table (`?slots=1`) for first <= slot < last."""
    cells = [
        c["attester"] for slot, c in report["slots"].items() if first <= int(slot) < last and "attester" in c
    ]
    return sum(c[0] for c in cells), sum(c[1] for c in cells)


def rss_kib(pid: int) -> int:
    """A live process's resident memory (VmRSS), KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0
