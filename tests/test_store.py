"""The durable store: crash safety under SIGKILL, concurrent writers, all-or-nothing imports."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from covalidator.model.slashing.interchange import InterchangeError, parse_interchange, to_json
from covalidator.model.slashing.rules import SignedAttestation, SignedBlock, is_staircase
from covalidator.runtime import store as store_module
from covalidator.runtime.store import GenesisMismatch, Store, StoreError

WRITER = Path(__file__).parent / "helpers" / "slashing_writer.py"
GVR = b"\x00" * 32


def run_writer(db: Path, seed: int, count: int, root_byte: int = -1) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WRITER), str(db), str(seed), str(count), str(root_byte)],
        stdout=subprocess.PIPE,
        text=True,
    )


def test_sigkill_never_loses_a_safe_verdict(tmp_path: Path) -> None:
    """Kill the writer at random moments; every "SAFE" it printed is in the DB after reopening, the DB
    passes integrity_check, and each validator's history still holds no slashable pair."""
    db = tmp_path / "db.sqlite"
    Store(db, GVR).close()
    rng = random.Random(3076)
    promised: set[tuple[bytes, int, int, bytes]] = set()
    for round_ in range(8):
        proc = run_writer(db, seed=round_, count=100_000)
        time.sleep(rng.uniform(0.3, 0.9))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 5 and parts[0] == "SAFE":  # a torn last line is not a promise
                promised.add((bytes.fromhex(parts[1]), int(parts[2]), int(parts[3]), bytes.fromhex(parts[4])))
        assert proc.returncode == -signal.SIGKILL
        with sqlite3.connect(db) as raw:
            assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        store = Store(db, GVR)
        recorded = {
            (pk, a.source_epoch, a.target_epoch, a.signing_root)
            for pk in {p[0] for p in promised}
            for a in store.history(pk).signed_attestations
        }
        missing = promised - recorded
        assert not missing, f"round {round_}: {len(missing)} SAFE verdicts not in the DB"
        for pk in {p[0] for p in promised}:
            assert is_staircase(store.history(pk).signed_attestations)
        store.close()
    assert len(promised) > 20, "the writer must have made progress between kills"


def test_concurrent_writers_never_both_pass(tmp_path: Path) -> None:
    """Three processes race to sign target t with different roots (double votes): exactly one wins each."""
    db = tmp_path / "db.sqlite"
    Store(db, GVR).close()
    count = 150
    procs = [run_writer(db, seed=0, count=count, root_byte=b) for b in (1, 2, 3)]
    outputs = [p.communicate()[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    winners: dict[int, int] = {}
    for out in outputs:
        for line in out.splitlines():
            word, _, source, _, _ = line.split()
            if word == "SAFE":
                winners[int(source)] = winners.get(int(source), 0) + 1
    assert winners, "no writer succeeded"
    assert all(n == 1 for n in winners.values()), winners
    store = Store(db, GVR)
    history = store.history(bytes([1]) * 48).signed_attestations
    assert len(history) == len(winners)
    assert is_staircase(history)


def test_check_without_record_changes_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite", GVR)
    pk = b"\x07" * 48
    assert store.check_attestation(pk, SignedAttestation(1, 2), record=False).safe
    assert store.export_interchange().data == ()
    assert store.check_attestation(pk, SignedAttestation(1, 2), record=True).safe
    assert not store.check_attestation(pk, SignedAttestation(0, 3), record=True).safe
    assert len(store.history(pk).signed_attestations) == 1


def test_batch_checks_items_against_each_other(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite", GVR)
    pk = b"\x07" * 48
    verdicts = store.check_batch(
        [
            (pk, SignedAttestation(1, 2, b"a" * 32)),
            (pk, SignedAttestation(1, 2, b"b" * 32)),
            (pk, SignedBlock(9)),
        ]
    )
    assert [v.safe for v in verdicts] == [True, False, True]


def document(entries: list[dict[str, object]], gvr: str = "0x" + "00" * 32) -> dict[str, object]:
    return {"metadata": {"interchange_format_version": "5", "genesis_validators_root": gvr}, "data": entries}


def test_import_is_all_or_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / "db.sqlite", GVR)
    good = {"pubkey": "0x" + "aa" * 48, "signed_blocks": [{"slot": "5"}], "signed_attestations": []}
    bad = {"pubkey": "0x" + "bb" * 48, "signed_blocks": [{"slot": "-1"}], "signed_attestations": []}
    with pytest.raises(InterchangeError, match=r"\$\.data\[1\]\.signed_blocks\[0\]\.slot"):
        store.import_interchange(parse_interchange(document([good, bad])))
    assert store.export_interchange().data == ()

    # a failure inside the transaction, after the first validator's rows were written, rolls back all
    other = {
        "pubkey": "0x" + "cc" * 48,
        "signed_blocks": [],
        "signed_attestations": [{"source_epoch": "1", "target_epoch": "2"}],
    }
    first = {
        "pubkey": "0x" + "dd" * 48,
        "signed_blocks": [{"slot": "3"}],
        "signed_attestations": [{"source_epoch": "1", "target_epoch": "2"}],
    }
    inter = parse_interchange(document([first, other]))
    calls = []

    def explode(history: object) -> bool:
        calls.append(history)
        if len(calls) == 2:
            raise RuntimeError("disk on fire")
        return True

    monkeypatch.setattr(store_module, "is_staircase", explode)
    with pytest.raises(RuntimeError):
        store.import_interchange(inter)
    monkeypatch.undo()
    assert len(calls) == 2
    assert store.export_interchange().data == ()
    store.import_interchange(inter)
    assert len(store.export_interchange().data) == 2


def test_genesis_root_is_bound(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="genesis validators root"):
        Store(tmp_path / "new.sqlite")
    assert not (tmp_path / "new.sqlite").exists()
    Store(tmp_path / "db.sqlite", GVR).close()
    with pytest.raises(GenesisMismatch):
        Store(tmp_path / "db.sqlite", b"\x01" * 32)
    store = Store(tmp_path / "db.sqlite")
    with pytest.raises(GenesisMismatch):
        store.import_interchange(parse_interchange(document([], "0x" + "11" * 32)))


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    Store(tmp_path / "db.sqlite", GVR).close()
    with sqlite3.connect(tmp_path / "db.sqlite") as raw:
        raw.execute("PRAGMA user_version = 999")
    with pytest.raises(StoreError, match="newer than this covalidator"):
        Store(tmp_path / "db.sqlite")


def test_uint64_extremes_round_trip(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite", GVR)
    pk = b"\x01" * 48
    top = 2**64 - 1
    assert store.check_attestation(pk, SignedAttestation(top - 1, top), record=True).safe
    assert store.check_block(pk, SignedBlock(top), record=True).safe
    assert store.check_block(pk, SignedBlock(0), record=True).refusal is not None
    assert not store.check_attestation(pk, SignedAttestation(0, top), record=True).safe
    exported = to_json(store.export_interchange())
    assert exported["data"][0]["signed_blocks"] == [{"slot": str(top)}]  # type: ignore[index]


def test_slashable_import_is_minified(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite", GVR)
    entry = {
        "pubkey": "0x" + "cc" * 48,
        "signed_blocks": [],
        "signed_attestations": [
            {"source_epoch": "5", "target_epoch": "2"},
            {"source_epoch": "1", "target_epoch": "9"},
        ],
    }
    report = store.import_interchange(parse_interchange(document([entry])))
    assert report.minified == 1
    pk = b"\xcc" * 48
    assert store.history(pk).signed_attestations == (SignedAttestation(5, 9),)
    # (4, 5) is surrounded by (1, 9): refused by the watermark that replaced the history
    assert not store.check_attestation(pk, SignedAttestation(4, 5), record=True).safe
    assert store.check_attestation(pk, SignedAttestation(5, 10), record=True).safe
