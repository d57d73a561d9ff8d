"""The node's events waiting for the model's step, and the order the runner takes them in.

Three kinds of lane:
- `Started` first (the model's first event, and a restart's), whatever was queued before it;
- urgent: what a decision and the VC's answer wait for (`urgency` 0). This node's own (its BN's data,
  the store's `Persisted`) in one lane, and each peer's QBFT messages in a lane of their own; a batch
  takes them round-robin, one per lane in turn, so a flooding co-operator (whose messages are only
  judged when stepped) delays another peer's by at most one of its own per turn;
- the rest (VC requests, partial signatures, timers, ...) in one FIFO lane, which a batch takes once
  it has taken every urgent event waiting. When none of the rest has been stepped that way for
  STARVE_S while its oldest waited (urgent events left behind by every batch, or batches cut short before
  the rest: a Byzantine peer refilling its queue budget with QBFT messages as fast as the node steps
  them), each batch takes the rest's oldest event first, so such a stream slows the rest down to one
  event a batch but never stops it. A backlog of the rest alone (a slot's partials) never goes before
  urgent events: a step combining partials takes 100-450 ms, and the consensus inputs must not wait
  for it.

The runner hands back after each batch the events it did not step (`put_back`, maybe none): that is
how the queue knows whether the rest made progress.

Each lane keeps its order; every order between lanes is one the model handles (peers' messages arrive
in any order). Events a batch did not step go back to the front of their lanes, in order.

Must not: judge an event's content (the model does, when it steps it).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from covalidator.model.node.events import (
    BeaconDataFailed,
    BeaconDataFetched,
    NodeEvent,
    PeerMessage,
    Persisted,
    Started,
)

STARVE_S: Final = 0.5  # how long the rest may wait behind urgent events before it gets a place a batch
FIRST: Final = -1  # Started's lane
OWN: Final = 0  # this node's urgent events' lane (peers' lanes are their share indices, 1..N)


def urgency(event: NodeEvent) -> int:
    """-1 for Started, 0 for what a decision and the VC's answer wait for (QBFT messages, the BN's data
    for a duty, the store's Persisted), 1 for the rest. A step combining a slot's partials takes
    100-450 ms at 1,000 validators: in a bench trace a proposer round leader's BeaconDataFetched was
    stepped 790 ms after its fetch began, behind queued partials and duties, and the round timed out."""
    if isinstance(event, Started):
        return -1  # the model's first event, whatever the transport queued before the loop began
    if isinstance(event, BeaconDataFetched | BeaconDataFailed | Persisted):
        return 0
    if isinstance(event, PeerMessage) and event.payload.qbft is not None:
        return 0
    return 1


@dataclass(slots=True)
class Queued:
    event: NodeEvent
    lane: int | None  # FIRST, OWN, a peer's share index, or None (the rest)
    since: float  # when it was queued (the queue's clock, seconds)
    peer: int = 0  # the peer whose queue budget holds it (the runner's on_peer), else 0
    size: int = 0  # and its frame's bytes


class StepQueue:
    def __init__(self, clock: Callable[[], float] = time.monotonic, starve_s: float = STARVE_S) -> None:
        self.clock = clock
        self.starve_s = starve_s
        self._urgent: dict[int, deque[Queued]] = {}  # lane -> its events (FIRST, OWN, peers)
        self._turns: deque[int] = deque()  # the urgent lanes with events, FIRST aside, in turn order
        self._rest: deque[Queued] = deque()
        self._count = 0
        self._ready = asyncio.Event()
        self._served_at = clock()  # when one of the rest was last stepped in its own place (not first)
        self._in_place: list[Queued] = []  # the last batch's events of the rest taken in their place
        self._batch_at = 0.0

    def put(self, event: NodeEvent, peer: int = 0, size: int = 0) -> None:
        """Queue `event`; `peer` and `size`: the queue budget it holds, given back once it is stepped."""
        level = urgency(event)
        if level < 0:
            lane: int | None = FIRST
        elif level == 0:
            lane = event.sender if isinstance(event, PeerMessage) else OWN
        else:
            lane = None
        self._add(Queued(event, lane, self.clock(), peer, size), front=False)

    def put_back(self, entries: Sequence[Queued]) -> None:
        """After a batch, the events of it that were not stepped (maybe none): back to the front of
        their lanes, in their order."""
        if self._in_place and not any(entry is self._in_place[0] for entry in entries):
            self._served_at = self._batch_at  # the rest moved on by itself: it is owed nothing
        self._in_place = []
        for entry in reversed(entries):
            self._add(entry, front=True)

    def _add(self, entry: Queued, front: bool) -> None:
        if entry.lane is None:
            lane = self._rest
        else:
            lane = self._urgent.setdefault(entry.lane, deque())
            if not lane and entry.lane != FIRST:
                self._turns.appendleft(entry.lane) if front else self._turns.append(entry.lane)
        lane.appendleft(entry) if front else lane.append(entry)
        self._count += 1
        self._ready.set()

    def events(self) -> Iterator[NodeEvent]:
        """Every event waiting, in no particular order."""
        for lane in (*self._urgent.values(), self._rest):
            for entry in lane:
                yield entry.event

    def qsize(self) -> int:
        return self._count

    def empty(self) -> bool:
        return self._count == 0

    async def batch(self, limit: int) -> list[Queued]:
        """At least one event (waiting for it), at most `limit` besides the Started ones: Started first,
        then the rest's oldest if it is owed its place, then the urgent lanes in turn, then the rest."""
        while not self._count:
            self._ready.clear()
            await self._ready.wait()
        taken: list[Queued] = []
        first = self._urgent.get(FIRST)
        while first:
            taken.append(first.popleft())
        self._batch_at = self.clock()
        if (
            self._rest
            and self._turns
            and self._batch_at - max(self._served_at, self._rest[0].since) >= self.starve_s
        ):
            taken.append(self._rest.popleft())  # first in the batch: always stepped
        while self._turns and len(taken) < limit:
            lane = self._turns.popleft()
            events = self._urgent[lane]
            taken.append(events.popleft())
            if events:
                self._turns.append(lane)
        self._in_place = []
        while self._rest and len(taken) + len(self._in_place) < limit:
            self._in_place.append(self._rest.popleft())
        taken += self._in_place
        self._count -= len(taken)
        return taken
