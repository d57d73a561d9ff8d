"""A corrupt, foreign or lost store (issue 16): the node never starts on an empty or broken slashing
history. `covalidator run` refuses with one line and exit code 2; `covalidator slashing export` and
`check` refuse a corrupt file the same way. And a store whose disk fills keeps working once space
returns (SQLite ends the transaction itself on SQLITE_FULL: the store must not hide that error)."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import pytest

from covalidator.model.duty import DutyId, DutyKind
from covalidator.model.node.events import Persist
from covalidator.model.slashing.rules import SignedAttestation
from covalidator.runtime import keys_io
from covalidator.runtime.store import Store, StoreError
from tests.helpers.aio import run
from tests.helpers.node_proc import COVALIDATOR, chain_bn, free_port, group_pubkeys, make_cluster
from tests.test_runtime_node import assert_one_line, cli, node_args

ROOT = b"\x4b" * 32  # the genesis validators root of tests.helpers.node_proc's chain
PUBKEY = "0x" + "a1" * 48


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cluster") / "c"
    make_cluster(folder)
    return folder


def filled_store(path: Path, cluster: bytes | None = None) -> None:
    with Store(path, ROOT, cluster=cluster) as store:
        for epoch in range(1, 400):
            store.check_batch([(bytes.fromhex(PUBKEY[2:]), _att(epoch))])


def _att(epoch: int) -> SignedAttestation:
    return SignedAttestation(epoch - 1, epoch, None)


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_a_truncated_or_garbled_store_is_refused_by_name(tmp_path: Path) -> None:
    truncated, garbled = tmp_path / "t.sqlite", tmp_path / "g.sqlite"
    filled_store(truncated)
    truncate(truncated, keep=0.99)  # part of the last page gone: opens, and silently misses records
    garbled.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4096)
    with pytest.raises(StoreError, match="corrupt"):
        Store(truncated, ROOT)
    with pytest.raises(StoreError, match="not a usable"):
        Store(garbled, ROOT)
    half = tmp_path / "h.sqlite"
    filled_store(half)
    truncate(half)
    with pytest.raises(StoreError, match="corrupt"):
        Store(half, ROOT)
    for path in (truncated, garbled, half):
        code, err = cli("slashing", "export", "--db", str(path))
        assert_one_line(code, err, str(path))
        code, err = cli("slashing", "check", "--db", str(path), "--pubkey", PUBKEY, "--attestation", "1", "2")
        assert_one_line(code, err, str(path))


def test_a_store_of_another_cluster_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    filled_store(path, cluster=b"\x01" * 32)
    Store(path, ROOT, cluster=b"\x01" * 32).close()  # its own cluster opens it
    with pytest.raises(StoreError, match="belongs to another cluster"):
        Store(path, ROOT, cluster=b"\x02" * 32)


def test_after_a_full_disk_the_store_commits_again(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite", ROOT)
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count = {pages}")
    action = Persist(DutyId(5, DutyKind.ATTESTER), {"data": "x" * 100_000}, "0x01")
    with pytest.raises(Exception, match="full"):  # the disk's own error, not a failed ROLLBACK
        store.persist(action)
    assert store.decided_since(0) == ()
    store._db.execute("PRAGMA max_page_count = 1000000")
    store.persist(action)
    assert [d.duty for d in store.decided_since(0)] == [action.duty]
    store.close()


def _run_node(cluster: Path, data: Path) -> tuple[int, str]:
    async def scenario() -> tuple[int, str]:
        bn = await chain_bn(group_pubkeys(cluster), genesis_time=int(time.time())).start()
        try:
            process = await asyncio.create_subprocess_exec(
                *COVALIDATOR,
                "run",
                *node_args(cluster),
                "--beacon-node",
                bn.url,
                "--data-dir",
                str(data),
                "--validator-api",
                f"127.0.0.1:{free_port()}",
                "--p2p",
                f"127.0.0.1:{free_port()}",
                "--monitoring",
                "off",
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            _, err = await asyncio.wait_for(process.communicate(), 30)
        finally:
            await bn.stop()
        return process.returncode or 0, err.decode()

    return run(scenario(), 40)


def test_run_refuses_a_corrupt_foreign_or_lost_store_in_one_line(cluster: Path, tmp_path: Path) -> None:
    store = "covalidator.sqlite"
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    filled_store(corrupt / store)
    truncate(corrupt / store, keep=0.99)
    assert_one_line(*_run_node(cluster, corrupt), "corrupt")

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    filled_store(foreign / store, cluster=b"\x07" * 32)
    assert keys_io.load_lock(cluster / "node0" / keys_io.LOCK_FILE).lock_hash != b"\x07" * 32
    assert_one_line(*_run_node(cluster, foreign), "belongs to another cluster")

    lost = tmp_path / "lost"
    (lost / "trace").mkdir(parents=True)
    (lost / "trace" / "trace-000001.jsonl").write_text("{}\n")  # this node ran here before
    (lost / store).write_bytes(b"")  # and its store is now empty
    assert_one_line(*_run_node(cluster, lost), "empty slashing history", "slashing import")
    assert (lost / store).stat().st_size == 0  # nothing was created in its place
