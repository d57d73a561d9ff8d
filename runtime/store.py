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
records the model needs: the same-target records and the nearest targets below and above, which on a
staircase history decide like the whole history (proofs/slashing.py, neighbour_check_sufficiency).
Every validator's attestation history is a staircase: accepted attestations keep it one
(attestation_inductive_safety), and an import whose merged history is not one (it holds slashable
pairs) is minified for that validator as EIP-3076 allows (minification_soundness).

Layout, for durable throughput: attestations are clustered by (target epoch, validator), so one
slot's batch of inserts lands on a few adjacent pages (a commit's cost is the pages it writes, not the
rows); the per-validator state that every insert updates is a small bounds row (min source, min
target, max target). The nearest record below a new target above max target is the one at max
target: one point query. Out-of-order candidates step epoch by epoch between the bounds (bounded;
beyond NEIGHBOUR_STEPS a range query).

Node memory (migration 2), what a restarted node hands the model in `Started`:
- `decided_values`: one row per duty (slot, kind): the decided value's JSON and hash. `persist` executes
  a model `Persist` action: the decided value AND the check-and-record of its slashing records in ONE
  durable transaction (so a restart never finds a decided value whose slashing records are missing, nor
  records without their value), answering with the model's `Persisted` event (the refusals). A second,
  different value for a duty already decided is an invariant violation (`DecidedConflict`), never an
  overwrite.
- `duty_outcomes`: one row per (duty, validator): ok or the model's named reason, the missing peers.
Both are keyed by slot first, so loading "since a slot" and pruning "before a slot" are range scans.

Encoding: uint64 values are stored as value - 2**63 (SQLite integers are signed 64-bit; the offset
keeps their order). An unknown signing root is stored as an empty blob so that identical records
collide on the primary key.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from covalidator.model.duty import DutyId, DutyKind
from covalidator.model.node.events import (
    DecidedRecord,
    DutyOutcome,
    Persist,
    Persisted,
    PoolPartial,
    SlashingRecord,
    Started,
)
from covalidator.model.slashing.interchange import Interchange, ValidatorHistory, merge
from covalidator.model.slashing.rules import (
    AttestationWatermark,
    SignedAttestation,
    SignedBlock,
    Verdict,
    check_attestation,
    check_block,
    is_staircase,
    minify,
)

SCHEMA_VERSION = 3
_OFFSET = 2**63
NEIGHBOUR_STEPS = 64

# Migration i (1-based) brings user_version from i-1 to i. Never edit a released migration: append.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE validators (
        id INTEGER PRIMARY KEY,
        pubkey BLOB NOT NULL UNIQUE,
        min_slot INTEGER
    );
    CREATE TABLE attestation_bounds (
        validator_id INTEGER PRIMARY KEY REFERENCES validators(id),
        min_source INTEGER NOT NULL,
        min_target INTEGER NOT NULL,
        max_target INTEGER NOT NULL
    );
    CREATE TABLE signed_blocks (
        validator_id INTEGER NOT NULL REFERENCES validators(id),
        slot INTEGER NOT NULL,
        signing_root BLOB NOT NULL,
        PRIMARY KEY (validator_id, slot, signing_root)
    ) WITHOUT ROWID;
    CREATE TABLE signed_attestations (
        target_epoch INTEGER NOT NULL,
        validator_id INTEGER NOT NULL REFERENCES validators(id),
        source_epoch INTEGER NOT NULL,
        signing_root BLOB NOT NULL,
        PRIMARY KEY (target_epoch, validator_id, source_epoch, signing_root)
    ) WITHOUT ROWID;
    """,
    # 2: the node's durable memory besides the slashing DB (what `Started` hands back to the model).
    """
    CREATE TABLE decided_values (
        slot INTEGER NOT NULL,
        kind INTEGER NOT NULL,
        value_hash TEXT NOT NULL,
        value TEXT NOT NULL,
        recorded_ms INTEGER NOT NULL,
        PRIMARY KEY (slot, kind)
    ) WITHOUT ROWID;
    CREATE TABLE duty_outcomes (
        slot INTEGER NOT NULL,
        kind INTEGER NOT NULL,
        pubkey TEXT NOT NULL,
        ok INTEGER NOT NULL,
        reason TEXT NOT NULL,
        missing_peers TEXT NOT NULL,
        recorded_ms INTEGER NOT NULL,
        PRIMARY KEY (slot, kind, pubkey)
    ) WITHOUT ROWID;
    """,
    # 3: partials over messages without a slot (voluntary exits, builder registrations: node/pool.py),
    # kept until the operator deletes the store: an exit may take days to gather M operators.
    """
    CREATE TABLE pool_partials (
        signing_root TEXT NOT NULL,
        share INTEGER NOT NULL,
        kind INTEGER NOT NULL,
        pubkey TEXT NOT NULL,
        message TEXT NOT NULL,
        signature TEXT NOT NULL,
        recorded_ms INTEGER NOT NULL,
        PRIMARY KEY (signing_root, share)
    ) WITHOUT ROWID;
    """,
]


class StoreError(Exception):
    """A store problem the caller must report (exit code 2 at the CLI)."""


class GenesisMismatch(StoreError):
    pass


class DecidedConflict(StoreError):
    """A second, different decided value for a duty (agreement broken or a model bug): nothing recorded."""


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
    minified: int  # validators whose merged attestation history held slashable pairs: kept as watermarks


Item = tuple[bytes, SignedAttestation | SignedBlock]

_UINT64 = 2**64


def _uint64(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < _UINT64:
        raise ValueError(f"{what} must be a uint64, got {value!r}")
    return value


def _hex_bytes(text: object, length: int, what: str) -> bytes:
    if not isinstance(text, str) or len(text) != 2 + 2 * length or not text.startswith("0x"):
        raise ValueError(f"{what} must be 0x-hex of {length} bytes")
    try:
        return bytes.fromhex(text[2:])
    except ValueError:
        raise ValueError(f"{what} must be 0x-hex of {length} bytes") from None


def slashing_item(record: SlashingRecord) -> Item:
    """The store's (pubkey, message) for a model `SlashingRecord`; ValueError when it is malformed
    (a block has `slot` only, an attestation `source_epoch` and `target_epoch` only)."""
    pubkey = _hex_bytes(record.pubkey, 48, "pubkey")
    root = None if record.signing_root is None else _hex_bytes(record.signing_root, 32, "signing_root")
    if record.slot is not None and record.source_epoch is None and record.target_epoch is None:
        return pubkey, SignedBlock(_uint64(record.slot, "slot"), root)
    if record.slot is None and record.source_epoch is not None and record.target_epoch is not None:
        source = _uint64(record.source_epoch, "source_epoch")
        return pubkey, SignedAttestation(source, _uint64(record.target_epoch, "target_epoch"), root)
    raise ValueError("a record is a block (slot) or an attestation (source_epoch, target_epoch)")


def _record(pubkey: bytes, message: SignedAttestation | SignedBlock) -> SlashingRecord:
    root = None if message.signing_root is None else "0x" + message.signing_root.hex()
    if isinstance(message, SignedBlock):
        return SlashingRecord("0x" + pubkey.hex(), slot=message.slot, signing_root=root)
    return SlashingRecord(
        "0x" + pubkey.hex(),
        source_epoch=message.source_epoch,
        target_epoch=message.target_epoch,
        signing_root=root,
    )


def _now_ms(now_ms: int | None) -> int:
    return int(time.time() * 1000) if now_ms is None else now_ms


class Store:
    """One SQLite database file. Thread-safe by a lock (each call is short); several processes may
    open the same file: SQLite's locks serialise their write transactions."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        genesis_validators_root: bytes | None = None,
        *,
        cluster: bytes | None = None,
    ) -> None:
        """Open (or create) the store. A file that is not an intact covalidator database (garbled,
        truncated: SQLite's quick_check), or one of another chain (`genesis_validators_root`) or
        another cluster (`cluster`: the lock hash, bound at first use), is refused with StoreError."""
        self.path = Path(path)
        existed = self.path.exists() and self.path.stat().st_size > 0
        if not existed and genesis_validators_root is None:
            raise StoreError(f"{self.path} does not exist yet: give the chain's genesis validators root")
        self._lock = threading.RLock()
        self._ids: dict[bytes, int] = {}
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            if existed:
                problems = [
                    " ".join(str(row[0]).split()) for row in self._db.execute("PRAGMA quick_check(5)")
                ]
                if problems != ["ok"]:
                    raise StoreError(f"{self.path} is corrupt (SQLite quick_check: {'; '.join(problems)})")
            self._migrate()
            self.genesis_validators_root = self._bind_genesis(genesis_validators_root)
            if cluster is not None:
                self._bind_cluster(cluster)
        except sqlite3.DatabaseError as e:
            self._db.close()
            raise StoreError(
                f"{self.path} is not a usable covalidator database (corrupt, or not one): {e}"
            ) from e
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

    def _bind_cluster(self, lock_hash: bytes) -> None:
        with self._transaction() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'lock_hash'").fetchone()
            if row is None:  # a new store, or one from before the binding: this cluster's from now on
                db.execute("INSERT INTO meta VALUES ('lock_hash', ?)", ("0x" + lock_hash.hex(),))
            elif row[0] != "0x" + lock_hash.hex():
                raise StoreError(
                    f"{self.path} belongs to another cluster (lock hash {row[0]}, this node's 0x{lock_hash.hex()})"
                )

    @contextmanager
    def _transaction(self, *, commit: bool = True) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT: the write lock is held from the first read to the durable commit.
        With commit=False the transaction is rolled back (a dry-run check sees the same DB state)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                if commit:
                    self._db.execute("COMMIT")  # a COMMIT that fails (disk full, I/O) is rolled back too
            except BaseException:
                self._rollback()
                raise
            if not commit:
                self._rollback()

    def _rollback(self) -> None:
        # SQLite may have rolled back already (SQLITE_FULL, SQLITE_IOERR end the transaction
        # themselves): a ROLLBACK then would raise and hide the error that matters
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
        self._ids.clear()  # ids assigned inside the rolled-back transaction no longer exist

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

    def _validator_id(self, db: sqlite3.Connection, pubkey: bytes, create: bool) -> int | None:
        """Validator ids never change once assigned, so they are cached (another process's new rows are
        found on a cache miss)."""
        vid = self._ids.get(pubkey)
        if vid is None:
            row = db.execute("SELECT id FROM validators WHERE pubkey = ?", (pubkey,)).fetchone()
            if row is None:
                if not create:
                    return None
                row = (db.execute("INSERT INTO validators (pubkey) VALUES (?)", (pubkey,)).lastrowid,)
            vid = self._ids[pubkey] = row[0]
        return vid

    def _at_target(self, db: sqlite3.Connection, vid: int, target: int) -> list[SignedAttestation]:
        rows = db.execute(
            "SELECT source_epoch, signing_root FROM signed_attestations WHERE target_epoch = ? AND validator_id = ?",
            (target, vid),
        ).fetchall()
        return [SignedAttestation(_dec(s), _dec(target), _root_dec(r)) for s, r in rows]

    def _nearest(
        self, db: sqlite3.Connection, vid: int, start: int, stop: int, step: int
    ) -> list[SignedAttestation]:
        """Records at the first target from `start` towards `stop` (inclusive) that has any: up to
        NEIGHBOUR_STEPS point queries (the common case needs one), then one range query."""
        if (stop - start) * step < 0:
            return []
        steps = min(abs(stop - start) + 1, NEIGHBOUR_STEPS)
        for target in range(start, start + steps * step, step):
            found = self._at_target(db, vid, target)
            if found:
                return found
        if steps == abs(stop - start) + 1:
            return []
        low, high = sorted((start + steps * step, stop))
        order = "DESC" if step < 0 else "ASC"
        row = db.execute(
            "SELECT target_epoch FROM signed_attestations WHERE target_epoch BETWEEN ? AND ? AND validator_id = ?"
            f" ORDER BY target_epoch {order} LIMIT 1",
            (low, high, vid),
        ).fetchone()
        return [] if row is None else self._at_target(db, vid, row[0])

    def _attestation(
        self, db: sqlite3.Connection, pubkey: bytes, att: SignedAttestation, record: bool
    ) -> Verdict:
        vid = self._validator_id(db, pubkey, create=record)
        bounds = (
            None
            if vid is None
            else db.execute(
                "SELECT min_source, min_target, max_target FROM attestation_bounds WHERE validator_id = ?",
                (vid,),
            ).fetchone()
        )
        if vid is None or bounds is None:
            verdict = check_attestation(att, [], None)
        else:
            min_source, min_target, max_target = bounds
            t = _enc(att.target_epoch)
            # no record lies outside [min target, max target]: the common case (a new epoch) skips a query
            records = self._at_target(db, vid, t) if min_target <= t <= max_target else []
            records += self._nearest(db, vid, min(t - 1, max_target), min_target, -1)
            records += self._nearest(db, vid, t + 1, max_target, +1)
            watermark = AttestationWatermark(_dec(min_source), _dec(min_target))
            verdict = check_attestation(att, records, watermark)
        if verdict.safe and not verdict.repeat and record:
            assert vid is not None
            t, s = _enc(att.target_epoch), _enc(att.source_epoch)
            db.execute(
                "INSERT INTO signed_attestations VALUES (?, ?, ?, ?)",
                (t, vid, s, _root_enc(att.signing_root)),
            )
            if bounds is None:
                db.execute("INSERT INTO attestation_bounds VALUES (?, ?, ?, ?)", (vid, s, t, t))
            elif t > bounds[2]:
                db.execute("UPDATE attestation_bounds SET max_target = ? WHERE validator_id = ?", (t, vid))
        return verdict

    def _block(self, db: sqlite3.Connection, pubkey: bytes, block: SignedBlock, record: bool) -> Verdict:
        vid = self._validator_id(db, pubkey, create=record)
        if vid is None:
            return check_block(block, [], None)
        min_slot = db.execute("SELECT min_slot FROM validators WHERE id = ?", (vid,)).fetchone()[0]
        rows = db.execute(
            "SELECT slot, signing_root FROM signed_blocks WHERE validator_id = ? AND slot = ?",
            (vid, _enc(block.slot)),
        ).fetchall()
        records = [SignedBlock(_dec(s), _root_dec(r)) for s, r in rows]
        verdict = check_block(block, records, None if min_slot is None else _dec(min_slot))
        if verdict.safe and not verdict.repeat and record:
            db.execute(
                "INSERT INTO signed_blocks VALUES (?, ?, ?)",
                (vid, _enc(block.slot), _root_enc(block.signing_root)),
            )
            if min_slot is None:
                db.execute("UPDATE validators SET min_slot = ? WHERE id = ?", (_enc(block.slot), vid))
        return verdict

    # -- interchange ----------------------------------------------------------------------------------

    def import_interchange(self, inter: Interchange) -> ImportReport:
        """Merge an EIP-3076 interchange into the DB, all or nothing.

        Records are kept whole. A validator whose merged attestation history holds slashable pairs
        (not a staircase) keeps only its watermark record (max source, max target, no root): the
        EIP-3076 minification, proved never to accept more than the complete history would."""
        if inter.genesis_validators_root != self.genesis_validators_root:
            raise GenesisMismatch(
                f"interchange genesis validators root 0x{inter.genesis_validators_root.hex()} does not match "
                f"the DB's 0x{self.genesis_validators_root.hex()}"
            )
        merged = merge([inter])
        blocks = attestations = minified = 0
        with self._transaction() as db:
            existing = self._attestations_of(
                db, [self._validator_id(db, h.pubkey, True) or 0 for h in merged.data]
            )
            for history in merged.data:
                vid = self._validator_id(db, history.pubkey, create=True)
                assert vid is not None
                db.executemany(
                    "INSERT OR IGNORE INTO signed_blocks VALUES (?, ?, ?)",
                    [(vid, _enc(b.slot), _root_enc(b.signing_root)) for b in history.signed_blocks],
                )
                db.execute(
                    "UPDATE validators SET min_slot = (SELECT MIN(slot) FROM signed_blocks WHERE validator_id = ?)"
                    " WHERE id = ?",
                    (vid, vid),
                )
                blocks += len(history.signed_blocks)
                attestations += len(history.signed_attestations)
                combined = list(dict.fromkeys([*existing.get(vid, []), *history.signed_attestations]))
                if not combined:
                    continue
                if not is_staircase(combined):
                    minimal = minify(combined, [])
                    assert minimal.max_source is not None and minimal.max_target is not None
                    combined = [SignedAttestation(minimal.max_source, minimal.max_target)]
                    minified += 1
                    db.execute("DELETE FROM signed_attestations WHERE validator_id = ?", (vid,))
                db.executemany(
                    "INSERT OR IGNORE INTO signed_attestations VALUES (?, ?, ?, ?)",
                    [
                        (_enc(a.target_epoch), vid, _enc(a.source_epoch), _root_enc(a.signing_root))
                        for a in combined
                    ],
                )
                lowest = min(combined, key=lambda a: a.target_epoch)  # a staircase: also the least source
                db.execute(
                    "INSERT OR REPLACE INTO attestation_bounds VALUES (?, ?, ?, ?)",
                    (
                        vid,
                        _enc(lowest.source_epoch),
                        _enc(lowest.target_epoch),
                        _enc(max(a.target_epoch for a in combined)),
                    ),
                )
        return ImportReport(len(merged.data), blocks, attestations, minified)

    def _attestations_of(self, db: sqlite3.Connection, vids: list[int]) -> dict[int, list[SignedAttestation]]:
        """Every attestation of these validators (one pass over the table: imports and exports only)."""
        wanted = set(vids)
        found: dict[int, list[SignedAttestation]] = {}
        for t, vid, s, r in db.execute(
            "SELECT target_epoch, validator_id, source_epoch, signing_root FROM signed_attestations"
        ):
            if vid in wanted:
                found.setdefault(vid, []).append(SignedAttestation(_dec(s), _dec(t), _root_dec(r)))
        return found

    def _history(
        self,
        db: sqlite3.Connection,
        vid: int,
        pubkey: bytes = b"",
        attestations: list[SignedAttestation] | None = None,
    ) -> ValidatorHistory:
        blocks = db.execute(
            "SELECT slot, signing_root FROM signed_blocks WHERE validator_id = ? ORDER BY slot", (vid,)
        ).fetchall()
        if attestations is None:
            attestations = self._attestations_of(db, [vid]).get(vid, [])
        return ValidatorHistory(
            pubkey,
            tuple(SignedBlock(_dec(s), _root_dec(r)) for s, r in blocks),
            tuple(sorted(attestations, key=lambda a: (a.target_epoch, a.source_epoch))),
        )

    def export_interchange(self) -> Interchange:
        with self._lock:
            validators = self._db.execute("SELECT id, pubkey FROM validators ORDER BY pubkey").fetchall()
            atts = self._attestations_of(self._db, [vid for vid, _ in validators])
            return Interchange(
                self.genesis_validators_root,
                tuple(self._history(self._db, vid, bytes(pk), atts.get(vid, [])) for vid, pk in validators),
            )

    def history(self, pubkey: bytes) -> ValidatorHistory:
        with self._lock:
            row = self._db.execute("SELECT id FROM validators WHERE pubkey = ?", (pubkey,)).fetchone()
            if row is None:
                return ValidatorHistory(pubkey, (), ())
            return self._history(self._db, row[0], pubkey)

    # -- node memory: decided values and duty outcomes (migration 2) ----------------------------------

    def persist(self, action: Persist, *, now_ms: int | None = None) -> Persisted:
        """Execute a model `Persist`: record the decided value and check-and-record its slashing records
        in one durable transaction; answer with `Persisted` listing (pubkey, refusal) for every record
        the slashing check refused (those are not recorded, the others are) or that is malformed.
        DecidedConflict (and nothing recorded) when the duty already has a different decided value."""
        duty = action.duty
        slot = _enc(_uint64(duty.slot, "duty slot"))
        kind = int(DutyKind(duty.kind))
        try:
            value = json.dumps(action.value, sort_keys=True, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as error:
            raise StoreError(f"decided value of {duty} is not JSON: {error}") from None
        refused: list[tuple[str, str]] = []
        items: list[tuple[str, bytes, SignedAttestation | SignedBlock]] = []
        for record in action.records:
            try:
                pubkey, message = slashing_item(record)
            except ValueError as error:
                refused.append((str(record.pubkey), f"malformed_record ({error})"))
                continue
            items.append((record.pubkey, pubkey, message))
        with self._transaction() as db:
            row = db.execute(
                "SELECT value_hash FROM decided_values WHERE slot = ? AND kind = ?", (slot, kind)
            ).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO decided_values VALUES (?, ?, ?, ?, ?)",
                    (slot, kind, action.value_hash, value, _now_ms(now_ms)),
                )
            elif row[0] != action.value_hash:
                raise DecidedConflict(
                    f"{duty} was decided as {row[0]}, refusing to record a second value {action.value_hash}"
                )
            for pubkey_hex, pubkey, message in items:
                if isinstance(message, SignedAttestation):
                    verdict = self._attestation(db, pubkey, message, True)
                else:
                    verdict = self._block(db, pubkey, message, True)
                if not verdict.safe:
                    refused.append((pubkey_hex, verdict.describe()))
        return Persisted(duty, tuple(dict.fromkeys(refused)))

    def record_outcomes(self, outcomes: Sequence[DutyOutcome], *, now_ms: int | None = None) -> None:
        """Record duty outcomes durably, in one transaction; the first outcome of a (duty, pubkey) stays."""
        at = _now_ms(now_ms)
        rows = [
            (
                _enc(_uint64(o.duty.slot, "duty slot")),
                int(DutyKind(o.duty.kind)),
                o.pubkey,
                int(bool(o.ok)),
                o.reason,
                json.dumps(list(o.missing_peers)),
                at,
            )
            for o in outcomes
        ]
        if rows:
            with self._transaction() as db:
                db.executemany("INSERT OR IGNORE INTO duty_outcomes VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def persist_pool(self, partials: Sequence[PoolPartial], *, now_ms: int | None = None) -> None:
        """Record partials over exits and registrations durably, in one transaction (the first of a
        (signing root, share) stays: BLS signatures are unique, a second cannot differ validly)."""
        at = _now_ms(now_ms)
        rows = [
            (p.signing_root, p.share, int(DutyKind(p.kind)), p.pubkey, json.dumps(p.message), p.signature, at)
            for p in partials
        ]
        if rows:
            with self._transaction() as db:
                db.executemany("INSERT OR IGNORE INTO pool_partials VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def pool_partials(self) -> tuple[PoolPartial, ...]:
        """Every partial over an exit or a registration, in the order they were recorded."""
        with self._lock:
            rows = self._db.execute(
                "SELECT kind, pubkey, message, signing_root, share, signature FROM pool_partials"
                " ORDER BY recorded_ms, signing_root, share"
            ).fetchall()
        return tuple(PoolPartial(DutyKind(k), p, json.loads(m), r, s, sig) for k, p, m, r, s, sig in rows)

    def decided_since(self, slot: int) -> tuple[DecidedRecord, ...]:
        """Every decided value of a duty at `slot` or later, in (slot, kind) order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT slot, kind, value_hash, value FROM decided_values WHERE slot >= ? ORDER BY slot, kind",
                (_enc(max(slot, 0)),),
            ).fetchall()
        return tuple(DecidedRecord(DutyId(_dec(s), DutyKind(k)), json.loads(v), h) for s, k, h, v in rows)

    def outcomes_since(self, slot: int) -> list[tuple[DutyOutcome, int]]:
        """Every recorded outcome of a duty at `slot` or later, with the time it was recorded (ms)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT slot, kind, pubkey, ok, reason, missing_peers, recorded_ms FROM duty_outcomes"
                " WHERE slot >= ? ORDER BY slot, kind, pubkey",
                (_enc(max(slot, 0)),),
            ).fetchall()
        return [
            (DutyOutcome(DutyId(_dec(s), DutyKind(k)), p, bool(ok), r, tuple(json.loads(m))), at)
            for s, k, p, ok, r, m, at in rows
        ]

    def finished_since(self, slot: int) -> tuple[tuple[DutyId, str], ...]:
        """(duty, pubkey) of every outcome recorded for a duty at `slot` or later (`Started.finished`)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT slot, kind, pubkey FROM duty_outcomes WHERE slot >= ? ORDER BY slot, kind, pubkey",
                (_enc(max(slot, 0)),),
            ).fetchall()
        return tuple((DutyId(_dec(s), DutyKind(k)), p) for s, k, p in rows)

    def recent_slashing_records(
        self, pubkeys: Sequence[str], *, since_epoch: int, since_slot: int
    ) -> tuple[SlashingRecord, ...]:
        """The slashing records of these validators (0x hex group pubkeys) that a restarted node needs:
        attestations with target >= since_epoch and blocks with slot >= since_slot, and always each
        validator's latest attestation (highest target) and latest block (highest slot)."""
        wanted: dict[int, bytes] = {}
        with self._lock:
            for text in pubkeys:
                try:
                    pubkey = _hex_bytes(text, 48, "pubkey")
                except ValueError:
                    continue
                vid = self._validator_id(self._db, pubkey, create=False)
                if vid is not None:
                    wanted[vid] = pubkey
            out: list[SlashingRecord] = []
            since_target = _enc(max(since_epoch, 0))
            found: dict[int, list[SignedAttestation]] = {}
            for t, vid, s, r in self._db.execute(
                "SELECT target_epoch, validator_id, source_epoch, signing_root FROM signed_attestations"
                " WHERE target_epoch >= ?",
                (since_target,),
            ):
                if vid in wanted:
                    found.setdefault(vid, []).append(SignedAttestation(_dec(s), _dec(t), _root_dec(r)))
            for vid, pubkey in wanted.items():
                attestations = found.get(vid)
                if not attestations:
                    bounds = self._db.execute(
                        "SELECT max_target FROM attestation_bounds WHERE validator_id = ?", (vid,)
                    ).fetchone()
                    attestations = [] if bounds is None else self._at_target(self._db, vid, bounds[0])
                out += [_record(pubkey, a) for a in sorted(attestations, key=lambda a: a.target_epoch)]
                rows = self._db.execute(
                    "SELECT slot, signing_root FROM signed_blocks WHERE validator_id = ? AND slot >= ?"
                    " ORDER BY slot",
                    (vid, _enc(max(since_slot, 0))),
                ).fetchall()
                if not rows:
                    rows = self._db.execute(
                        "SELECT slot, signing_root FROM signed_blocks WHERE validator_id = ?"
                        " AND slot = (SELECT MAX(slot) FROM signed_blocks WHERE validator_id = ?)",
                        (vid, vid),
                    ).fetchall()
                out += [_record(pubkey, SignedBlock(_dec(s), _root_dec(r))) for s, r in rows]
        return tuple(out)

    def started(
        self, now_ms: int, pubkeys: Sequence[str], *, since_slot: int, slots_per_epoch: int
    ) -> Started:
        """The model's `Started` event: what this store holds from `since_slot` on."""
        return Started(
            now_ms,
            self.recent_slashing_records(
                pubkeys, since_epoch=since_slot // slots_per_epoch, since_slot=since_slot
            ),
            self.decided_since(since_slot),
            self.finished_since(since_slot),
            self.pool_partials(),
        )

    def prune_node_memory(self, before_slot: int) -> tuple[int, int]:
        """Delete decided values and outcomes of duties before `before_slot` (never slashing records);
        returns how many of each were deleted."""
        bound = _enc(max(before_slot, 0))
        with self._transaction() as db:
            decided = db.execute("DELETE FROM decided_values WHERE slot < ?", (bound,)).rowcount
            outcomes = db.execute("DELETE FROM duty_outcomes WHERE slot < ?", (bound,)).rowcount
        return decided, outcomes
