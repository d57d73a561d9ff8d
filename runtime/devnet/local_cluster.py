"""A whole cluster on 127.0.0.1 as processes: devnet BN, N `covalidator run` nodes, N devnet VCs.

The order that makes slot 0 count: create the cluster (interop keys, devnet network, free peer
ports; or, with `dkg`, N `covalidator dkg` processes make new keys with no dealer), start the BN (its genesis `genesis_delay_s` ahead), start the nodes and wait until each
answers its status with every peer connected, start the VCs and wait until each has read genesis and
its validators (their ready files). Everything lives in one folder: `cluster/`, `data<i>/` (each
node's store and trace), and a `.out`/`.err` log per process. Stopping is `Children.stop_all()`.

Must not: judge the run (that is the BN's report and `summary`).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from covalidator.runtime.devnet.ports import free_ports
from covalidator.runtime.devnet.processes import Child, ChildFailed, Children, get_json
from covalidator.sim.chain import PRESETS

HOST = "127.0.0.1"
STATUS_PATH = "/covalidator/v1/status"
MONITORING_PORT = 3620  # node i serves its monitoring endpoints on 127.0.0.1:(3620 + i)
START_TIMEOUT_S = 120.0
DEMO_FEE_RECIPIENT = "0x" + "fe" * 20  # the lock pins it, with group-signed builder registrations


@dataclass(frozen=True)
class ClusterSpec:
    nodes: int = 4
    validators: int = 8
    epochs: int = 3
    seconds_per_slot: int = 2
    genesis_delay_s: float = 20.0
    signer: bool = False  # signer mode: nodes serve --signer-api, the VCs hold no key and use it
    fork: str = "altair"  # the devnet's fork: "bellatrix" has payloads and the builder flow
    dkg: bool = False  # make the keys with `covalidator dkg` (N processes, no dealer), not create-cluster
    preset: str = "minimal"  # the devnet BN's preset: "mainnet" has 32-slot epochs

    @property
    def slots_per_epoch(self) -> int:
        return PRESETS[self.preset].slots_per_epoch


def signed_local_definition(
    path: Path,
    node_dirs: Sequence[Path],
    ports: Sequence[int],
    *,
    validators: int,
    network: str,
    name: str,
    fee_recipient: str,
) -> None:
    """A new identity key in each node folder, and at `path` a DKG definition of those operators on
    127.0.0.1 (the fee recipient also the withdrawal address) that every one of them has signed: what
    the operators of a local demo or benchmark would have made with the CLI."""
    from covalidator.model.cluster import definition
    from covalidator.model.cluster.lock import Operator, identity_public_key
    from covalidator.model.eth import deposit, networks
    from covalidator.model.qbft.rules import smallest_safe_threshold
    from covalidator.runtime import keys_io

    keys = [keys_io.new_identity_key() for _ in node_dirs]
    for folder, key in zip(node_dirs, keys, strict=True):
        keys_io.save_identity_key(folder / keys_io.IDENTITY_FILE, key)
    net = networks.network(network)
    document = definition.build_definition(
        name=name, network=network, fork_version=net.genesis_fork_version,
        genesis_validators_root=net.genesis_validators_root,
        threshold=smallest_safe_threshold(len(keys)), validators=validators,
        operators=[Operator(identity_public_key(k), f"{HOST}:{p}") for k, p in zip(keys, ports, strict=True)],
        withdrawal_address=fee_recipient, compounding=False,
        deposit_amount_gwei=deposit.DEPOSIT_AMOUNT_GWEI, fee_recipient=fee_recipient,
        gas_limit=36_000_000, registration_timestamp=int(time.time()), nonce=os.urandom(32),
    )  # fmt: skip
    for key in keys:
        document = definition.sign_definition(document, key)
    keys_io.write_json(path, document)


NODE_CODE_ENV = "COVALIDATOR_NODE_CODE"


def covalidator(*args: str) -> list[str]:
    """A `covalidator` command; with COVALIDATOR_NODE_CODE set (bench/cluster.py --node-code), run from
    the package folder it names (another checkout of the node's code: a before/after comparison)."""
    code = os.environ.get(NODE_CODE_ENV)
    if code:  # -P: the working folder (this checkout) must not come first on the path
        return ["env", f"PYTHONPATH={code}", sys.executable, "-P", "-m", "covalidator", *args]
    return [sys.executable, "-m", "covalidator", *args]


class LocalCluster:
    def __init__(self, spec: ClusterSpec, folder: Path, children: Children) -> None:
        self.spec, self.folder, self.children = spec, folder, children
        self.bn: Child | None = None
        self.bn_url = ""
        self.genesis_time = 0
        self.nodes: list[Child] = []
        self.vcs: list[Child] = []
        self.api_ports: list[int] = []
        self.signer_ports: list[int] = []
        self.monitoring: list[str | None] = []  # node i's monitoring URL (from its status), None: off

    def node_dir(self, i: int) -> Path:
        return self.folder / "cluster" / f"node{i}"

    def data_dir(self, i: int) -> Path:
        return self.folder / f"data{i}"

    # -- start ---------------------------------------------------------------------------------------

    def create(self, p2p_ports: list[int]) -> None:
        if self.spec.dkg:
            self.create_by_dkg(p2p_ports)
            return
        peers = ",".join(f"{HOST}:{p}" for p in p2p_ports)
        argv = covalidator(
            "create-cluster", "--nodes", str(self.spec.nodes), "--validators", str(self.spec.validators),
            "--network", "devnet", "--interop-keys", "--peer-addresses", peers,
            "--kdf", "pbkdf2", "--kdf-cost", "1", "--out", str(self.folder / "cluster"),
            "--fee-recipient", DEMO_FEE_RECIPIENT,
        )  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        (self.folder / "create-cluster.log").write_text(done.stdout + done.stderr)
        if done.returncode != 0:
            raise ChildFailed(
                f"create-cluster exited with code {done.returncode}: {done.stderr.strip()[-500:]}"
            )

    def create_by_dkg(self, p2p_ports: list[int]) -> None:
        """Each operator's identity key, a definition every operator signs, then N `covalidator dkg`
        processes at once; and, for the devnet BN's judge only (it must know in advance which
        validators aggregate), the validators' keys from `combine` in judge-keys/."""
        path = self.folder / "cluster-definition.json"
        signed_local_definition(
            path,
            [self.node_dir(i) for i in range(self.spec.nodes)],
            p2p_ports,
            validators=self.spec.validators,
            network="devnet",
            name="covalidator demo",
            fee_recipient=DEMO_FEE_RECIPIENT,
        )
        ceremony = []
        for i in range(self.spec.nodes):
            argv = covalidator(
                "dkg", "--definition", str(path), "--node-dir", str(self.node_dir(i)),
                "--kdf", "pbkdf2", "--kdf-cost", "1", "--connect-timeout", "60", "--round-timeout", "60",
            )  # fmt: skip
            ceremony.append(self.children.spawn(f"dkg{i}", argv))
        self.children.wait_until(
            "the DKG ceremony", lambda: all(not c.alive() for c in ceremony), START_TIMEOUT_S, []
        )
        for child in ceremony:
            if child.process.poll() != 0:
                raise ChildFailed(
                    f"{child.name} exited with code {child.process.poll()}:\n{child.stderr_tail()}"
                )
        argv = covalidator(
            "combine", "--cluster-dir", str(self.folder / "cluster"), "--output-dir", str(self.folder / "judge-keys"),
            "--kdf", "pbkdf2", "--kdf-cost", "1",
        )  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise ChildFailed(
                f"combine (for the judge) exited with code {done.returncode}: {done.stderr[-500:]}"
            )

    def start_bn(self) -> None:
        info = self.folder / "bn.json"
        argv = [
            sys.executable, "-m", "covalidator.runtime.devnet.bn", "--validators", str(self.spec.validators),
            "--epochs", str(self.spec.epochs), "--seconds-per-slot", str(self.spec.seconds_per_slot),
            "--genesis-delay", str(self.spec.genesis_delay_s), "--info-file", str(info),
            "--fork", self.spec.fork, "--preset", self.spec.preset,
            *(("--keys", str(self.folder / "judge-keys")) if self.spec.dkg else ()),
        ]  # fmt: skip
        self.bn = self.children.spawn("bn", argv)
        self.children.wait_until("the devnet BN", info.is_file, START_TIMEOUT_S, [self.bn])
        details = json.loads(info.read_text())
        self.bn_url, self.genesis_time = details["url"], int(details["genesis_time"])

    def start_nodes(self, p2p_ports: list[int]) -> None:
        self.api_ports = free_ports(self.spec.nodes)
        self.signer_ports = free_ports(self.spec.nodes) if self.spec.signer else []
        for i in range(self.spec.nodes):
            signer = ("--signer-api", f"{HOST}:{self.signer_ports[i]}") if self.spec.signer else ()
            argv = covalidator(
                "run", "--lock", str(self.node_dir(i) / "cluster-lock.json"), "--node-dir", str(self.node_dir(i)),
                "--beacon-node", self.bn_url, "--validator-api", f"{HOST}:{self.api_ports[i]}",
                "--p2p", f"{HOST}:{p2p_ports[i]}", "--data-dir", str(self.data_dir(i)),
                *signer, *self.monitoring_flag(i),
            )  # fmt: skip
            self.nodes.append(self.children.spawn(f"node{i}", argv))

    def monitoring_flag(self, i: int) -> tuple[str, ...]:
        """Node i serves /metrics, /readyz and its status on 127.0.0.1:(3620 + i) (`covalidator status
        --monitoring http://127.0.0.1:362i`), unless COVALIDATOR_MONITORING says otherwise (the tests: :0)."""
        return (
            ()
            if "COVALIDATOR_MONITORING" in os.environ
            else ("--monitoring", f"{HOST}:{MONITORING_PORT + i}")
        )

    def node_ready(self, i: int) -> bool:
        answer = get_json(f"http://{HOST}:{self.api_ports[i]}{STATUS_PATH}")
        status = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(status, dict) or status.get("peers_connected") != self.spec.nodes - 1:
            return False
        address = status.get("monitoring")  # the port it serves (:0 in the tests: chosen by the OS)
        self.monitoring[i] = f"http://{address}" if address else None
        return True

    def wait_nodes(self) -> None:
        self.monitoring = [None] * self.spec.nodes
        needed = [*self.nodes, *([self.bn] if self.bn else [])]
        for i in range(self.spec.nodes):
            self.children.wait_until(
                f"node{i}", functools.partial(self.node_ready, i), START_TIMEOUT_S, needed
            )

    def start_vcs(self) -> None:
        for i in range(self.spec.nodes):
            argv = [
                sys.executable, "-m", "covalidator.runtime.devnet.vc",
                "--base-url", f"http://{HOST}:{self.api_ports[i]}",
                *(("--signer", f"http://{HOST}:{self.signer_ports[i]}") if self.spec.signer
                  else ("--keys", str(self.node_dir(i)))),
                "--epochs", str(self.spec.epochs), "--stats-file", str(self.folder / f"vc{i}.stats.json"),
                "--ready-file", str(self.folder / f"vc{i}.ready"),
            ]  # fmt: skip
            self.vcs.append(self.children.spawn(f"vc{i}", argv))

    def wait_vcs(self) -> None:
        for i, vc in enumerate(self.vcs):
            ready = self.folder / f"vc{i}.ready"
            self.children.wait_until(f"vc{i}", ready.is_file, START_TIMEOUT_S, [vc, *self.nodes])

    def clean(self) -> None:
        """Remove what a start left in the folder (before starting again in it)."""
        import shutil

        for pattern in (
            "cluster",
            "judge-keys",
            "data*",
            "*.out",
            "*.err",
            "*.json",
            "*.ready",
            "create-cluster.log",
        ):
            for path in self.folder.glob(pattern):
                shutil.rmtree(path) if path.is_dir() else path.unlink()

    def start(self) -> float:
        """Everything up and ready; the seconds left until genesis (negative: it started late)."""
        p2p_ports = free_ports(self.spec.nodes)
        self.create(p2p_ports)
        self.start_bn()
        self.start_nodes(p2p_ports)
        self.wait_nodes()
        self.start_vcs()
        self.wait_vcs()
        return self.genesis_time - time.time()

    # -- while running -------------------------------------------------------------------------------

    def report(self, slots: bool = True) -> dict[str, Any] | None:
        answer = get_json(f"{self.bn_url}/devnet/report" + ("?slots=1" if slots else ""))
        return answer if isinstance(answer, dict) else None

    def check(self) -> None:
        """ChildFailed if the BN or a node has exited, or a VC failed (a VC ends by itself, code 0)."""
        self.children.check_alive([*([self.bn] if self.bn else []), *self.nodes])
        for vc in self.vcs:
            code = vc.process.poll()
            if code not in (None, 0):
                raise ChildFailed(f"{vc.name} exited with code {code}:\n{vc.stderr_tail()}")

    def vcs_done(self) -> bool:
        return all(not vc.alive() for vc in self.vcs)

    def end_time(self) -> float:
        """When the last duty's deadline has passed (Unix seconds): E epochs plus two slots."""
        slots = self.spec.epochs * self.spec.slots_per_epoch + 2
        return float(self.genesis_time + slots * self.spec.seconds_per_slot)

    def trace_dirs(self) -> list[Path]:
        return [self.data_dir(i) / "trace" for i in range(self.spec.nodes)]
