"""`covalidator run` as a process against a fake beacon node on 127.0.0.1: configuration errors are one
line and exit 2; a running node answers /eth/v1/node/version itself, proxies the rest, maps pubkeys,
answers a request it can never decide with a Beacon-API error, and stops cleanly on SIGTERM; its trace
replays action for action, and a tampered trace names the step where it diverges."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner

from covalidator.model.node.events import Started, Tick
from covalidator.model.node.state import NodeState
from covalidator.model.node.step import step
from covalidator.runtime import keys_io
from covalidator.runtime.cli import main
from covalidator.runtime.node_setup import node_config
from covalidator.runtime.trace import TraceHeader, TraceRecorder
from tests.helpers.aio import listening_socket, port_of, run, until
from tests.helpers.fake_bn import GENESIS, SPEC, FakeBN
from tests.helpers.node_proc import (
    COVALIDATOR,
    chain_bn,
    free_port,
    group_pubkeys,
    make_cluster,
    next_duty_slot,
    start_node,
    stop_node,
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cluster") / "c"
    make_cluster(folder)
    return folder


def cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env=env)
    return result.exit_code, result.stderr


def node_args(cluster: Path, index: int = 0) -> list[str]:
    node = cluster / f"node{index}"
    return ["--lock", str(node / keys_io.LOCK_FILE), "--node-dir", str(node)]


def assert_one_line(code: int, stderr: str, *needles: str) -> None:
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_run_configuration_errors_are_one_line_and_exit_2(cluster: Path, tmp_path: Path) -> None:
    bn = ["--beacon-node", "http://127.0.0.1:1"]
    assert_one_line(*cli("run", *bn), "--lock")
    assert_one_line(
        *cli("run", "--lock", str(tmp_path / "none.json"), "--node-dir", str(tmp_path), *bn), "none.json"
    )
    assert_one_line(*cli("run", *node_args(cluster), "--beacon-node", "localhost:5052"), "--beacon-node")
    assert_one_line(*cli("run", *node_args(cluster), *bn, "--validator-api", "3600"), "--validator-api")
    assert_one_line(*cli("run", *node_args(cluster), *bn, "--p2p", "host:port"), "--p2p")
    # every flag as an environment variable too
    env = {
        "COVALIDATOR_LOCK": node_args(cluster)[1],
        "COVALIDATOR_NODE_DIR": str(cluster / "node0"),
        "COVALIDATOR_BEACON_NODE": "http://127.0.0.1:1",
        "COVALIDATOR_VALIDATOR_API": "nowhere",
    }
    assert_one_line(*cli("run", env=env), "--validator-api", "nowhere")
    # a node folder that does not belong to the lock: another cluster's identity key, another node's keys
    other = tmp_path / "other"
    make_cluster(other, nodes=3, validators=1)
    mixed = tmp_path / "mixed"
    shutil.copytree(cluster / "node0", mixed)
    shutil.copy(other / "node0" / keys_io.IDENTITY_FILE, mixed / keys_io.IDENTITY_FILE)
    lock = str(cluster / "node0" / keys_io.LOCK_FILE)
    assert_one_line(*cli("run", "--lock", lock, "--node-dir", str(mixed), *bn), "not the identity key")
    shutil.copy(cluster / "node0" / keys_io.IDENTITY_FILE, mixed / keys_io.IDENTITY_FILE)
    shutil.copy(
        cluster / "node1" / keys_io.KEYS_DIR / "keystore-0.json", mixed / keys_io.KEYS_DIR / "keystore-0.json"
    )
    assert_one_line(*cli("run", "--lock", lock, "--node-dir", str(mixed), *bn), "node1's share")
    (mixed / keys_io.IDENTITY_FILE).write_text("garbage")
    assert_one_line(*cli("run", "--lock", lock, "--node-dir", str(mixed), *bn), "identity-key.pem")


def test_an_existing_lock_whose_threshold_the_theorem_refutes_is_refused_at_run(tmp_path: Path) -> None:
    """A lock made under the old (N/2, N] rule, 3-of-5 and signed by every operator, no longer runs."""
    from covalidator.model.cluster import lock as cluster_lock

    old = tmp_path / "old"
    make_cluster(old, nodes=5, validators=1)
    document = json.loads((old / "node0" / keys_io.LOCK_FILE).read_text())
    document["threshold"] = 3
    content = {k: v for k, v in document.items() if k not in ("lock_hash", "node_signatures")}
    lock_hash = cluster_lock.compute_lock_hash(content)
    keys = [keys_io.load_identity_key(old / f"node{i}" / keys_io.IDENTITY_FILE) for i in range(5)]
    document["lock_hash"] = "0x" + lock_hash.hex()
    document["node_signatures"] = ["0x" + cluster_lock.sign_lock_hash(k, lock_hash).hex() for k in keys]
    (old / "node0" / keys_io.LOCK_FILE).write_text(json.dumps(document))
    assert_one_line(
        *cli("run", *node_args(old), "--beacon-node", "http://127.0.0.1:1"),
        "threshold 3 is unsafe for N = 5 operators",
        "M must exceed (N + F) / 2 = 3: use 4..5",
    )


def test_a_beacon_node_on_another_chain_is_one_line_and_exit_2(cluster: Path) -> None:
    async def scenario() -> None:
        bn = await FakeBN().standard().start()
        bn.answer(
            "GET",
            "/eth/v1/beacon/genesis",
            {
                "data": {
                    "genesis_time": "1700000000",
                    "genesis_validators_root": "0x" + "4b" * 32,
                    "genesis_fork_version": "0x01017000",
                }
            },
        )
        # another chain's spec too (a BN whose spec names the lock's version is this chain)
        bn.answer("GET", "/eth/v1/config/spec", {"data": {**SPEC, "GENESIS_FORK_VERSION": "0x01017000"}})
        try:
            process = await asyncio.create_subprocess_exec(
                *COVALIDATOR,
                "run",
                *node_args(cluster),
                "--beacon-node",
                bn.url,
                "--validator-api",
                f"127.0.0.1:{free_port()}",
                "--p2p",
                f"127.0.0.1:{free_port()}",
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            _, err = await asyncio.wait_for(process.communicate(), 20)
        finally:
            await bn.stop()
        assert_one_line(process.returncode or 0, err.decode(), "another chain", "0x01017000", "0x10000038")

    run(scenario(), 30)


def test_a_node_serves_the_vc_proxies_the_bn_stops_on_sigterm_and_its_trace_replays(
    cluster: Path, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    pubkeys = group_pubkeys(cluster)
    lock = keys_io.load_lock(cluster / "node0" / keys_io.LOCK_FILE)
    share = "0x" + lock.distributed_validators[0].public_shares[0].hex()

    async def scenario() -> None:
        genesis = int(time.time()) - 5
        bn = await chain_bn(pubkeys, genesis_time=genesis).start()
        api = free_port()
        url = f"http://127.0.0.1:{api}"
        process = await start_node(cluster, 0, bn.url, api, "--data-dir", str(data_dir), "--round-ms", "200")
        try:
            async with aiohttp.ClientSession() as session:

                async def status() -> dict[str, object] | None:
                    try:
                        async with session.get(f"{url}/covalidator/v1/status") as response:
                            return dict((await response.json())["data"])
                    except aiohttp.ClientError:
                        return None

                deadline = time.monotonic() + 20
                while await status() is None:
                    assert process.returncode is None, (cluster / "node0.log").read_text()
                    assert time.monotonic() < deadline, "the node's API never came up"
                    await asyncio.sleep(0.1)

                async with session.get(f"{url}/eth/v1/node/version") as response:
                    version = (await response.json())["data"]["version"]
                assert version.startswith("covalidator/v") and "FakeBN/v1" in version
                assert bn.count("GET", "/eth/v1/node/version") == 1  # once at start, never for the VC

                before = bn.count("GET", "/eth/v1/node/syncing")
                async with session.get(f"{url}/eth/v1/node/syncing") as response:
                    assert (await response.json())["data"]["head_slot"] == "10"
                assert bn.count("GET", "/eth/v1/node/syncing") == before + 1

                path = "/eth/v1/beacon/states/head/validators"
                async with session.post(f"{url}{path}", json={"ids": [share]}) as response:
                    records = (await response.json())["data"]
                assert [r["validator"]["pubkey"] for r in records] == [share]  # the BN saw the group key
                assert json.loads(bn.hits[-1][3])["ids"] == [pubkeys[0]]

                # duties fetched, and attestation data asked of the BN, for the cluster's validators
                await until(
                    lambda: bn.count("GET", "/eth/v1/validator/attestation_data") >= 1, 15, "beacon data"
                )
                # a request for a duty that cannot be decided (no peers are up): held until its wait ends
                # (0.9 slot, or the duty's deadline), then a Beacon-API error, not a dropped connection
                slot = next_duty_slot(genesis, 0, lead_s=1.0)  # validator 0's duty, not yet past
                # asked during the slot before (a VC asks at the slot; the node refuses what is further ahead)
                await asyncio.sleep(max(0.0, genesis + (slot - 1) - time.time()))
                asked = time.monotonic()
                async with session.get(
                    f"{url}/eth/v1/validator/attestation_data",
                    params={"slot": str(slot), "committee_index": "0"},
                ) as response:
                    body = await response.json()
                    assert response.status >= 500, body
                assert body.get("code") == response.status and f"attester@{slot}" in body["message"], body
                assert 0.8 <= time.monotonic() - asked < 5, "not held, or held too long"
                async with session.get(
                    f"{url}/eth/v1/validator/attestation_data", params={"slot": "x", "committee_index": "0"}
                ) as response:
                    assert response.status == 400  # bad input: a clear 400, the node lives on
                assert process.returncode is None
        finally:
            code = await stop_node(process)
            await bn.stop()
        log = (cluster / "node0.log").read_text()
        assert code == 0, log
        assert "stopped" in log.splitlines()[-1], log[-2000:]
        assert "Traceback" not in log, log

    run(scenario(), 60)
    trace = data_dir / "trace"
    assert list(trace.glob("trace-*.jsonl")), "no trace written"
    replayed = subprocess.run(
        [*COVALIDATOR, "replay", str(trace)], capture_output=True, text=True, timeout=60
    )
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "every action reproduced" in replayed.stdout
    for event in ("DutiesFetched", "BeaconDataFetched", "HeadChanged", "VCRequest", "TimerFired"):
        assert event in replayed.stdout, replayed.stdout

    same_lock = subprocess.run(
        [*COVALIDATOR, "replay", str(trace), "--lock", str(cluster / "node3" / keys_io.LOCK_FILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert same_lock.returncode == 0, same_lock.stdout + same_lock.stderr
    make_cluster(tmp_path / "other", nodes=3, validators=1)
    assert_one_line(
        *cli("replay", str(trace), "--lock", str(tmp_path / "other" / "node0" / keys_io.LOCK_FILE)),
        "is not the trace's",
    )

    # tamper with one recorded action: the replay names that step
    segment = sorted(trace.glob("trace-*.jsonl"))[0]
    lines = segment.read_text().splitlines()
    number = next(n for n, line in enumerate(lines) if '"FetchDuties"' in line and '"actions"' in line)
    step = json.loads(lines[number])
    for action in step["actions"]:
        if action["type"] == "FetchDuties":
            action["epoch"] += 7
            break
    lines[number] = json.dumps(step)
    segment.write_text("\n".join(lines) + "\n")
    tampered = subprocess.run(
        [*COVALIDATOR, "replay", str(trace)], capture_output=True, text=True, timeout=60
    )
    assert tampered.returncode == 1, tampered.stdout + tampered.stderr
    assert f"DIVERGED at step {step['i']} (" in tampered.stdout, tampered.stdout
    assert "FetchDuties" in tampered.stdout


def test_replay_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    assert_one_line(*cli("replay", str(tmp_path / "missing")), "missing")
    (tmp_path / "trace-000001.jsonl").write_text("not json\n")
    assert_one_line(*cli("replay", str(tmp_path)), "trace-000001.jsonl")


def test_a_port_in_use_or_an_unusable_data_folder_is_one_line_and_exit_2(cluster: Path) -> None:
    async def scenario() -> None:
        bn = await chain_bn(group_pubkeys(cluster), genesis_time=int(time.time())).start()
        taken = listening_socket()
        port = port_of(taken)
        try:
            process = await asyncio.create_subprocess_exec(
                *COVALIDATOR,
                "run",
                *node_args(cluster, 1),
                "--beacon-node",
                bn.url,
                "--validator-api",
                f"127.0.0.1:{port}",
                "--p2p",
                f"127.0.0.1:{free_port()}",
                "--data-dir",
                str(cluster / "scratch1"),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            _, err = await asyncio.wait_for(process.communicate(), 20)
            assert_one_line(
                process.returncode or 0, err.decode(), "cannot serve the validator API", str(port)
            )
            not_a_folder = cluster / "a-file"
            not_a_folder.write_text("")
            process = await asyncio.create_subprocess_exec(
                *COVALIDATOR,
                "run",
                *node_args(cluster, 1),
                "--beacon-node",
                bn.url,
                "--validator-api",
                f"127.0.0.1:{free_port()}",
                "--p2p",
                f"127.0.0.1:{free_port()}",
                "--data-dir",
                str(not_a_folder),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            _, err = await asyncio.wait_for(process.communicate(), 20)
            assert_one_line(process.returncode or 0, err.decode(), "data folder", "a-file")
        finally:
            taken.close()
            await bn.stop()

    run(scenario(), 30)


def test_without_a_beacon_node_it_waits_stops_on_sigterm_or_gives_up_after_bn_wait(cluster: Path) -> None:
    async def scenario() -> None:
        dead = f"http://127.0.0.1:{free_port()}"
        base = [
            *COVALIDATOR,
            "run",
            *node_args(cluster, 2),
            "--beacon-node",
            dead,
            "--validator-api",
            f"127.0.0.1:{free_port()}",
            "--data-dir",
            str(cluster / "scratch2"),
        ]
        waiting = await asyncio.create_subprocess_exec(*base, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        await asyncio.sleep(2.0)
        assert waiting.returncode is None  # still waiting for a BN
        waiting.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(waiting.communicate(), 10)
        assert waiting.returncode == 0, err.decode()
        assert "waiting for a beacon node" in err.decode()
        giving_up = await asyncio.create_subprocess_exec(
            *base, "--bn-wait", "1", stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        _, err = await asyncio.wait_for(giving_up.communicate(), 20)
        assert giving_up.returncode == 2
        assert err.decode().strip().splitlines()[-1].startswith("error: no beacon node answered within 1 s")

    run(scenario(), 40)


def test_replay_of_a_rotated_trace_starts_at_its_first_started(cluster: Path, tmp_path: Path) -> None:
    """Segments rotated away: the retained steps before a Started cannot be rebuilt and are skipped;
    without any Started the replay says so (exit 2); divergences are named by the trace's step number."""
    lock = keys_io.load_lock(cluster / "node0" / keys_io.LOCK_FILE)
    document = keys_io.read_json(cluster / "node0" / keys_io.LOCK_FILE)
    genesis = {**GENESIS, "genesis_time": "1700000000"}
    header = TraceHeader(
        "0x" + lock.lock_hash.hex(), 1, dict(SPEC), genesis, {"round_duration_ms": 300}, document
    )
    config = node_config(lock, 1, header.spec, header.genesis, header.config)
    start_ms = 1_700_000_000_000 + 100 * 6000
    state = NodeState(config)
    with TraceRecorder(tmp_path / "t", header) as recorder:
        recorder.record(Tick(start_ms - 5), [])  # the tail of a run whose start was rotated away
        for event in (Started(start_ms), Tick(start_ms + 1000), Tick(start_ms + 2000)):
            state, actions = step(state, event)
            recorder.record(event, actions)
    replayed = cli_out("replay", str(tmp_path / "t"))
    assert replayed[0] == 0, replayed
    assert "replayed 3 steps" in replayed[1] and "skipped 1 steps before the first Started" in replayed[1]

    only_tail = tmp_path / "tail"
    with TraceRecorder(only_tail, header) as recorder:
        recorder.record(Tick(start_ms + 5), [])
    assert_one_line(*cli("replay", str(only_tail)), "no Started event")

    lines = (tmp_path / "t" / "trace-000001.jsonl").read_text().splitlines()
    started_actions = json.loads(lines[4])
    assert started_actions["i"] == 1 and started_actions["actions"]
    started_actions["actions"] = started_actions["actions"][:-1]
    lines[4] = json.dumps(started_actions)
    (tmp_path / "t" / "trace-000001.jsonl").write_text("\n".join(lines) + "\n")
    code, out = cli_out("replay", str(tmp_path / "t"))
    assert code == 1 and "DIVERGED at step 1 (Started)" in out, out


def cli_out(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout
