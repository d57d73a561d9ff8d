"""The e2e topology on 127.0.0.1: a Lodestar dev beacon node, a recorder in front of it (one port per
covalidator), four `covalidator run` nodes, four Lodestar validator clients. Three modes:

  signer      VC i holds no key: node i's validator API is its beacon node and node i's Remote
              Signing API its external signer. The BN is Lodestar as published.
                  VC i ──▶ covalidator node i ──▶ recorder port i ──▶ Lodestar BN
                   └──(sign)──▶ node i
  middleware  VC i holds only node i's share keystores and talks to node i's validator API; the BN is
              the patched copy (install.sh, patch_bn.py: it packs attestations posted to its API into
              blocks, since this VC version cannot aggregate as a DV).
  direct      no covalidator: VC i holds the full keys of validators 2i and 2i+1 and talks to the
              recorder (so to the BN) itself; the BN is Lodestar as published. The comparison run.

Start order: cluster (interop keys 0..7 split 3-of-4, `devnet` network: minimal preset, genesis fork
version 0x00000001, genesis validators root adopted from the BN), BN (genesis `genesis_delay_s` ahead),
recorder, nodes (ready = every peer connected), VCs (ready = each has called its node). Stopping: VCs
SIGINT, nodes SIGTERM, BN SIGINT twice (it ignores SIGTERM and the first SIGINT), recorder SIGINT;
SIGKILL for anything still up after its grace period. Every signal goes to a pid we started.

Must not: judge anything (that is `judge.py`, from the BN's API and the recorded BN answers).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from covalidator.runtime.devnet.ports import free_ports
from covalidator.runtime.devnet.processes import Child, ChildFailed, Children, get_json

HOST = "127.0.0.1"
HERE = Path(__file__).resolve().parent
NODES = 4
VALIDATORS = 8
SECONDS_PER_SLOT = 6
SLOTS_PER_EPOCH = 8  # minimal preset
STATUS_PATH = "/covalidator/v1/status"
START_TIMEOUT_S = 120.0
# every Lodestar process: altair from genesis (the dev command alone gives phase0), 6 s slots, and
# validators may exit from genesis on (SHARD_COMMITTEE_PERIOD 0: the exit scenario, run.py --exit)
PARAMS = (
    "--params.SECONDS_PER_SLOT", str(SECONDS_PER_SLOT), "--params.ALTAIR_FORK_EPOCH", "0",
    "--params.SHARD_COMMITTEE_PERIOD", "0",
)  # fmt: skip


MODES = ("signer", "middleware", "direct")


@dataclass(frozen=True)
class Ports:
    bn_rest: int
    bn_p2p: int
    recorder: tuple[int, ...]
    api: tuple[int, ...]
    peers: tuple[int, ...]
    signer: tuple[int, ...]

    @classmethod
    def free(cls) -> Ports:
        p = free_ports(2 + 4 * NODES)
        return cls(p[0], p[1], tuple(p[2:6]), tuple(p[6:10]), tuple(p[10:14]), tuple(p[14:18]))


def covalidator(*args: str) -> list[str]:
    return [sys.executable, "-m", "covalidator", *args]


def stop_child(child: Child, signals: list[tuple[int, float]]) -> str:
    """Signals in turn (each with its grace period), SIGKILL last; what ended it, for the log."""
    steps: list[str] = []
    for sig, grace in signals:
        if not child.alive():
            break
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, sig)
        try:
            child.process.wait(timeout=grace)
            steps.append(f"{signal.Signals(sig).name} -> exit {child.process.returncode}")
        except subprocess.TimeoutExpired:
            steps.append(f"{signal.Signals(sig).name}: still up after {grace:g} s")
    if child.alive():
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGKILL)
        child.process.wait()
        steps.append("SIGKILL")
    return "; ".join(steps) or f"already exited ({child.process.returncode})"


class Devnet:
    def __init__(
        self, folder: Path, lodestar: Path, children: Children, genesis_delay_s: float, mode: str = "signer"
    ) -> None:
        assert mode in MODES
        self.folder, self.lodestar, self.children = folder, lodestar, children
        self.genesis_delay_s = genesis_delay_s
        self.mode = mode
        # only the middleware run's BN is the patched copy (install.sh writes it beside the published one)
        self.lodestar_bn = (
            lodestar.parent.parent / "patched" / "bin" / "lodestar" if mode == "middleware" else lodestar
        )
        self.ports = Ports.free()
        self.bn_url = f"http://{HOST}:{self.ports.bn_rest}"
        self.genesis_time = 0
        self.bn: Child | None = None
        self.recorder: Child | None = None
        self.nodes: list[Child] = []
        self.vcs: list[Child] = []
        self.killed: list[Child] = []

    def node_dir(self, i: int) -> Path:
        return self.folder / "cluster" / f"node{i}"

    def recording(self, i: int) -> Path:
        return self.folder / f"bn-answers-node{i}.jsonl"

    # -- start ---------------------------------------------------------------------------------------

    def create_cluster(self) -> None:
        peers = ",".join(f"{HOST}:{p}" for p in self.ports.peers)
        argv = covalidator(
            "create-cluster", "--nodes", str(NODES), "--validators", str(VALIDATORS), "--interop-keys",
            "--network", "devnet", "--peer-addresses", peers, "--kdf", "pbkdf2", "--kdf-cost", "1024",
            "--name", "lodestar e2e", "--out", str(self.folder / "cluster"),
        )  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        (self.folder / "create-cluster.log").write_text(done.stdout + done.stderr)
        if done.returncode != 0:
            raise ChildFailed(
                f"create-cluster exited with code {done.returncode}: {done.stderr.strip()[-500:]}"
            )

    def start_bn(self) -> None:
        self.genesis_time = int(time.time() + self.genesis_delay_s)
        bn_dir = self.folder / "bn"
        bn_dir.mkdir()
        argv = [
            str(self.lodestar_bn), "dev", "--genesisValidators", str(VALIDATORS),
            "--genesisTime", str(self.genesis_time), *PARAMS,
            "--rest.address", HOST, "--rest.port", str(self.ports.bn_rest), "--rest.namespace", "*",
            "--listenAddress", HOST, "--port", str(self.ports.bn_p2p), "--discv5", "false",
            "--dataDir", str(bn_dir / "data"),
        ]  # fmt: skip
        self.bn = self.children.spawn("bn", argv, cwd=bn_dir)  # it writes genesis.ssz into its cwd
        self.children.wait_until(
            "the Lodestar BN's REST API",
            lambda: get_json(f"{self.bn_url}/eth/v1/node/version") is not None,
            START_TIMEOUT_S,
            [self.bn],
        )

    def start_recorder(self) -> None:
        argv = [
            sys.executable, str(HERE / "record_proxy.py"), "--upstream", self.bn_url,
            "--genesis-time", str(self.genesis_time), "--seconds-per-slot", str(SECONDS_PER_SLOT),
            "--max-body", "2048",
            *(f"--listen={HOST}:{port}={self.recording(i)}" for i, port in enumerate(self.ports.recorder)),
        ]  # fmt: skip
        self.recorder = self.children.spawn("recorder", argv)
        for port in self.ports.recorder:
            self.children.wait_until(
                "the recorder",
                lambda port=port: get_json(f"http://{HOST}:{port}/eth/v1/node/version") is not None,
                START_TIMEOUT_S,
                [self.recorder],
            )

    def node_argv(self, i: int) -> list[str]:
        signer = ["--signer-api", f"{HOST}:{self.ports.signer[i]}"] if self.mode == "signer" else []
        return covalidator(
            "run", "--lock", str(self.node_dir(i) / "cluster-lock.json"), "--node-dir", str(self.node_dir(i)),
            "--beacon-node", f"http://{HOST}:{self.ports.recorder[i]}",
            "--validator-api", f"{HOST}:{self.ports.api[i]}", "--p2p", f"{HOST}:{self.ports.peers[i]}",
            "--data-dir", str(self.folder / f"data{i}"), "--monitoring", "off", *signer,
        )  # fmt: skip

    def start_nodes(self) -> None:
        if self.mode == "direct":
            return
        for i in range(NODES):
            self.nodes.append(self.children.spawn(f"node{i}", self.node_argv(i)))
        for i in range(NODES):
            self.children.wait_until(
                f"node{i} (every peer connected)",
                lambda i=i: self._node_ready(i),
                START_TIMEOUT_S,
                self._core(),
            )

    def _node_ready(self, i: int) -> bool:
        status = self.node_status(i)
        return isinstance(status, dict) and status.get("peers_connected") == NODES - 1

    def node_status(self, i: int) -> dict[str, object] | None:
        answer = get_json(f"http://{HOST}:{self.ports.api[i]}{STATUS_PATH}")
        return answer.get("data") if isinstance(answer, dict) else None

    def start_vcs(self) -> None:
        for i in range(NODES):
            vc_dir = self.folder / f"vc{i}"
            vc_dir.mkdir(parents=True)
            argv = [
                str(self.lodestar), "validator", "--network", "dev", *PARAMS, "--dataDir", str(vc_dir / "data"),
                "--beaconNodes", self.vc_beacon_node(i), *self.vc_keys(i, vc_dir),
            ]  # fmt: skip
            self.vcs.append(self.children.spawn(f"vc{i}", argv, cwd=vc_dir))
        for i in range(NODES):
            self.children.wait_until(
                f"vc{i} looking up its validators",
                lambda i=i: self._vc_seen(i),
                START_TIMEOUT_S,
                self._core(),
            )

    def vc_beacon_node(self, i: int) -> str:
        port = self.ports.recorder[i] if self.mode == "direct" else self.ports.api[i]
        return f"http://{HOST}:{port}"

    def vc_keys(self, i: int, vc_dir: Path) -> list[str]:
        """The VC's key flags: the signer's URL (signer mode), or keystores copied into its folder (the VC
        leaves a .lock file beside every keystore): node i's shares, or validators 2i, 2i+1 (direct)."""
        if self.mode == "signer":
            return ["--externalSigner.url", f"http://{HOST}:{self.ports.signer[i]}", "--externalSigner.fetch"]
        keys = vc_dir / "keys"
        keys.mkdir()
        password = vc_dir / "password.txt"
        if self.mode == "middleware":
            for keystore in sorted((self.node_dir(i) / "validator_keys").glob("keystore-*.json")):
                shutil.copy(keystore, keys / keystore.name)
            shutil.copy(self.node_dir(i) / "validator_keys" / "keystore-0.txt", password)  # one per node
        else:
            full = self.folder / "full-keys"
            if not full.is_dir():
                argv = [
                    sys.executable,
                    str(HERE / "make_keystores.py"),
                    str(full),
                    "--validators",
                    str(VALIDATORS),
                ]
                subprocess.run(argv, check=True, capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
            for keystore in sorted((full / f"vc{i}").glob("keystore-*.json")):
                shutil.copy(keystore, keys / keystore.name)
            shutil.copy(full / "password.txt", password)
        return ["--importKeystores", str(keys), "--importKeystoresPassword", str(password)]

    def voluntary_exit(self, i: int, group_pubkey: str) -> tuple[int, str]:
        """Operator i runs `lodestar validator voluntary-exit` for one validator through its covalidator
        node (its validator API as the BN; its signer API, or its share keystores, as the keys), as an
        operator would. (exit code, the output's tail)."""
        folder = self.folder / f"exit{i}"
        folder.mkdir(parents=True, exist_ok=True)
        if self.mode == "signer":
            keys = ["--externalSigner.url", f"http://{HOST}:{self.ports.signer[i]}",
                    "--externalSigner.pubkeys", group_pubkey]  # fmt: skip
            pubkey = group_pubkey
        else:
            keys = self.vc_keys(i, folder)
            lock = json.loads((self.node_dir(i) / "cluster-lock.json").read_text())
            entry = next(
                v for v in lock["distributed_validators"] if v["distributed_public_key"] == group_pubkey
            )
            pubkey = entry["public_shares"][i]  # a middleware-mode VC knows its share pubkey only
        argv = [
            str(self.lodestar), "validator", "voluntary-exit", "--network", "dev", *PARAMS,
            "--dataDir", str(folder / "data"), "--beaconNodes", self.vc_beacon_node(i),
            *keys, "--pubkeys", pubkey, "--yes",
        ]  # fmt: skip
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL, cwd=folder
        )
        (folder / "voluntary-exit.log").write_text(done.stdout + done.stderr)
        return done.returncode, (done.stdout + done.stderr).strip()[-400:]

    def _vc_seen(self, i: int) -> bool:
        """VC i has looked up its validators (share or group pubkeys), which reached the BN (through node i)."""
        path = self.recording(i)
        lines = path.read_text(errors="replace").splitlines() if path.is_file() else []
        return any(
            '"/eth/v1/beacon/states/head/validators"' in x and '"User-Agent":"node-fetch' in x for x in lines
        )

    def kill_node(self, i: int) -> None:
        """SIGKILL node i (the fault run); it stays out of `check()` until restarted."""
        node = self.nodes[i]
        os.kill(node.pid, signal.SIGKILL)
        node.process.wait()
        self.killed.append(node)

    def restart_node(self, i: int) -> None:
        """Node i again, on its data folder (store and trace survive the kill)."""
        self.nodes[i] = self.children.spawn(f"node{i}-restarted", self.node_argv(i))

    def _core(self) -> list[Child]:
        return [
            c
            for c in (self.bn, self.recorder, *self.nodes, *self.vcs)
            if c is not None and c not in self.killed
        ]

    def check(self) -> None:
        """ChildFailed when any process of the devnet has exited."""
        self.children.check_alive(self._core())

    # -- stop ----------------------------------------------------------------------------------------

    def stop(self) -> dict[str, str]:
        """Every process we started, by pid, in reverse order of need."""
        notes: dict[str, str] = {}
        for vc in self.vcs:
            notes[vc.name] = stop_child(vc, [(signal.SIGINT, 15.0)])
        for node in self.nodes:
            notes[node.name] = stop_child(node, [(signal.SIGTERM, 20.0)])
        if self.bn is not None:
            notes["bn"] = stop_child(self.bn, [(signal.SIGINT, 8.0), (signal.SIGINT, 15.0)])
        if self.recorder is not None:
            notes["recorder"] = stop_child(self.recorder, [(signal.SIGINT, 10.0)])
        self.children.stop_all()  # closes the log files; SIGKILLs nothing that is still ours by now
        return notes
