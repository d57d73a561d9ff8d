"""The generic network and fault simulator (model/simulation.py), driven by a toy gossip protocol.

Nothing here knows QBFT: the engine must work for any payload and any node (the cluster simulator of the
node model reuses it), so the tests use a node that re-broadcasts every payload it sees for the first
time and records what reached it.
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Iterable

from covalidator.sim.network import (
    Crash,
    Effect,
    EventRecord,
    NetBroadcast,
    NetSend,
    NetTimer,
    NetworkConfig,
    Partition,
    Simulator,
)

Payload = tuple[str, int, int]


class Gossip:
    def __init__(self, me: int, relay: bool = True) -> None:
        self.me = me
        self.relay = relay
        self.seen: set[Payload] = set()
        self.received: list[tuple[int, int, Payload]] = []
        self.timers: list[tuple[int, Hashable]] = []
        self.crashes: list[int] = []
        self.restarts: list[int] = []

    def start(self, now_ms: int) -> Iterable[Effect[Payload]]:
        return [NetBroadcast(("hello", self.me, now_ms)), NetTimer(now_ms + 500, "tick")]

    def deliver(self, now_ms: int, sender: int, payload: Payload) -> Iterable[Effect[Payload]]:
        self.received.append((now_ms, sender, payload))
        if payload in self.seen or not self.relay:
            return []
        self.seen.add(payload)
        return [NetBroadcast(payload)]

    def timer(self, now_ms: int, tag: Hashable) -> Iterable[Effect[Payload]]:
        self.timers.append((now_ms, tag))
        again = [NetTimer(now_ms + 500, "tick")] if now_ms < 3000 else []
        return [*again, NetSend(1, ("tick", self.me, now_ms))] if self.me != 1 else again

    def crash(self, now_ms: int) -> None:
        self.crashes.append(now_ms)
        self.seen = set()

    def restart(self, now_ms: int) -> Iterable[Effect[Payload]]:
        self.restarts.append(now_ms)
        return [NetBroadcast(("back", self.me, now_ms)), NetTimer(now_ms + 500, "tick")]


def simulate(
    network: NetworkConfig, seed: int = 1, relay: bool = True, until: int = 10_000, **kwargs: object
) -> tuple[dict[int, Gossip], Simulator[Payload], list[EventRecord[Payload]]]:
    nodes = {i: Gossip(i, relay) for i in range(1, network.n + 1)}
    sim: Simulator[Payload] = Simulator(nodes, network, random.Random(seed), **kwargs)  # type: ignore[arg-type]
    outcome = sim.run(until)
    return nodes, sim, outcome.events


def test_a_seed_names_exactly_one_run() -> None:
    net = NetworkConfig(n=5, drop_rate=0.3, duplicate_rate=0.2, late_rate=0.3, gst_ms=3000)
    _, sim_a, events_a = simulate(net, seed=7)
    _, sim_b, events_b = simulate(net, seed=7)
    _, _, events_c = simulate(net, seed=8)
    assert [e.describe() for e in events_a] == [e.describe() for e in events_b]
    assert sim_a.stats == sim_b.stats
    assert [e.describe() for e in events_a] != [e.describe() for e in events_c]


def test_a_reliable_network_delivers_everything_within_the_link_delays() -> None:
    nodes, sim, _ = simulate(NetworkConfig(n=4, min_delay_ms=10, max_delay_ms=20, jitter_ms=5), relay=False)
    for node in nodes.values():
        hellos = [(t, s) for t, s, p in node.received if p[0] == "hello"]
        assert sorted(s for _, s in hellos) == [i for i in range(1, 5) if i != node.me]
        assert all(10 <= t <= 25 for t, _ in hellos)
    assert sim.stats.dropped == 0 and sim.stats.delivered == sim.stats.sent


def test_drops_reordering_and_duplicates_before_gst_none_after() -> None:
    net = NetworkConfig(n=6, drop_rate=0.5, duplicate_rate=0.3, late_rate=0.5, late_max_ms=2000, gst_ms=2000)
    nodes, sim, events = simulate(net, relay=False, until=20_000)
    assert sim.stats.dropped > 0 and sim.stats.duplicated > 0
    late = [
        e for e in events if e.kind == "deliver" and e.payload is not None and e.at_ms - e.payload[2] > 150
    ]
    assert late, "some messages sent before GST arrive far beyond the link latency (reordering)"
    # after GST every message arrives, within the bound
    after = [
        (e.at_ms, e.payload)
        for e in events
        if e.kind == "deliver" and e.payload and e.payload[0] == "tick" and e.payload[2] >= 2000
    ]
    sent_after = [(n.me, t) for n in nodes.values() for t, _ in n.timers if t >= 2000 and n.me != 1]
    assert {(p[1], p[2]) for _, p in after if p} >= set(sent_after)
    assert all(at - p[2] <= net.max_delay_after_gst_ms for at, p in after if p)


def test_a_partition_cuts_the_groups_until_it_heals() -> None:
    cut = Partition(0, 1000, frozenset({1, 2}))
    net = NetworkConfig(n=4, partitions=(cut,), gst_ms=1000)
    nodes, _, _ = simulate(net, relay=False)
    hello_from = {i: {p[1] for _, _, p in nodes[i].received if p[0] == "hello"} for i in nodes}
    assert hello_from == {1: {2}, 2: {1}, 3: {4}, 4: {3}}
    ticks = {(p[1], p[2]) for _, _, p in nodes[1].received if p[0] == "tick"}
    assert (2, 500) in ticks and (3, 500) not in ticks and (4, 500) not in ticks  # cut
    assert {(3, 1000), (4, 1000), (3, 1500)} <= ticks  # healed


def test_a_crashed_node_receives_nothing_and_its_timers_die_until_it_restarts() -> None:
    net = NetworkConfig(n=3, crashes=(Crash(2, 5, 2000),))
    nodes, sim, events = simulate(net, relay=False, until=3000)
    node = nodes[2]
    assert node.crashes == [5] and node.restarts == [2000]
    assert all(not 5 <= t < 2000 for t, _, _ in node.received)
    assert node.timers[0] == (2500, "tick")  # the 500 ms timer of the first incarnation never fired
    assert sim.stats.dropped >= 2  # the hellos of nodes 1 and 3 found it down
    assert any(p[0] == "back" for _, _, p in nodes[1].received)
    assert [e.kind for e in events if e.node == 2][:2] == ["start", "crash"]


def test_refused_payloads_are_counted_as_forgeries() -> None:
    net = NetworkConfig(n=3)
    nodes, sim, _ = simulate(net, relay=False, until=1000, authentic=lambda sender, payload: sender != 3)
    assert all(s != 3 for n in nodes.values() for _, s, _ in n.received)
    assert sim.stats.forged == 3  # its two hellos and its 500 ms tick to node 1


def test_a_violation_stops_the_run_and_the_seed_replays_the_same_prefix() -> None:
    net = NetworkConfig(n=5, drop_rate=0.2, duplicate_rate=0.2, late_rate=0.3, gst_ms=2000)

    def run() -> tuple[str | None, list[str]]:
        nodes = {i: Gossip(i) for i in range(1, 6)}

        def check(record: EventRecord[Payload]) -> str | None:
            node = nodes[record.node]
            return "node 3 saw node 5's hello" if node.me == 3 and ("hello", 5, 0) in node.seen else None

        outcome = Simulator(nodes, net, random.Random(11), check=check).run(10_000)  # type: ignore[arg-type]
        return outcome.violation, [e.describe() for e in outcome.failing_prefix]

    violation, prefix = run()
    assert violation == "node 3 saw node 5's hello"
    assert "n3 <-" in prefix[-1] and "('hello', 5, 0)" in prefix[-1]
    assert run() == (violation, prefix)
