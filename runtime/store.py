"""The durable store: SQLite (WAL, synchronous=FULL, versioned schema) holding the slashing DB.

What it guarantees:
- check-and-record is one `BEGIN IMMEDIATE` transaction: the write lock is taken before the check
  reads, and "safe" is returned only after COMMIT (fsync'ed by synchronous=FULL). Two callers, in one
  process or several, can never both pass for conflicting data; a crash before COMMIT records nothing
  and returns nothing.
- a batch (a whole slot's decided values) is checked and recorded in one transaction; each item is
  checked against the DB including the batch items before it.
- an import is all-or-nothing: parse and validate first (model.interchange), then one transaction.

What it must not do: decide. Every verdict comes from `model.slashing`; the store only fetches the
records the model needs (on a staircase history the same-target record and the nearest targets below
and above, proved sufficient in proofs/slashing.py; otherwise every record of the validator).

Encoding: uint64 values are stored as value - 2**63 (SQLite integers are signed 64-bit; the offset
keeps their order). An unknown signing root is stored as an empty blob so that identical records
collide on the primary key.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from covalidator.model.interchange import Interchange, ValidatorHistory, merge
from covalidator.model.slashing import (
    AttestationWatermark,
    SignedAttestation,
    SignedBlock,
    Verdict,
    check_attestation,
    check_block,
    is_staircase,
)

SCHEMA_VERSION = 1
_OFFSET = 2**63

# Migration i (1-based) brings user_version from i-1 to i. Never edit a released migration: append.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE validators (
        id INTEGER PRIMARY KEY,
        pubkey BLOB NOT NULL UNIQUE,
        min_slot INTEGER,
        min_source INTEGER,
        min_target INTEGER,
        staircase INTEGER NOT NULL DEFAULT 1
    );
    CREATE TABLE signed_blocks (
        validator_id INTEGER NOT NULL REFERENCES validators(id),
        slot INTEGER NOT NULL,
        signing_root BLOB NOT NULL,
        PRIMARY KEY (validator_id, slot, signing_root)
    ) WITHOUT ROWID;
    CREATE TABLE signed_attestations (
        validator_id INTEGER NOT NULL REFERENCES validators(id),
        target_epoch INTEGER NOT NULL,
        source_epoch INTEGER NOT NULL,
        signing_root BLOB NOT NULL,
        PRIMARY KEY (validator_id, target_epoch, source_epoch, signing_root)
    ) WITHOUT ROWID;
    """,
]


class StoreError(Exception):
    """A store problem the caller must report (exit code 2 at the CLI)."""


class GenesisMismatch(StoreError):
    pass


def _enc(value: int) -> int:
    return value - _OFFSET


def _dec(value: int) -> int:
    return value + _OFFSET


def _root_enc(root: bytes | None) -> bytes:
    return b"" if root is None else root


def _root_dec(root: bytes) -> bytes | None:
    return None if root == b"" else bytes(root)


@dataclass(frozen=True)
class ImportReport:
    validators: int
    blocks: int
    attestations: int
    non_staircase: int  # validators whose imported history holds slashable pairs (checked record by record)


Item = tuple[bytes, SignedAttestation | SignedBlock]


class Store:
    """One SQLite database file. Thread-safe by a lock (each call is short); several processes may
    open the same file: SQLite's locks serialise their write transactions."""

    def __init__(self, path: str | os.PathLike[str], genesis_validators_root: bytes | None = None) -> None:
        self.path = Path(path)
        existed = self.path.exists() and self.path.stat().st_size > 0
        if not existed and genesis_validators_root is None:
            raise StoreError(f"{self.path} does not exist yet: give the chain's genesis validators root")
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
            self.genesis_validators_root = self._bind_genesis(genesis_validators_root)
        except sqlite3.DatabaseError as e:
            self._db.close()
            raise StoreError(f"{self.path} is not a usable covalidator database: {e}") from e
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema ---------------------------------------------------------------------------------------

    def _migrate(self) -> None:
        with self._transaction() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise StoreError(
                    f"{self.path} has schema version {version}, newer than this covalidator ({len(MIGRATIONS)}): upgrade"
                )
            for number in range(version + 1, len(MIGRATIONS) + 1):
                for statement in MIGRATIONS[number - 1].split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {number}")

    def _bind_genesis(self, wanted: bytes | None) -> bytes:
        with self._transaction() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'genesis_validators_root'").fetchone()
            if row is None:
                if wanted is None:
                    raise StoreError(f"{self.path} has no genesis validators root: give one")
                db.execute("INSERT INTO meta VALUES ('genesis_validators_root', ?)", ("0x" + wanted.hex(),))
                return wanted
            stored = bytes.fromhex(row[0][2:])
            if wanted is not None and wanted != stored:
                raise GenesisMismatch(
                    f"genesis validators root 0x{wanted.hex()} does not match the DB's {row[0]} (another chain?)"
                )
            return stored

    @contextmanager
    def _transaction(self, *, commit: bool = True) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT: the write lock is held from the first read to the durable commit.
        With commit=False the transaction is rolled back (a dry-run check sees the same DB state)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT" if commit else "ROLLBACK")

    # -- check and record -----------------------------------------------------------------------------

    def check_attestation(self, pubkey: bytes, att: SignedAttestation, *, record: bool) -> Verdict:
        return self.check_batch([(pubkey, att)], record=record)[0]

    def check_block(self, pubkey: bytes, block: SignedBlock, *, record: bool) -> Verdict:
        return self.check_batch([(pubkey, block)], record=record)[0]

    def check_batch(self, items: Sequence[Item], *, record: bool = True) -> list[Verdict]:
        """Check every item; record the safe ones (all in one durable transaction when `record`)."""
        with self._transaction(commit=record) as db:
            verdicts = []
            for pubkey, message in items:
                if isinstance(message, SignedAttestation):
                    verdicts.append(self._attestation(db, pubkey, message, record))
                else:
                    verdicts.append(self._block(db, pubkey, message, record))
            return verdicts

    def _validator(self, db: sqlite3.Connection, pubkey: bytes, create: bool) -> tuple[int, ...] | None:
        row = db.execute(
            "SELECT id, min_slot, min_source, min_target, staircase FROM validators WHERE pubkey = ?", (pubkey,)
        ).fetchone()
        if row is None and create:
            cur = db.execute("INSERT INTO validators (pubkey) VALUES (?)", (pubkey,))
            row = (cur.lastrowid, None, None, None, 1)
        return row  # type: ignore[no-any-return]

    def _attestation(self, db: sqlite3.Connection, pubkey: bytes, att: SignedAttestation, record: bool) -> Verdict:
        row = self._validator(db, pubkey, create=record)
        if row is None:
            return check_attestation(att, [], None)
        vid, _, min_source, min_target, staircase = row
        watermark = None if min_source is None else AttestationWatermark(_dec(min_source), _dec(min_target))
        t = _enc(att.target_epoch)
        if staircase:
            rows = db.execute(
                "SELECT source_epoch, target_epoch, signing_root FROM signed_attestations"
                " WHERE validator_id = :v AND target_epoch = :t"
                " UNION ALL SELECT * FROM (SELECT source_epoch, target_epoch, signing_root FROM signed_attestations"
                "  WHERE validator_id = :v AND target_epoch < :t ORDER BY target_epoch DESC LIMIT 1)"
                " UNION ALL SELECT * FROM (SELECT source_epoch, target_epoch, signing_root FROM signed_attestations"
                "  WHERE validator_id = :v AND target_epoch > :t ORDER BY target_epoch ASC LIMIT 1)",
                {"v": vid, "t": t},
            ).fetchall()
        else:
            rows = db.execute(
                "SELECT source_epoch, target_epoch, signing_root FROM signed_attestations WHERE validator_id = ?",
                (vid,),
            ).fetchall()
        records = [SignedAttestation(_dec(s), _dec(tt), _root_dec(r)) for s, tt, r in rows]
        verdict = check_attestation(att, records, watermark)
        if verdict.safe and not verdict.repeat and record:
            db.execute(
                "INSERT INTO signed_attestations VALUES (?, ?, ?, ?)",
                (vid, t, _enc(att.source_epoch), _root_enc(att.signing_root)),
            )
            if watermark is None:
                db.execute(
                    "UPDATE validators SET min_source = ?, min_target = ? WHERE id = ?",
                    (_enc(att.source_epoch), t, vid),
                )
        return verdict

    def _block(self, db: sqlite3.Connection, pubkey: bytes, block: SignedBlock, record: bool) -> Verdict:
        row = self._validator(db, pubkey, create=record)
        if row is None:
            return check_block(block, [], None)
        vid, min_slot = row[0], row[1]
        rows = db.execute(
            "SELECT slot, signing_root FROM signed_blocks WHERE validator_id = ? AND slot = ?",
            (vid, _enc(block.slot)),
        ).fetchall()
        records = [SignedBlock(_dec(s), _root_dec(r)) for s, r in rows]
        verdict = check_block(block, records, None if min_slot is None else _dec(min_slot))
        if verdict.safe and not verdict.repeat and record:
            db.execute(
                "INSERT INTO signed_blocks VALUES (?, ?, ?)", (vid, _enc(block.slot), _root_enc(block.signing_root))
            )
            if min_slot is None:
                db.execute("UPDATE validators SET min_slot = ? WHERE id = ?", (_enc(block.slot), vid))
        return verdict

    # -- interchange ----------------------------------------------------------------------------------

    def import_interchange(self, inter: Interchange) -> ImportReport:
        """Merge an EIP-3076 interchange into the DB, all or nothing."""
        if inter.genesis_validators_root != self.genesis_validators_root:
            raise GenesisMismatch(
                f"interchange genesis validators root 0x{inter.genesis_validators_root.hex()} does not match "
                f"the DB's 0x{self.genesis_validators_root.hex()}"
            )
        merged = merge([inter])
        blocks = attestations = non_staircase = 0
        with self._transaction() as db:
            for history in merged.data:
                vid = self._validator(db, history.pubkey, create=True)[0]  # type: ignore[index]
                db.executemany(
                    "INSERT OR IGNORE INTO signed_blocks VALUES (?, ?, ?)",
                    [(vid, _enc(b.slot), _root_enc(b.signing_root)) for b in history.signed_blocks],
                )
                db.executemany(
                    "INSERT OR IGNORE INTO signed_attestations VALUES (?, ?, ?, ?)",
                    [
                        (vid, _enc(a.target_epoch), _enc(a.source_epoch), _root_enc(a.signing_root))
                        for a in history.signed_attestations
                    ],
                )
                blocks += len(history.signed_blocks)
                attestations += len(history.signed_attestations)
                full = self._history(db, vid)
                staircase = is_staircase(full.signed_attestations)
                non_staircase += not staircase
                db.execute(
                    "UPDATE validators SET min_slot = (SELECT MIN(slot) FROM signed_blocks WHERE validator_id = :v),"
                    " min_source = (SELECT MIN(source_epoch) FROM signed_attestations WHERE validator_id = :v),"
                    " min_target = (SELECT MIN(target_epoch) FROM signed_attestations WHERE validator_id = :v),"
                    " staircase = :staircase WHERE id = :v",
                    {"v": vid, "staircase": int(staircase)},
                )
        return ImportReport(len(merged.data), blocks, attestations, non_staircase)

    def _history(self, db: sqlite3.Connection, vid: int, pubkey: bytes = b"") -> ValidatorHistory:
        blocks = db.execute(
            "SELECT slot, signing_root FROM signed_blocks WHERE validator_id = ? ORDER BY slot", (vid,)
        ).fetchall()
        atts = db.execute(
            "SELECT source_epoch, target_epoch, signing_root FROM signed_attestations WHERE validator_id = ?"
            " ORDER BY target_epoch, source_epoch",
            (vid,),
        ).fetchall()
        return ValidatorHistory(
            pubkey,
            tuple(SignedBlock(_dec(s), _root_dec(r)) for s, r in blocks),
            tuple(SignedAttestation(_dec(s), _dec(t), _root_dec(r)) for s, t, r in atts),
        )

    def export_interchange(self) -> Interchange:
        with self._lock:
            validators = self._db.execute("SELECT id, pubkey FROM validators ORDER BY pubkey").fetchall()
            return Interchange(
                self.genesis_validators_root,
                tuple(self._history(self._db, vid, bytes(pk)) for vid, pk in validators),
            )

    def history(self, pubkey: bytes) -> ValidatorHistory:
        with self._lock:
            row = self._db.execute("SELECT id FROM validators WHERE pubkey = ?", (pubkey,)).fetchone()
            if row is None:
                return ValidatorHistory(pubkey, (), ())
            return self._history(self._db, row[0], pubkey)
