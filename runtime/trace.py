"""Trace recorder and reader: every input event of a node, with the actions it produced, as JSON lines.

A trace is a folder of segments `trace-000001.jsonl`, `trace-000002.jsonl`, ... Each segment opens
with a header line that holds what rebuilding the node needs besides the events (the lock hash and
this node's share index, the BN's spec and genesis, the runtime's model settings, optionally the whole
cluster lock), so each segment can be read alone. Then one line per step:

    {"i": 17, "ms": <wall clock>, "event": codec.encode(event)}           before the model steps
    {"i": 17, "actions": [codec.encode(action), ...]}                      after it stepped

The event is written before `step` runs, so a step that raises, or a process killed mid-step, still
leaves its input in the trace (its actions are then missing: `TraceStep.actions is None`). Every line
is flushed to the OS when written (a killed process loses nothing); `fsync=True` also survives power
loss, at the cost of a disk sync per line. A new segment starts when the current one would exceed
`max_bytes`, and at every start of a recorder (so a restarted node's events begin a segment with its
`Started`); `keep` bounds how many segments stay on disk (oldest deleted first).

The reader (`read_trace`) takes a segment file or the folder, checks that the headers agree, and yields
the steps in order; `records()` gives the (event, actions) pairs `model.replay.replay` consumes. A torn
last line (the process died while writing it) is tolerated and reported (`Trace.truncated`); any other
bad line is a `TraceError` naming the file and line.

Must not: decide anything or interpret events; it only writes and reads what the runtime hands it.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, Final

from covalidator.model.node.codec import decode, dumps, typed
from covalidator.model.node.events import ACTION_TYPES, EVENT_TYPES

TRACE_VERSION: Final = "covalidator/trace/v1"
SEGMENT_PATTERN: Final = re.compile(r"trace-(\d{6,})\.jsonl")


class TraceError(ValueError):
    """A trace that cannot be read (the message names the file and line)."""


@dataclass(frozen=True)
class TraceHeader:
    """What rebuilding the node needs besides its events."""

    lock_hash: str  # 0x hex of the cluster lock's hash
    share_index: int  # this node's share index, 1..N
    spec: dict[str, Any]  # the BN's /eth/v1/config/spec data
    genesis: dict[str, Any]  # the BN's /eth/v1/beacon/genesis data
    config: dict[str, Any] = field(default_factory=dict)  # model settings (round duration, limits, ...)
    lock: dict[str, Any] | None = None  # the cluster lock's JSON, when recorded
    segment: int = 1
    created_ms: int = 0
    version: str = TRACE_VERSION

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "TraceHeader",
            "version": self.version,
            "lock_hash": self.lock_hash,
            "share_index": self.share_index,
            "spec": self.spec,
            "genesis": self.genesis,
            "config": self.config,
            "lock": self.lock,
            "segment": self.segment,
            "created_ms": self.created_ms,
        }

    @classmethod
    def from_json(cls, obj: Any) -> TraceHeader:
        if not isinstance(obj, dict) or obj.get("type") != "TraceHeader":
            raise ValueError("the first line is not a trace header")
        if obj.get("version") != TRACE_VERSION:
            raise ValueError(f"unsupported trace version {obj.get('version')!r} (expected {TRACE_VERSION})")
        lock_hash, share_index = obj.get("lock_hash"), obj.get("share_index")
        if (
            not isinstance(lock_hash, str)
            or not isinstance(share_index, int)
            or isinstance(share_index, bool)
        ):
            raise ValueError("the header needs lock_hash (str) and share_index (int)")
        spec, genesis, config = obj.get("spec"), obj.get("genesis"), obj.get("config", {})
        if not all(isinstance(part, dict) for part in (spec, genesis, config)):
            raise ValueError("the header's spec, genesis and config must be JSON objects")
        lock = obj.get("lock")
        if lock is not None and not isinstance(lock, dict):
            raise ValueError("the header's lock must be a JSON object")
        segment, created = obj.get("segment", 1), obj.get("created_ms", 0)
        if not isinstance(segment, int) or not isinstance(created, int):
            raise ValueError("the header's segment and created_ms must be integers")
        assert isinstance(spec, dict) and isinstance(genesis, dict) and isinstance(config, dict)
        return cls(lock_hash, share_index, spec, genesis, config, lock, segment, created)

    def same_node(self, other: TraceHeader) -> bool:
        return (self.lock_hash, self.share_index) == (other.lock_hash, other.share_index)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _line(obj: Any) -> bytes:
    return (dumps(obj, ensure_ascii=False) + "\n").encode()  # events and actions as codec.encode gives them


def segment_name(number: int) -> str:
    return f"trace-{number:06d}.jsonl"


def segments(directory: Path) -> list[tuple[int, Path]]:
    """The trace segments in a folder, in order."""
    found = []
    for path in directory.iterdir() if directory.is_dir() else ():
        match = SEGMENT_PATTERN.fullmatch(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


class TraceRecorder:
    """Appends a node's steps to segment files in `directory` (created if missing)."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        header: TraceHeader,
        *,
        max_bytes: int = 64 * 2**20,
        keep: int | None = None,
        fsync: bool = False,
    ) -> None:
        assert max_bytes > 0 and (keep is None or keep >= 1)
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.header = header
        self.max_bytes = max_bytes
        self.keep = keep
        self.fsync = fsync
        self.steps = 0  # the next step index (continues across segments, restarts at 0 per recorder)
        self.bytes_written = 0
        existing = segments(self.directory)
        self._segment = existing[-1][0] if existing else 0
        self._file: IO[bytes] | None = None
        self._size = 0
        self._open_segment()

    # -- writing --------------------------------------------------------------------------------------

    def _open_segment(self) -> None:
        if self._file is not None:
            self._file.close()
        self._segment += 1
        header = replace(self.header, segment=self._segment, created_ms=_now_ms())
        path = self.directory / segment_name(self._segment)
        self._file = open(path, "xb")  # noqa: SIM115 - held open across calls, closed in close()
        self._size = 0
        self._write(_line(header.to_json()))
        if self.keep is not None:
            for _, old in segments(self.directory)[: -self.keep]:
                old.unlink(missing_ok=True)

    def _write(self, data: bytes) -> None:
        assert self._file is not None, "the recorder is closed"
        self._file.write(data)
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())
        self._size += len(data)
        self.bytes_written += len(data)

    def _append(self, data: bytes) -> None:
        if self._size + len(data) > self.max_bytes and self._size > 0:
            self._open_segment()
        self._write(data)

    def record_event(self, event: Any, *, now_ms: int | None = None) -> int:
        """Append an input event (before the model steps on it); returns its step index."""
        index = self.steps
        self.steps += 1
        self._append(
            _line({"i": index, "ms": _now_ms() if now_ms is None else now_ms, "event": typed(event)})
        )
        return index

    def record_actions(self, index: int, actions: Sequence[Any]) -> None:
        """Append the actions step `index` produced. A rotation may fall between an event and its
        actions: the reader pairs them across segments."""
        self._append(_line({"i": index, "actions": [typed(a) for a in actions]}))

    def record(self, event: Any, actions: Sequence[Any], *, now_ms: int | None = None) -> int:
        index = self.record_event(event, now_ms=now_ms)
        self.record_actions(index, actions)
        return index

    @property
    def current_segment(self) -> Path:
        return self.directory / segment_name(self._segment)

    def close(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None

    def __enter__(self) -> TraceRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- reading ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TraceStep:
    index: int
    ms: int
    event: Any
    actions: tuple[Any, ...] | None  # None: the trace ends before the step's actions were written


@dataclass
class Trace:
    header: TraceHeader
    files: list[Path]
    truncated: bool = False  # the last line was torn (the process died while writing it)
    _lines: list[tuple[Path, int, bytes]] = field(default_factory=list, repr=False)

    def steps(self) -> Iterator[TraceStep]:
        """Every recorded step, in order; TraceError on a line that is not a step."""
        pending: dict[str, Any] | None = None
        for path, number, raw in self._lines:
            where = f"{path}:{number}"
            try:
                obj = json.loads(raw)
                if not isinstance(obj, dict) or not isinstance(obj.get("i"), int):
                    raise ValueError("not a trace step")
                if "event" in obj:
                    if pending is not None:
                        yield self._step(pending, None)
                    event = obj["event"]
                    if (
                        not isinstance(event, dict)
                        or not isinstance(event.get("type"), str)
                        or event["type"] not in EVENT_TYPES
                    ):
                        raise ValueError(f"not an event: {str(event)[:80]}")
                    pending = {"i": obj["i"], "ms": obj.get("ms", 0), "event": decode(event)}
                elif "actions" in obj:
                    if pending is None or pending["i"] != obj["i"]:
                        raise ValueError(f"actions of step {obj['i']} without its event")
                    actions = obj["actions"]
                    if not isinstance(actions, list) or not all(
                        isinstance(a, dict) and isinstance(a.get("type"), str) and a["type"] in ACTION_TYPES
                        for a in actions
                    ):
                        raise ValueError("actions must be a list of encoded actions")
                    yield self._step(pending, tuple(decode(a) for a in actions))
                    pending = None
                else:
                    raise ValueError("a step line holds an event or actions")
            except TraceError:
                raise
            except Exception as error:  # decode raises many types on bad input
                raise TraceError(f"{where}: {error}") from None
        if pending is not None:
            yield self._step(pending, None)

    @staticmethod
    def _step(pending: dict[str, Any], actions: tuple[Any, ...] | None) -> TraceStep:
        return TraceStep(pending["i"], pending["ms"], pending["event"], actions)

    def records(self) -> Iterator[tuple[Any, tuple[Any, ...]]]:
        """(event, actions) pairs for `model.replay.replay`; a last step without actions is left out."""
        for step in self.steps():
            if step.actions is not None:
                yield step.event, step.actions


def _read_segment(path: Path) -> tuple[TraceHeader, list[tuple[Path, int, bytes]], bool]:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise TraceError(f"{path}: {error}") from None
    lines = data.split(b"\n")
    torn = lines[-1] != b""  # the last line has no newline: written partly
    body = lines[:-1]
    if torn:
        try:
            json.loads(lines[-1])
        except ValueError:
            pass
        else:
            body.append(lines[-1])  # complete JSON without its newline: keep it
            torn = False
    if not body:
        raise TraceError(f"{path}: empty (no header)")
    try:
        header = TraceHeader.from_json(json.loads(body[0]))
    except ValueError as error:
        raise TraceError(f"{path}:1: {error}") from None
    return header, [(path, n, raw) for n, raw in enumerate(body[1:], start=2) if raw.strip()], torn


def read_trace(path: str | os.PathLike[str]) -> Trace:
    """A trace folder (every segment, in order) or one segment file."""
    target = Path(path)
    files = [p for _, p in segments(target)] if target.is_dir() else [target]
    if not files:
        raise TraceError(f"{target}: no trace segments ({segment_name(1)}, ...)")
    header: TraceHeader | None = None
    lines: list[tuple[Path, int, bytes]] = []
    truncated = False
    for file in files:
        segment_header, segment_lines, torn = _read_segment(file)
        if header is None:
            header = segment_header
        elif not header.same_node(segment_header):
            raise TraceError(f"{file}: a segment of another node (lock hash or share index differs)")
        truncated = truncated or torn  # a torn line ends a segment whose process died mid-write
        lines += segment_lines
    assert header is not None
    return Trace(header, files, truncated, lines)
