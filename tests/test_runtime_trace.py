"""The trace recorder and reader: round trip, rotation, restarts, torn and corrupt lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from covalidator.model.duty import DutyId, DutyKind
from covalidator.model.node.codec import encode
from covalidator.model.node.events import (
    Broadcast,
    DutiesFetched,
    DutiesKind,
    PartialSignature,
    PartialSignatures,
    PeerMessage,
    PeerPayload,
    Persist,
    Persisted,
    SlashingRecord,
    Started,
    StartTimer,
    Tick,
    TimerKey,
)
from covalidator.model.qbft.messages import Envelope, Message, MsgType, make_value
from covalidator.runtime.trace import TraceError, TraceHeader, TraceRecorder, read_trace, segments

HEADER = TraceHeader(
    lock_hash="0x" + "11" * 32,
    share_index=2,
    spec={"SECONDS_PER_SLOT": "2", "SLOTS_PER_EPOCH": "8"},
    genesis={"genesis_time": "1700000000", "genesis_validators_root": "0x" + "00" * 32},
    config={"round_duration_ms": 1000},
)
DUTY = DutyId(9, DutyKind.ATTESTER)


def sample_steps() -> list[tuple[object, list[object]]]:
    value = make_value(b'{"0xaa":{"slot":"9"}}')
    envelope = Envelope(
        Message(MsgType.PRE_PREPARE, DUTY, 1, 1, value.hash, signature="0x" + "ab" * 64), value.body
    )
    partial = PartialSignatures(
        DUTY, (PartialSignature("0x" + "aa" * 48, "0x" + "01" * 32, "0x" + "02" * 96),)
    )
    return [
        (Started(1000, (SlashingRecord("0x" + "aa" * 48, slot=3),)), [StartTimer(TimerKey("epoch"), 2000)]),
        (Tick(1500), []),
        (DutiesFetched(DutiesKind.ATTESTER, 1, ({"pubkey": "0xaa", "slot": "9"},), "0x" + "22" * 32), []),
        (PeerMessage(1, PeerPayload(qbft=envelope)), [Broadcast(PeerPayload(partials=partial))]),
        (Persisted(DUTY, (("0xaa", "double_vote"),)), [Persist(DUTY, {"a": [1, 2]}, "0x33")]),
    ]


def encoded(
    steps: list[tuple[object, list[object]]],
) -> list[tuple[dict[str, object], list[dict[str, object]]]]:
    return [(encode(e), [encode(a) for a in actions]) for e, actions in steps]  # type: ignore[arg-type]


def test_round_trip(tmp_path: Path) -> None:
    steps = sample_steps()
    with TraceRecorder(tmp_path, HEADER) as recorder:
        for event, actions in steps:
            recorder.record(event, actions, now_ms=42)
    trace = read_trace(tmp_path)
    assert trace.header.lock_hash == HEADER.lock_hash and trace.header.share_index == 2
    assert trace.header.spec == HEADER.spec and trace.header.segment == 1
    read = list(trace.steps())
    assert [s.index for s in read] == list(range(len(steps))) and all(s.ms == 42 for s in read)
    assert encoded([(s.event, list(s.actions or ())) for s in read]) == encoded(steps)
    assert read[3].event == steps[3][0]  # a QBFT envelope with its body bytes comes back equal
    assert not trace.truncated
    # one segment file read alone gives the same
    assert len(list(read_trace(trace.files[0]).records())) == len(steps)


def test_rotation_by_size_restarts_and_retention(tmp_path: Path) -> None:
    steps = sample_steps() * 10
    with TraceRecorder(tmp_path, HEADER, max_bytes=2000) as recorder:
        for event, actions in steps:
            recorder.record(event, actions)
    files = segments(tmp_path)
    assert len(files) > 3
    for _, path in files:  # every segment opens with its header and stays near the bound
        first = json.loads(path.read_text().splitlines()[0])
        assert first["type"] == "TraceHeader" and path.stat().st_size < 2000 + 1000
    assert encoded([(e, list(a)) for e, a in read_trace(tmp_path).records()]) == encoded(steps)
    # a restarted recorder starts a new segment; its step indices restart
    with TraceRecorder(tmp_path, HEADER) as recorder:
        assert recorder.current_segment.name == f"trace-{len(files) + 1:06d}.jsonl"
        recorder.record(Tick(1), [])
    assert len(list(read_trace(tmp_path).records())) == len(steps) + 1
    # retention keeps the newest segments only
    with TraceRecorder(tmp_path, HEADER, keep=2) as recorder:
        recorder.record(Tick(2), [])
    assert [n for n, _ in segments(tmp_path)] == [len(files) + 1, len(files) + 2]


def test_a_step_without_actions_and_a_torn_last_line(tmp_path: Path) -> None:
    recorder = TraceRecorder(tmp_path, HEADER)
    recorder.record(Tick(1), [])
    recorder.record_event(Tick(2))  # the model raised, or the process died, before the actions
    # no close(): lines are flushed as written, as a killed process leaves them
    path = recorder.current_segment
    with open(path, "ab") as f:
        f.write(b'{"i": 2, "ms": 5, "event": {"type": "Ti')
    trace = read_trace(tmp_path)
    steps = list(trace.steps())
    assert trace.truncated
    assert [(s.index, s.actions) for s in steps] == [(0, ()), (1, None)]
    assert len(list(trace.records())) == 1
    recorder.close()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"not json", "Expecting value"),
        (b'{"i": 1, "event": {"type": "Nope"}}', "not an event"),
        (b'{"i": 1, "event": {"type": {"Tick": 1}}}', "not an event"),  # unhashable: no TypeError
        (b'{"i": 1, "event": {"type": "Tick"}}', "now_ms"),
        (b'{"i": 7, "actions": []}', "actions of step 7 without its event"),
        (b'{"i": 1, "other": 1}', "holds an event or actions"),
    ],
)
def test_a_corrupt_line_names_file_and_line(tmp_path: Path, line: bytes, message: str) -> None:
    with TraceRecorder(tmp_path, HEADER) as recorder:
        recorder.record(Tick(1), [])
        path = recorder.current_segment
    lines = path.read_bytes().splitlines()
    path.write_bytes(b"\n".join([*lines[:2], line, *lines[2:]]) + b"\n")
    with pytest.raises(TraceError, match=rf"trace-000001\.jsonl:3: .*{message}"):
        list(read_trace(tmp_path).steps())


def test_bad_headers_and_foreign_segments(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(TraceError, match="no trace segments"):
        read_trace(tmp_path / "empty")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"type": "TraceHeader", "version": "other"}\n')
    with pytest.raises(TraceError, match=r"bad\.jsonl:1: unsupported trace version"):
        read_trace(bad)
    folder = tmp_path / "mixed"
    with TraceRecorder(folder, HEADER) as recorder:
        recorder.record(Tick(1), [])
    with TraceRecorder(folder, TraceHeader(HEADER.lock_hash, 3, {}, {})) as recorder:
        recorder.record(Tick(1), [])
    with pytest.raises(TraceError, match="a segment of another node"):
        read_trace(folder)
