"""The EIP-3076 interchange conformance suite (v5.3.0, 38 tests) from ../shared/vectors/eip3076/.

Two implementations are run on every test:
- the durable store (a complete DB: every record kept), judged by `should_succeed_complete`;
- the model's minimal DB (watermarks after minification), judged by `should_succeed`.
An import step must succeed or fail as `should_succeed` says; we never refuse slashable data (the
EIP allows refusing it), so every check of every step is judged.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from covalidator.model.slashing.interchange import InterchangeError, merge, parse_interchange
from covalidator.model.slashing.rules import (
    MinimalRecord,
    SignedAttestation,
    SignedBlock,
    check_attestation_minimal,
    check_block_minimal,
    minify,
)
from covalidator.runtime.store import GenesisMismatch, Store
from tests.conftest import shared_path

VECTOR_NAMES = sorted(
    p.name
    for p in (Path(__file__).resolve().parent.parent.parent / "shared" / "vectors" / "eip3076").glob("*.json")
    if p.name != "schema.json"
) or ["<missing>"]


def load(name: str) -> dict:  # type: ignore[type-arg]
    folder = shared_path("vectors", "eip3076")
    return json.loads((folder / name).read_text())


def test_all_38_vectors_are_present() -> None:
    folder = shared_path("vectors", "eip3076")
    assert len([p for p in folder.glob("*.json") if p.name != "schema.json"]) == 38


def _block(entry: dict) -> SignedBlock:  # type: ignore[type-arg]
    root = entry.get("signing_root")
    return SignedBlock(int(entry["slot"]), bytes.fromhex(root[2:]) if root else None)


def _attestation(entry: dict) -> SignedAttestation:  # type: ignore[type-arg]
    root = entry.get("signing_root")
    return SignedAttestation(
        int(entry["source_epoch"]), int(entry["target_epoch"]), bytes.fromhex(root[2:]) if root else None
    )


@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_complete_store(name: str, tmp_path: Path) -> None:
    test = load(name)
    store = Store(tmp_path / "db.sqlite", bytes.fromhex(test["genesis_validators_root"][2:]))
    for number, step in enumerate(test["steps"]):
        try:
            store.import_interchange(parse_interchange(step["interchange"]))
            imported = True
        except (InterchangeError, GenesisMismatch):
            imported = False
        assert imported == step["should_succeed"], f"step {number}: import"
        for entry in step["blocks"]:
            verdict = store.check_block(bytes.fromhex(entry["pubkey"][2:]), _block(entry), record=True)
            assert verdict.safe == entry["should_succeed_complete"], (
                f"step {number}: block {entry} -> {verdict.describe()}"
            )
        for entry in step["attestations"]:
            verdict = store.check_attestation(
                bytes.fromhex(entry["pubkey"][2:]), _attestation(entry), record=True
            )
            assert verdict.safe == entry["should_succeed_complete"], (
                f"step {number}: att {entry} -> {verdict.describe()}"
            )
    store.close()


@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_minimal_db(name: str) -> None:
    test = load(name)
    gvr = bytes.fromhex(test["genesis_validators_root"][2:])
    db: dict[bytes, MinimalRecord] = {}

    def raise_to(pubkey: bytes, atts: list[SignedAttestation], blocks: list[SignedBlock]) -> None:
        old = db.get(pubkey, MinimalRecord())
        old_atts = [] if old.max_source is None else [SignedAttestation(old.max_source, old.max_target or 0)]
        old_blocks = [] if old.max_slot is None else [SignedBlock(old.max_slot)]
        db[pubkey] = minify(old_atts + atts, old_blocks + blocks)

    for number, step in enumerate(test["steps"]):
        try:
            inter = parse_interchange(step["interchange"])
            imported = inter.genesis_validators_root == gvr
        except InterchangeError:
            imported = False
        assert imported == step["should_succeed"], f"step {number}: import"
        if imported:
            for history in merge([inter]).data:
                raise_to(history.pubkey, list(history.signed_attestations), list(history.signed_blocks))
        for entry in step["blocks"]:
            key, block = bytes.fromhex(entry["pubkey"][2:]), _block(entry)
            verdict = check_block_minimal(block, db.get(key, MinimalRecord()))
            assert verdict.safe == entry["should_succeed"], f"step {number}: block {entry}"
            if verdict.safe:
                raise_to(key, [], [block])
        for entry in step["attestations"]:
            key, att = bytes.fromhex(entry["pubkey"][2:]), _attestation(entry)
            verdict = check_attestation_minimal(att, db.get(key, MinimalRecord()))
            assert verdict.safe == entry["should_succeed"], f"step {number}: att {entry}"
            if verdict.safe:
                raise_to(key, [att], [])
