"""The Lodestar e2e's judgement rules (e2e/lodestar/judge.py) without a devnet: the pass criteria name
every failed one, and the BN's recorded answers count signature refusals but not the benign answers
(route missing, already known, duplicate) nor GETs."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e" / "lodestar"))

import stalls
from judge import criteria, submissions
from stalls import StallWatch, excused_slots

PASSING = {
    "head_slot": 40,
    "finalized_epoch": 3,
    "dv_stake_fraction": 1.0,
    "dv_attestations_expected": 31,
    "dv_attestations_included": 31,
    "dv_blocks_expected": 33,
    "dv_blocks_proposed": 33,
    "dv_sync_messages_expected": 1248,
    "dv_sync_messages_included": 1248,
    "slashings": 0,
    "invalid_signatures": 0,
}


def test_criteria_pass_and_name_each_failure() -> None:
    assert criteria(PASSING) == []
    assert criteria({**PASSING, "dv_attestations_included": 30}) == ["attestations 30/31 < 98%"]  # 96.8%
    assert criteria({**PASSING, "dv_attestations_expected": 100, "dv_attestations_included": 98}) == []
    broken = {
        **PASSING,
        "finalized_epoch": 2,
        "dv_stake_fraction": 2 / 3,
        "dv_blocks_proposed": 32,
        "dv_sync_messages_included": 0,
        "slashings": 1,
        "invalid_signatures": 2,
    }
    assert criteria(broken) == [
        "finalized epoch 2 < 3",
        f"DV stake {2 / 3} <= 2/3",
        "blocks 32/33",
        "sync committee messages 0/1248 < 95%",
        "1 slashings",
        "2 submissions refused for their signature",
    ]
    assert criteria({**PASSING, "dv_attestations_expected": 0, "dv_attestations_included": 0}) == [
        "attestations 0/0 < 98%"  # nothing to judge is not a pass
    ]


def record(method: str, path: str, status: int, body: Any) -> str:
    return json.dumps({"kind": "http", "method": method, "path": path, "status": status, "resp_body": body})


def test_submissions_count_refusals_not_benign_answers(tmp_path: Path) -> None:
    lines = [
        record("POST", "/eth/v1/beacon/pool/attestations", 200, None),
        record(
            "POST",
            "/eth/v1/beacon/pool/attestations",
            500,
            {"message": "ATTESTATION_ERROR_ATTESTATION_ALREADY_KNOWN"},
        ),
        record(
            "POST", "/eth/v2/beacon/blocks", 404, {"message": "Route POST:/eth/v2/beacon/blocks not found"}
        ),
        record("POST", "/eth/v1/beacon/blocks", 500, {"message": "PublishError.Duplicate"}),
        record(
            "POST",
            "/eth/v1/beacon/pool/sync_committees",
            400,
            {"message": "SYNC_COMMITTEE_ERROR_INVALID_SIGNATURE"},
        ),
        record("POST", "/eth/v1/validator/aggregate_and_proofs", 400, {"message": "PAST_SLOT"}),
        record("GET", "/eth/v1/validator/attestation_data", 500, {"message": "invalid signature"}),
        json.dumps({"kind": "sse_event", "path": "/eth/v1/events"}),
    ]
    path = tmp_path / "bn-answers-node0.jsonl"
    path.write_text("\n".join(lines) + "\n")
    counted = submissions([path, tmp_path / "missing.jsonl"])
    assert counted["invalid_signatures"] == 1
    assert counted["rejected_count"] == 2
    assert counted["aggregations_submitted"] == 1
    assert counted["answers"]["/beacon/pool/attestations 500"] == 1


def test_a_machine_stall_excuses_the_slots_it_covered_and_only_those() -> None:
    """The CI run that stalled 9.5 s from 84 s after genesis (slot 14 of 6 s slots): the attestations of
    slots 13-16 (made, aggregated or included inside it) and the blocks of 14-16 are excused."""
    stall = [(1000.0 + 84.0, 1000.0 + 93.5)]
    assert excused_slots(stall, 1000.0, 6, span_slots=2) == {13, 14, 15, 16}
    assert excused_slots(stall, 1000.0, 6, span_slots=1) == {14, 15, 16}
    assert excused_slots([], 1000.0, 6, span_slots=2) == set()
    assert excused_slots([(1000.0 + 40.0, 1000.0 + 42.5)], 1000.0, 6, span_slots=1) == {6, 7}


def test_a_run_that_stalled_through_a_quarter_of_its_slots_is_not_judged() -> None:
    assert criteria({**PASSING, "excused_slots": list(range(14, 22))}) == []  # 8 of 33
    assert criteria({**PASSING, "excused_slots": list(range(14, 23))}) == [
        "the machine stalled through 9 of 33 judged slots: not judged"
    ]
    assert criteria({**PASSING, "excused_slots": list(range(0, 8))}) == []  # before the judged slots


def test_the_watch_notes_a_jump_of_the_wall_clock_as_a_stall(monkeypatch: pytest.MonkeyPatch) -> None:
    real = stalls.time.time
    jump = [0.0]
    monkeypatch.setattr(stalls.time, "time", lambda: real() + jump[0])
    with StallWatch() as watch:
        time.sleep(0.3)
        jump[0] = 5.0
        time.sleep(0.3)
    assert len(watch.stalls) == 1
    start, end = watch.stalls[0]
    assert 4.9 < end - start < 5.5
