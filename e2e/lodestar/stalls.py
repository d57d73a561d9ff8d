"""Machine stalls seen from the e2e harness: times when the whole machine stopped running (a paused VM,
seen in CI as a 9 s gap in every process's log at once: the BN's, the nodes' and the harness's). What
falls in such a window is the machine's doing, not the system under test; the judge excuses those slots,
reports them, and refuses to judge a run that stalled for too much of its time.

A thread sleeps STEP_S at a time and notes every step that took more than STALL_S of wall-clock time.

Must not: judge anything (that is `judge.py`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

STEP_S = 0.1
STALL_S = 2.0  # a step this much longer than asked is a stall (a busy 2-core machine stays far below)
MAX_EXCUSED_FRACTION = 0.25  # beyond this share of the judged slots, the run is not judged at all


class StallWatch:
    """Collects (start, end) wall-clock intervals in which this process did not run for > STALL_S."""

    def __init__(self) -> None:
        self.stalls: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="stall-watch", daemon=True)

    def __enter__(self) -> StallWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _watch(self) -> None:
        before = time.time()
        while not self._stop.wait(STEP_S):
            now = time.time()
            if now - before > STEP_S + STALL_S:
                self.stalls.append((before, now))
            before = now


def excused_slots(
    stalls: Iterable[tuple[float, float]], genesis: float, seconds_per_slot: float, *, span_slots: float
) -> set[int]:
    """Slots whose work window overlaps a stall: from half a slot before the slot starts to `span_slots`
    slots after (an attestation is made in its slot, aggregated at 2/3 of it and included in the next
    block: span 2; a block is made and published in its slot: span 1)."""
    excused: set[int] = set()
    for start, end in stalls:
        for slot in range(int(max(0.0, end - genesis) / seconds_per_slot) + 2):
            begins = genesis + slot * seconds_per_slot
            if begins - seconds_per_slot / 2 < end and start < begins + span_slots * seconds_per_slot:
                excused.add(slot)
    return excused
