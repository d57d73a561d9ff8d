"""A deterministic, seeded network and fault simulator for N nodes that are driven by pure step functions.

Decides *when and whether* each message and timer reaches each node: per-link delays, drops, duplicates,
reordering, partitions that heal at GST, crashes and restarts. It knows nothing about what the payloads
mean or what a node does with them: a node is anything with the `SimNode` methods, which return
`Effect`s (send, broadcast, set a timer). `qbft_simulation` plugs QBFT instances and Byzantine peers
into it; the node model's cluster simulator plugs whole co-validators into the same engine.

Determinism: one `random.Random` (the caller seeds it) drives every network decision, and events are
processed in (virtual time, sequence number) order, so a seed names exactly one run. After every
processed event the caller's `check` runs; the first violation stops the run, and the events processed
so far are the shortest prefix of that run that breaks the invariant (re-running the seed reproduces it
event for event).

The network model, partial synchrony:
  before GST  a message may be dropped (`drop_rate`), delayed far beyond the link's latency
              (`late_rate`, up to `late_max_ms`: reordering across rounds), or cut by a partition
              window (`partitions`: a group that cannot talk to the rest during [start, end));
  always      a message may be duplicated (`duplicate_rate`), each copy with its own delay;
  after GST   no drops, no partitions, every delay <= `max_delay_after_gst_ms` (the bound Δ).
Each link (a, b) draws its own base latency once, in [min_delay_ms, max_delay_ms], plus jitter.
A crashed node receives nothing and its timers die with it; at restart it is asked to rebuild itself
(what survives, e.g. persisted decisions, is the node's business).

Authentication: a Byzantine node may send anything, but cannot forge an honest node's signature. The
caller's `authentic(sender, payload)` models the runtime's signature checks; payloads that fail it are
dropped at delivery and counted, exactly as the runtime would refuse them.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class NetSend[P]:
    to: int
    payload: P


@dataclass(frozen=True)
class NetBroadcast[P]:
    """To every other node."""

    payload: P


@dataclass(frozen=True)
class NetTimer:
    at_ms: int
    tag: Hashable


type Effect[P] = NetSend[P] | NetBroadcast[P] | NetTimer


class SimNode[P](Protocol):
    def start(self, now_ms: int) -> Iterable[Effect[P]]: ...

    def deliver(self, now_ms: int, sender: int, payload: P) -> Iterable[Effect[P]]: ...

    def timer(self, now_ms: int, tag: Hashable) -> Iterable[Effect[P]]: ...

    def crash(self, now_ms: int) -> None: ...

    def restart(self, now_ms: int) -> Iterable[Effect[P]]: ...


@dataclass(frozen=True)
class Partition:
    start_ms: int
    end_ms: int
    group: frozenset[int]  # these nodes cannot talk to the others during [start, end)

    def cuts(self, now_ms: int, a: int, b: int) -> bool:
        return self.start_ms <= now_ms < self.end_ms and ((a in self.group) != (b in self.group))


@dataclass(frozen=True)
class Crash:
    node: int
    at_ms: int
    restart_ms: int


@dataclass(frozen=True)
class NetworkConfig:
    n: int
    min_delay_ms: int = 5
    max_delay_ms: int = 120
    jitter_ms: int = 30
    drop_rate: float = 0.0
    duplicate_rate: float = 0.0
    late_rate: float = 0.0
    late_max_ms: int = 2_500
    gst_ms: int = 0
    max_delay_after_gst_ms: int = 250
    partitions: tuple[Partition, ...] = ()
    crashes: tuple[Crash, ...] = ()

    def __post_init__(self) -> None:
        assert 0 <= self.min_delay_ms <= self.max_delay_ms
        assert (
            self.max_delay_ms + self.jitter_ms <= self.max_delay_after_gst_ms
            or self.max_delay_after_gst_ms <= 0
        )
        assert all(c.restart_ms > c.at_ms for c in self.crashes)


# event kinds, in the order they are processed when they share a timestamp and sequence
START, DELIVER, TIMER, CRASH, RESTART = "start", "deliver", "timer", "crash", "restart"


@dataclass(frozen=True)
class EventRecord[P]:
    """One processed event: what a failing run prints as its prefix."""

    index: int
    at_ms: int
    node: int
    kind: str
    sender: int = 0
    payload: P | None = None
    tag: Hashable = None

    def describe(self) -> str:
        if self.kind == DELIVER:
            return f"#{self.index} t={self.at_ms}ms n{self.node} <- n{self.sender}: {self.payload!r}"
        if self.kind == TIMER:
            return f"#{self.index} t={self.at_ms}ms n{self.node} timer {self.tag!r}"
        return f"#{self.index} t={self.at_ms}ms n{self.node} {self.kind}"


@dataclass
class NetworkStats:
    sent: int = 0  # point-to-point messages handed to the network (a broadcast counts N - 1)
    delivered: int = 0
    dropped: int = 0  # lost: random drops before GST, partitions, crashed receivers
    duplicated: int = 0
    forged: int = 0  # refused by `authentic` (a signature the runtime would reject)
    sent_by: dict[int, int] = field(default_factory=dict)


@dataclass
class RunOutcome[P]:
    violation: str | None
    events: list[EventRecord[P]]
    end_ms: int
    stats: NetworkStats

    @property
    def failing_prefix(self) -> list[EventRecord[P]]:
        """The events up to and including the one after which the invariant broke."""
        return self.events if self.violation is not None else []


class Simulator[P]:
    """Runs N `SimNode`s over the simulated network until `done()`, `until_ms`, or a violation."""

    def __init__(
        self,
        nodes: Mapping[int, SimNode[P]],
        network: NetworkConfig,
        rng: random.Random,
        *,
        check: Callable[[EventRecord[P]], str | None] = lambda record: None,
        authentic: Callable[[int, P], bool] | None = None,
        keep_events: bool = True,
        max_events: int = 2_000_000,
    ) -> None:
        assert sorted(nodes) == list(range(1, network.n + 1))
        self.nodes = nodes
        self.net = network
        self.rng = rng
        self.check = check
        self.authentic = authentic
        self.keep_events = keep_events
        self.max_events = max_events
        self.now = 0
        self.stats = NetworkStats()
        self.down: set[int] = set()
        self.incarnation = dict.fromkeys(nodes, 0)
        self._heap: list[tuple[int, int, str, int, int, object]] = []
        self._seq = 0
        self._ids = list(nodes)
        self._latency = {
            (a, b): rng.randint(network.min_delay_ms, network.max_delay_ms)
            for a in nodes
            for b in nodes
            if a != b
        }

    # --- scheduling ------------------------------------------------------------------------------------

    def _push(self, at_ms: int, kind: str, node: int, a: int, data: object) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (at_ms, self._seq, kind, node, a, data))

    def _delay(self, a: int, b: int) -> int:
        net, rng = self.net, self.rng
        delay = self._latency[(a, b)] + (rng.randint(0, net.jitter_ms) if net.jitter_ms else 0)
        if self.now < net.gst_ms:
            if net.late_rate and rng.random() < net.late_rate:
                delay += rng.randint(0, net.late_max_ms)
        elif net.max_delay_after_gst_ms > 0:
            delay = min(delay, net.max_delay_after_gst_ms)
        return delay

    def _transmit(self, sender: int, to: int, payload: P) -> None:
        net, rng = self.net, self.rng
        self.stats.sent += 1
        self.stats.sent_by[sender] = self.stats.sent_by.get(sender, 0) + 1
        if self.now < net.gst_ms:
            if net.drop_rate and rng.random() < net.drop_rate:
                self.stats.dropped += 1
                return
            if any(p.cuts(self.now, sender, to) for p in net.partitions):
                self.stats.dropped += 1
                return
        self._push(self.now + self._delay(sender, to), DELIVER, to, sender, payload)
        if net.duplicate_rate and rng.random() < net.duplicate_rate:
            self.stats.duplicated += 1
            self._push(self.now + self._delay(sender, to), DELIVER, to, sender, payload)

    def _apply(self, node: int, effects: Iterable[Effect[P]]) -> None:
        for effect in effects:
            if isinstance(effect, NetBroadcast):
                for other in self._ids:
                    if other != node:
                        self._transmit(node, other, effect.payload)
            elif isinstance(effect, NetSend):
                if effect.to != node and effect.to in self.nodes:
                    self._transmit(node, effect.to, effect.payload)
            else:
                self._push(max(effect.at_ms, self.now), TIMER, node, self.incarnation[node], effect.tag)

    # --- the loop --------------------------------------------------------------------------------------

    def run(
        self, until_ms: int, done: Callable[[], bool] = lambda: False, start_times: Sequence[int] = ()
    ) -> RunOutcome[P]:
        """Start every node (at `start_times[i - 1]`, default 0), schedule the crash plan, run."""
        self.begin(start_times)
        events: list[EventRecord[P]] = []
        count = 0
        while self._heap and count < self.max_events:
            at_ms, _, kind, node, a, data = heapq.heappop(self._heap)
            if at_ms > until_ms:
                self.now = until_ms
                break
            self.now = at_ms
            record = self._process(kind, node, a, data, count)
            if record is None:
                continue
            count += 1
            if self.keep_events:
                events.append(record)
            violation = self.check(record)
            if violation is not None:
                return RunOutcome(violation, events, self.now, self.stats)
            if done():
                break
        return RunOutcome(None, events, self.now, self.stats)

    # --- stepping by hand (a Hypothesis machine chooses the schedule) ---------------------------------

    def begin(self, start_times: Sequence[int] = ()) -> None:
        """Schedule every node's start and the crash plan (what `run` does first)."""
        for i in self._ids:
            self._push(start_times[i - 1] if start_times else 0, START, i, 0, None)
        for c in self.net.crashes:
            self._push(c.at_ms, CRASH, c.node, 0, None)
            self._push(c.restart_ms, RESTART, c.node, 0, None)

    def step_next(self) -> EventRecord[P] | None:
        """Process the earliest scheduled event (time moves to it); None when nothing is scheduled or
        the event was void (a delivery to a crashed node, a dead incarnation's timer)."""
        if not self._heap:
            return None
        at_ms, _, kind, node, a, data = heapq.heappop(self._heap)
        self.now = max(self.now, at_ms)
        self._seq += 1
        return self._process(kind, node, a, data, self._seq)

    def pending_deliveries(self) -> list[int]:
        """Positions (in the schedule) of the messages in flight, earliest first."""
        order = sorted(range(len(self._heap)), key=lambda i: self._heap[i][:2])
        return [i for i in order if self._heap[i][2] == DELIVER]

    def _take(self, position: int) -> tuple[int, int, str, int, int, object]:
        entry = self._heap[position]
        self._heap[position] = self._heap[-1]
        self._heap.pop()
        heapq.heapify(self._heap)
        return entry

    def deliver_now(self, position: int) -> EventRecord[P] | None:
        """Deliver an in-flight message now, ahead of its time (reordering)."""
        _, _, kind, node, a, data = self._take(position)
        assert kind == DELIVER
        self._seq += 1
        return self._process(kind, node, a, data, self._seq)

    def drop(self, position: int) -> None:
        """Lose an in-flight message."""
        self._take(position)
        self.stats.dropped += 1

    def duplicate(self, position: int) -> None:
        """Deliver an in-flight message twice."""
        at_ms, _, kind, node, a, data = self._heap[position]
        self._push(at_ms + 1, kind, node, a, data)
        self.stats.duplicated += 1

    def crash_now(self, node: int) -> None:
        if node not in self.down:
            self._process(CRASH, node, 0, None, self._seq)

    def restart_now(self, node: int) -> None:
        if node in self.down:
            self._process(RESTART, node, 0, None, self._seq)

    def _process(self, kind: str, node: int, a: int, data: object, index: int) -> EventRecord[P] | None:
        target = self.nodes[node]
        if kind == DELIVER:
            payload: P = data  # type: ignore[assignment]
            if node in self.down:
                self.stats.dropped += 1
                return None
            if self.authentic is not None and not self.authentic(a, payload):
                self.stats.forged += 1
                return None
            self.stats.delivered += 1
            self._apply(node, target.deliver(self.now, a, payload))
            return EventRecord(index, self.now, node, DELIVER, a, payload)
        if kind == TIMER:
            if node in self.down or a != self.incarnation[node]:
                return None  # a timer of a crashed incarnation
            tag: Hashable = data
            self._apply(node, target.timer(self.now, tag))
            return EventRecord(index, self.now, node, TIMER, tag=tag)
        if kind == START:
            if node in self.down:
                return None  # crashed before it started: its restart builds it
            self._apply(node, target.start(self.now))
            return EventRecord(index, self.now, node, START)
        if kind == CRASH:
            self.down.add(node)
            self.incarnation[node] += 1
            target.crash(self.now)
            return EventRecord(index, self.now, node, CRASH)
        assert kind == RESTART
        self.down.discard(node)
        self._apply(node, target.restart(self.now))
        return EventRecord(index, self.now, node, RESTART)
