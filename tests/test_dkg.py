"""`covalidator dkg` as real processes on 127.0.0.1: 4 and 7 operators make a cluster with no dealer,
and each failure the ceremony must name ends it on every honest node with nothing written.

Oracles outside the code under test: `combine` (Lagrange over the keystores' shares) against the
lock's group keys, py_ecc for every share's public key and the deposit signatures, the deposit roots
merkleized by hand (tests/test_deposit.py), and four `covalidator run` processes with their VCs
(`covalidator demo --dkg`) that run an epoch on the folders the ceremony wrote, every duty judged by
the devnet BN."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from py_ecc.bls import G2ProofOfPossession as pyecc_bls

from covalidator.model.crypto import bls, keystore
from covalidator.runtime import keys_io
from covalidator.runtime.cli import main
from tests.helpers.node_proc import COVALIDATOR, FORK_VERSION, GVR, free_ports

from .test_deposit import oracle_data_root, oracle_message_root, oracle_signing_root

WITHDRAW = "0x" + "aa" * 20
FEES = "0x" + "bb" * 20
OUTPUTS = (keys_io.LOCK_FILE, keys_io.KEYS_DIR, keys_io.DEPOSIT_FILE)


def cli(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def operators(folder: Path, n: int) -> str:
    keys = [cli("identity", "create", "--out", str(folder / f"node{i}")).output.strip() for i in range(n)]
    return ",".join(f"{k}@127.0.0.1:{p}" for k, p in zip(keys, free_ports(n), strict=True))


def definition(folder: Path, members: str, n: int, validators: int, name: str = "d.json") -> Path:
    path = folder / name
    cli(
        "create-definition", "--operators", members, "--validators", str(validators), "--network", "devnet",
        "--fork-version", FORK_VERSION, "--genesis-validators-root", GVR,
        "--withdrawal-address", WITHDRAW, "--fee-recipient", FEES, "--out", str(path),
    )  # fmt: skip
    for i in range(n):
        cli("definition", "sign", "--definition", str(path), "--node-dir", str(folder / f"node{i}"))
    return path


def start(
    folder: Path, i: int, path: Path, fault: str | None = None, round_s: float = 20, connect_s: float = 30
) -> subprocess.Popen[str]:
    env = dict(os.environ)
    if fault:
        env["COVALIDATOR_TEST_DKG_FAULT"] = fault
    log = open(folder / f"dkg{i}.log", "w")  # noqa: SIM115 - the child holds it
    return subprocess.Popen(
        [*COVALIDATOR, "dkg", "--definition", str(path), "--node-dir", str(folder / f"node{i}"),
         "--connect-timeout", str(connect_s), "--round-timeout", str(round_s), "--kdf", "pbkdf2", "--kdf-cost", "1"],
        stdout=log, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip


def finish(
    folder: Path, processes: dict[int, subprocess.Popen[str]], timeout: float = 90
) -> dict[int, tuple[int, str]]:
    out = {}
    for i, process in processes.items():
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        out[i] = (code, (folder / f"dkg{i}.log").read_text())
    return out


def ceremony(
    folder: Path, n: int, validators: int, faults: dict[int, str] | None = None, round_s: float = 20
) -> dict[int, tuple[int, str]]:
    path = definition(folder, operators(folder, n), n, validators)
    processes = {i: start(folder, i, path, (faults or {}).get(i), round_s) for i in range(n)}
    return finish(folder, processes)


def assert_nothing_written(folder: Path, n: int) -> None:
    for i in range(n):
        left = [p.name for p in (folder / f"node{i}").iterdir() if p.name != keys_io.IDENTITY_FILE]
        assert left == [], f"node{i} holds {left} after a failed ceremony"


def check_cluster(folder: Path, n: int, validators: int, withdraw: str = WITHDRAW, fees: str = FEES) -> None:
    locks = {(folder / f"node{i}" / keys_io.LOCK_FILE).read_bytes() for i in range(n)}
    assert len(locks) == 1
    lock = keys_io.load_lock(folder / "node0" / keys_io.LOCK_FILE)  # every check: signatures, shares
    assert (lock.nodes, len(lock.distributed_validators)) == (n, validators)
    for v in lock.distributed_validators:
        assert bls.public_shares_consistent(v.distributed_public_key, v.public_shares, lock.threshold)
        assert v.fee_recipient == fees and v.builder_registration is not None
    for i in range(n):  # every share is the one the lock lists for its node (py_ecc's public key)
        for j in range(validators):
            path = folder / f"node{i}" / keys_io.KEYS_DIR / f"keystore-{j}.json"
            share = keystore.decrypt(json.loads(path.read_text()), path.with_suffix(".txt").read_text())
            assert (
                pyecc_bls.SkToPk(int.from_bytes(share, "big"))
                == lock.distributed_validators[j].public_shares[i]
            )
    entries = json.loads((folder / "node0" / keys_io.DEPOSIT_FILE).read_text())
    for entry, v in zip(entries, lock.distributed_validators, strict=True):
        pubkey, wc = bytes.fromhex(entry["pubkey"]), bytes.fromhex(entry["withdrawal_credentials"])
        assert pubkey == v.distributed_public_key and wc == b"\x01" + bytes(11) + bytes.fromhex(withdraw[2:])
        message_root = oracle_message_root(pubkey, wc, entry["amount"])
        signature = bytes.fromhex(entry["signature"])
        assert entry["deposit_data_root"] == oracle_data_root(pubkey, wc, entry["amount"], signature).hex()
        assert pyecc_bls.Verify(pubkey, oracle_signing_root(message_root, lock.fork_version), signature)
    # any M folders combine to the lock's group keys (combine checks each share and the result)
    chosen = folder / "chosen"
    for i in range(n - lock.threshold, n):
        (chosen / f"node{i}").mkdir(parents=True)
        for name in (keys_io.LOCK_FILE, keys_io.KEYS_DIR):
            os.symlink(folder / f"node{i}" / name, chosen / f"node{i}" / name)
    cli(
        "combine",
        "--cluster-dir",
        str(chosen),
        "--output-dir",
        str(folder / "combined"),
        "--kdf",
        "pbkdf2",
        "--kdf-cost",
        "1",
    )
    for j, v in enumerate(lock.distributed_validators):
        path = folder / "combined" / f"keystore-{j}.json"
        secret = keystore.decrypt(json.loads(path.read_text()), path.with_suffix(".txt").read_text())
        assert pyecc_bls.SkToPk(int.from_bytes(secret, "big")) == v.distributed_public_key


@pytest.mark.slow
def test_four_operators_make_a_cluster_and_the_demo_runs_on_it(tmp_path: Path) -> None:
    """`covalidator demo --dkg`: 4 `covalidator dkg` processes make 8 validators' keys, then the nodes,
    the devnet BN and VCs run an epoch on them: every duty succeeds (the BN's judge verifies every
    signature against the lock's group keys)."""
    from covalidator.runtime.devnet.local_cluster import DEMO_FEE_RECIPIENT

    from .test_demo import RUN_TIMEOUT_S, run_bounded

    folder = tmp_path / "demo"
    argv = [
        *COVALIDATOR,
        "demo",
        "--dkg",
        "--nodes",
        "4",
        "--validators",
        "8",
        "--epochs",
        "1",
        "--json",
        "--keep",
        str(folder),
    ]
    done = run_bounded(argv, RUN_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["duties"] >= 70 and summary["succeeded"] == summary["duties"], summary
    assert summary["slashable_pairs"] == 0 and summary["invalid_signatures"] == 0
    assert all(summary["exit_codes"][f"dkg{i}"] == 0 for i in range(4)), summary["exit_codes"]
    check_cluster(folder / "cluster", 4, 8, withdraw=DEMO_FEE_RECIPIENT, fees=DEMO_FEE_RECIPIENT)


def test_seven_operators(tmp_path: Path) -> None:
    results = ceremony(tmp_path, 7, 1)
    assert all(code == 0 for code, _ in results.values()), results
    check_cluster(tmp_path, 7, 1)


@pytest.mark.parametrize(
    ("fault", "named"),
    [
        ("bad-share:1", "operator 2 (0x"),  # node 2 sends node 1 a bad share
        ("equivocate:3", "operator 2 (0x"),  # node 2 sends node 3 other commitments
    ],
)
def test_a_misbehaving_operator_is_named_by_every_honest_node(tmp_path: Path, fault: str, named: str) -> None:
    results = ceremony(tmp_path, 4, 2, faults={2: fault})
    what = "fails verification" if fault.startswith("bad-share") else "broadcast equivocation"
    for i in (0, 1, 3):
        code, log = results[i]
        assert code == 1, f"node{i}: {log}"
        failure = next(line for line in log.splitlines() if "dkg failed" in line)
        assert named in failure.split(":", 2)[-1] and what in failure, failure
    assert_nothing_written(tmp_path, 4)


def test_a_missing_operator_is_named_after_the_timeout_and_a_rerun_with_a_new_nonce_works(
    tmp_path: Path,
) -> None:
    path = definition(tmp_path, operators(tmp_path, 4), 4, 1)
    processes = {i: start(tmp_path, i, path, connect_s=12) for i in range(3)}  # node 3 never comes
    for i, (code, log) in finish(tmp_path, processes).items():
        assert code == 1 and "not connected within 12 s to operator 3 (0x" in log, f"node{i}: {log}"
    assert_nothing_written(tmp_path, 4)
    again = tmp_path / "again.json"
    document = json.loads(path.read_text())
    cli(
        "create-definition", "--operators",
        ",".join(f"{o['identity_public_key']}@{o['address']}" for o in document["operators"]),
        "--validators", "1", "--network", "devnet", "--fork-version", FORK_VERSION,
        "--genesis-validators-root", GVR, "--withdrawal-address", WITHDRAW, "--fee-recipient", FEES,
        "--out", str(again),
    )  # fmt: skip
    for i in range(4):
        cli("definition", "sign", "--definition", str(again), "--node-dir", str(tmp_path / f"node{i}"))
    assert json.loads(again.read_text())["nonce"] != document["nonce"]
    results = finish(tmp_path, {i: start(tmp_path, i, again) for i in range(4)})
    assert all(code == 0 for code, _ in results.values()), results
    check_cluster(tmp_path, 4, 1)


def test_another_definition_is_named(tmp_path: Path) -> None:
    members = operators(tmp_path, 4)
    path = definition(tmp_path, members, 4, 1)
    other = definition(tmp_path, members, 4, 1, name="other.json")  # the same operators, another nonce
    processes = {i: start(tmp_path, i, other if i == 3 else path) for i in range(4)}
    for i, (code, log) in finish(tmp_path, processes).items():
        assert code == 1, f"node{i}: {log}"
        assert "runs another cluster definition" in log, f"node{i}: {log}"
        if i != 3:
            assert "operator 3 (0x" in log.split("dkg failed")[-1]
    assert_nothing_written(tmp_path, 4)


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL])
def test_an_interrupted_or_killed_operator_ends_the_ceremony(tmp_path: Path, how: signal.Signals) -> None:
    path = definition(tmp_path, operators(tmp_path, 4), 4, 1)
    processes = {
        i: start(tmp_path, i, path, "pause:shares:60" if i == 1 else None, round_s=6) for i in range(4)
    }
    log1 = tmp_path / "dkg1.log"
    until = time.monotonic() + 60
    while "connected to all" not in log1.read_text():
        assert time.monotonic() < until, log1.read_text()
        time.sleep(0.2)
    time.sleep(1.0)  # past hello, commit and echo: node 1 now waits before sending its shares
    processes[1].send_signal(how)
    results = finish(tmp_path, processes)
    expected = "was interrupted" if how == signal.SIGINT else "no shares message within 6 s from operator 1"
    for i in (0, 2, 3):
        code, log = results[i]
        assert code == 1 and expected in log and "operator 1 (0x" in log, f"node{i}: {log}"
    assert results[1][0] != 0
    assert_nothing_written(tmp_path, 4)


def test_an_abort_told_to_one_operator_reaches_every_operator(tmp_path: Path) -> None:
    """Operator 2 tells operator 0 alone that it aborts, then goes silent: operator 0 passes it on, so
    operators 1 and 3 stop at once with the cause rather than time out blaming operator 0."""
    results = ceremony(tmp_path, 4, 1, faults={2: "abort-to:0"}, round_s=30)
    for i in (0, 1, 3):
        code, log = results[i]
        assert code == 1 and "aborted the ceremony: test: aborting towards one operator" in log, (
            f"node{i}: {log}"
        )
        assert "no commit message" not in log, f"node{i}: {log}"
    assert_nothing_written(tmp_path, 4)


def test_a_lost_message_is_sent_again(tmp_path: Path) -> None:
    """Operator 1's first shares message to operator 3 is lost (as a frame in flight on a breaking
    connection is): sent again while operator 3 waits, the ceremony completes."""
    results = ceremony(tmp_path, 4, 1, faults={1: "drop:shares:3"})
    assert all(code == 0 for code, _ in results.values()), results
    check_cluster(tmp_path, 4, 1)


def test_an_operator_gone_after_the_lock_round_leaves_the_others_unconfirmed(tmp_path: Path) -> None:
    """Operator 3 ends right after sending its lock signature: the others hold the whole cluster and
    write it (they may be all that is left of operator 3's part), but exit 1 saying not to deposit."""
    results = ceremony(tmp_path, 4, 1, faults={3: "exit-after:lock"}, round_s=6)
    for i in (0, 1, 2):
        code, log = results[i]
        assert code == 1 and "not every operator confirmed" in log and "do not deposit" in log, (
            f"node{i}: {log}"
        )
        keys_io.load_lock(tmp_path / f"node{i}" / keys_io.LOCK_FILE)
    assert results[3][0] == 9
