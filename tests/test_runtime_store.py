"""The store's node memory (migration 2): Persist executed atomically, what `Started` needs, pruning."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from covalidator.model.duty import DutyId, DutyKind
from covalidator.model.node.events import DutyOutcome, Persist, SlashingRecord
from covalidator.model.slashing.rules import SignedAttestation
from covalidator.runtime import store as store_module
from covalidator.runtime.store import DecidedConflict, Store

GVR = b"\x00" * 32
PK1 = "0x" + "a1" * 48
PK2 = "0x" + "b2" * 48
WRITER = Path(__file__).parent / "helpers" / "persist_writer.py"


def root(n: int) -> str:
    return "0x" + n.to_bytes(32, "big").hex()


def att(pubkey: str, source: int, target: int, r: int) -> SlashingRecord:
    return SlashingRecord(pubkey, source_epoch=source, target_epoch=target, signing_root=root(r))


def block(pubkey: str, slot: int, r: int) -> SlashingRecord:
    return SlashingRecord(pubkey, slot=slot, signing_root=root(r))


def test_migration_from_schema_1_keeps_the_slashing_db(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "db.sqlite"
    with monkeypatch.context() as m:
        m.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS[:1])
        with Store(db, GVR) as old:
            assert old.check_attestation(
                bytes.fromhex(PK1[2:]), SignedAttestation(1, 2, b"\x01" * 32), record=True
            ).safe
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == 1
    with Store(db) as store:
        assert store.history(bytes.fromhex(PK1[2:])).signed_attestations == (
            SignedAttestation(1, 2, b"\x01" * 32),
        )
        assert store.decided_since(0) == ()
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == store_module.SCHEMA_VERSION == 3


def test_persist_records_value_and_records_and_answers_refusals(tmp_path: Path) -> None:
    with Store(tmp_path / "db.sqlite", GVR) as store:
        duty = DutyId(64, DutyKind.ATTESTER)
        first = store.persist(Persist(duty, {"k": 1}, "0x01", (att(PK1, 1, 2, 1), att(PK2, 1, 2, 2))))
        assert first.duty == duty and first.refused == ()
        # the same Persist again (a restart re-executing it): idempotent, nothing refused
        assert store.persist(Persist(duty, {"k": 1}, "0x01", (att(PK1, 1, 2, 1),))).refused == ()
        # a double vote for PK1 and a malformed record: refused; PK2's new vote and the value are recorded
        duty2 = DutyId(65, DutyKind.ATTESTER)
        bad = SlashingRecord(PK2, slot=3, source_epoch=1, target_epoch=4)
        result = store.persist(
            Persist(
                duty2,
                [1, 2],
                "0x02",
                (att(PK1, 1, 2, 9), att(PK2, 2, 3, 3), bad, SlashingRecord("0xzz", slot=1)),
            )
        )
        reasons = dict(result.refused)
        assert reasons[PK1].startswith("double_vote")
        assert reasons[PK2].startswith("malformed_record")
        assert reasons["0xzz"].startswith("malformed_record")
        assert [r.value for r in store.decided_since(0)] == [{"k": 1}, [1, 2]]
        pk2 = store.history(bytes.fromhex(PK2[2:])).signed_attestations
        assert [(a.source_epoch, a.target_epoch) for a in pk2] == [(1, 2), (2, 3)]
        # blocks: a double proposal is refused
        duty3 = DutyId(66, DutyKind.PROPOSER)
        assert store.persist(Persist(duty3, {}, "0x03", (block(PK1, 66, 1),))).refused == ()
        assert dict(
            store.persist(Persist(DutyId(66, DutyKind.RANDAO), {}, "0x04", (block(PK1, 66, 2),))).refused
        )[PK1].startswith("double_proposal")


def test_a_second_decided_value_is_a_conflict_and_records_nothing(tmp_path: Path) -> None:
    with Store(tmp_path / "db.sqlite", GVR) as store:
        duty = DutyId(10, DutyKind.ATTESTER)
        store.persist(Persist(duty, {"a": 1}, "0xaa"))
        with pytest.raises(DecidedConflict, match="attester@10 was decided as 0xaa"):
            store.persist(Persist(duty, {"a": 2}, "0xbb", (att(PK1, 1, 2, 1),)))
        assert store.history(bytes.fromhex(PK1[2:])).signed_attestations == ()
        assert [r.value_hash for r in store.decided_since(0)] == ["0xaa"]


def test_started_loads_recent_records_decided_values_and_finished_duties(tmp_path: Path) -> None:
    with Store(tmp_path / "db.sqlite", GVR) as store:
        for epoch in range(1, 6):
            duty = DutyId(epoch * 32, DutyKind.ATTESTER)
            store.persist(Persist(duty, {"e": epoch}, f"0x{epoch:02x}", (att(PK1, epoch - 1, epoch, epoch),)))
        store.persist(
            Persist(DutyId(40, DutyKind.PROPOSER), {}, "0xb0", (block(PK1, 40, 7), block(PK2, 41, 8)))
        )
        store.record_outcomes(
            [
                DutyOutcome(DutyId(96, DutyKind.ATTESTER), PK1, True),
                DutyOutcome(DutyId(128, DutyKind.ATTESTER), PK1, False, "no_consensus", (2, 3)),
            ],
            now_ms=1234,
        )
        # the first outcome of a (duty, pubkey) stays
        store.record_outcomes([DutyOutcome(DutyId(128, DutyKind.ATTESTER), PK1, True)])
        started = store.started(99, [PK1, PK2, "0x" + "cc" * 48, "junk"], since_slot=128, slots_per_epoch=32)
        assert started.now_ms == 99
        pk1 = [r for r in started.slashing if r.pubkey == PK1]
        assert [r.target_epoch for r in pk1 if r.target_epoch is not None] == [4, 5]
        assert [r.slot for r in pk1 if r.slot is not None] == [40]  # older than since_slot, but the latest
        assert [(r.pubkey, r.slot) for r in started.slashing if r.pubkey == PK2] == [(PK2, 41)]
        assert [r.duty.slot for r in started.decided] == [128, 160]
        assert started.decided[0].value == {"e": 4} and started.decided[0].value_hash == "0x04"
        assert started.finished == ((DutyId(128, DutyKind.ATTESTER), PK1),)
        outcome, at = store.outcomes_since(128)[0]
        assert outcome.reason == "no_consensus" and outcome.missing_peers == (2, 3) and at == 1234
        # a record handed back is accepted again as an identical repeat
        assert (
            store.persist(Persist(DutyId(160, DutyKind.ATTESTER), {"e": 5}, "0x05", pk1[-1:])).refused == ()
        )
        assert store.prune_node_memory(128) == (4, 1)  # slots 32, 40, 64, 96; outcome at 96
        assert [r.duty.slot for r in store.decided_since(0)] == [128, 160]


def test_sigkill_never_separates_a_decided_value_from_its_records(tmp_path: Path) -> None:
    """Kill a process executing Persist actions at random moments: after reopening, every decided value
    has its slashing records and every record its decided value, and every printed PERSISTED is there."""
    db = tmp_path / "db.sqlite"
    Store(db, GVR).close()
    rng = random.Random(6)
    first = 1
    promised: set[int] = set()
    for _ in range(3):
        proc = subprocess.Popen(
            [sys.executable, str(WRITER), str(db), str(first)], stdout=subprocess.PIPE, text=True
        )
        time.sleep(rng.uniform(0.8, 1.5))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        promised |= {int(line.split()[1]) for line in out.splitlines() if len(line.split()) == 2}
        with Store(db) as store:
            decided = {r.duty.slot for r in store.decided_since(0)}
            history = store.history(bytes.fromhex(PK1[2:]))
            targets = {a.target_epoch for a in history.signed_attestations}
            slots = {b.slot for b in history.signed_blocks}
        assert decided == targets == slots
        assert promised <= decided
        first = max(decided, default=0) + 1
    assert len(promised) > 5, "the writer must have made progress between kills"
