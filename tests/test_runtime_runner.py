"""The node runner's loop with a scripted model step: a Persist is durable before the next action runs,
`stop()` ends the loop only after the step in progress (and its Persist) finished, a step that raises
is logged and the loop goes on; and the BN's head events become HeadChanged."""

from __future__ import annotations

import asyncio
import functools
import itertools
import sqlite3
import threading
import time
from collections import Counter
from typing import Any

import pytest

from covalidator.model.clock import SlotClock
from covalidator.model.cluster.config import ChainConfig, NodeConfig, ValidatorKeys
from covalidator.model.duty import DutyId, DutyKind
from covalidator.model.eth.signing import ForkSchedule
from covalidator.model.node.events import (
    HeadChanged,
    NodeAction,
    Persist,
    Persisted,
    ReplyToVC,
    Started,
    VCRequest,
    VCRequestKind,
)
from covalidator.runtime import node_runner
from covalidator.runtime.node_app import head_changed
from covalidator.runtime.node_runner import NodeRunner
from tests.helpers.aio import run, until
from tests.helpers.fake_bn import SPEC

DUTY = DutyId(8, DutyKind.ATTESTER)


def config() -> NodeConfig:
    chain = ChainConfig(SlotClock(0, 6000, 8), ForkSchedule.from_spec_config(SPEC, b"\x4b" * 32))
    return NodeConfig(
        1, 3, (ValidatorKeys("0x" + "a1" * 48, tuple("0x" + f"{s:02x}" * 48 for s in range(4))),), chain
    )


class SlowStore:
    """persist takes 0.3 s; every call is logged with the time it ended."""

    def __init__(self) -> None:
        self.log: list[tuple[str, float]] = []
        self.thread: set[str] = set()

    def persist(self, action: Persist) -> Persisted:
        self.thread.add(threading.current_thread().name)
        time.sleep(0.3)
        self.log.append(("persisted", time.monotonic()))
        return Persisted(action.duty)

    def record_outcomes(self, outcomes: Any) -> None:
        pass

    def started(self, now_ms: int, pubkeys: Any, *, since_slot: int, slots_per_epoch: int) -> Started:
        self.log.append(("started", time.monotonic()))
        return Started(now_ms)


class FailsFirstCommit(SlowStore):
    """A SlowStore whose first commit of each kind named ("persist", "persist_pool") fails, as on a
    failing disk; `commits` counts the tries of each kind."""

    def __init__(self, *failing: str) -> None:
        super().__init__()
        self.failing = set(failing)
        self.commits: Counter[str] = Counter()

    def _commit(self, kind: str) -> None:
        self.commits[kind] += 1
        if kind in self.failing and self.commits[kind] == 1:
            raise sqlite3.OperationalError("disk I/O error")

    def persist(self, action: Persist) -> Persisted:
        self._commit("persist")
        return super().persist(action)

    def persist_pool(self, partials: Any) -> None:
        self._commit("persist_pool")


def scripted_step(state: Any, event: Any) -> tuple[Any, tuple[NodeAction, ...]]:
    if isinstance(event, VCRequest):
        if event.params == "boom":
            raise ValueError("a model bug on this input")
        return state, (Persist(DUTY, {}, "0x00"), ReplyToVC(event.request_id, 200, {"data": "decided"}))
    return state, ()


def test_persist_before_the_reply_stop_after_the_step_and_a_raising_step_is_survived(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(node_runner, "step", scripted_step)
    store = SlowStore()

    async def scenario() -> None:
        runner = NodeRunner(config(), store, bn=None)
        loop_task = asyncio.create_task(runner.run(Started(0)))
        bad = await runner.ask(lambda rid: VCRequest(rid, VCRequestKind.ATTESTATION_DATA, "boom"), 3)
        # logged, the model rebuilt from the store, the request answered 503 at once; the loop lives on
        assert bad is not None and bad.status == 503 and "ask again" in bad.body["message"]
        # the 503 goes out before the store is read (in the store's thread): wait for that read
        await until(lambda: bool(store.log), what="the store read for the restart")
        assert (runner.step_errors, runner.restarts, [e for e, _ in store.log]) == (1, 1, ["started"])
        answered = asyncio.create_task(
            runner.ask(lambda rid: VCRequest(rid, VCRequestKind.ATTESTATION_DATA, {}), 5)
        )
        while not store.thread:
            await asyncio.sleep(0.01)
        runner.stop()  # mid-persist: the step's actions still all run
        reply = await answered
        replied = time.monotonic()
        await asyncio.wait_for(loop_task, 5)
        assert reply is not None and reply.status == 200
        assert store.log[1][0] == "persisted" and store.log[1][1] <= replied  # durable before the answer
        # Started, the Started of the restart and the request; the Persisted queued after stop is not stepped
        assert runner.steps == 3
        await runner.close()

    run(scenario(), 20)
    assert store.thread and not any(name.startswith("covalidator-step") for name in store.thread)


def test_head_events_become_head_changed_and_garbage_is_ignored() -> None:
    event = head_changed(
        "head",
        {
            "slot": "12",
            "block": "0x" + "ab" * 32,
            "previous_duty_dependent_root": "0x" + "01" * 32,
            "current_duty_dependent_root": "0x" + "02" * 32,
            "epoch_transition": False,
        },
    )
    assert event == HeadChanged(12, "0x" + "ab" * 32, "0x" + "01" * 32, "0x" + "02" * 32)
    assert head_changed("block", {"slot": "1", "block": "0x"}) is None
    assert head_changed("head", {"slot": "twelve", "block": "0x"}) is None
    assert head_changed("head", ["not", "an", "object"]) is None
    assert head_changed("head", {"block": "0x"}) is None


def test_a_steps_outcomes_are_recorded_in_one_transaction_until_another_action() -> None:
    from covalidator.model.node.events import DutyOutcome, Log, Metric, ReplyToVC

    ends = [DutyOutcome(DUTY, f"0x{i:096x}", True) for i in range(3)]
    noted = [Metric("duty_outcome", (("kind", "attester"),)) for _ in ends]  # as `finish` notes each
    late = DutyOutcome(DUTY, "0x" + "ff" * 48, False, "no_consensus")
    log = Log("info", "between")
    reply = ReplyToVC(7, 200, {})
    actions = [ends[0], noted[0], ends[1], noted[1], log, ends[2], noted[2], reply, late, log]
    assert node_runner._runs_of_outcomes(actions) == [
        ends,
        noted[0],
        noted[1],
        log,
        noted[2],
        reply,
        [late],
        log,
    ]
    assert node_runner._runs_of_outcomes([log, *ends]) == [log, ends]
    assert node_runner._runs_of_outcomes([]) == []


def test_consensus_inputs_are_stepped_before_queued_partials_and_timers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from covalidator.model.node.events import (
        BeaconDataFetched,
        PartialSignatures,
        PeerMessage,
        PeerPayload,
        TimerFired,
        TimerKey,
    )

    stepped: list[str] = []

    def recording_step(state: Any, event: Any) -> tuple[Any, tuple[NodeAction, ...]]:
        stepped.append(type(event).__name__)
        return state, ()

    monkeypatch.setattr(node_runner, "step", recording_step)
    partials = PeerMessage(2, PeerPayload(partials=PartialSignatures(DUTY, ())))
    timer = TimerFired(TimerKey("deadline", DUTY), 0)
    fetched = BeaconDataFetched(DUTY, {})

    async def scenario() -> None:
        runner = NodeRunner(config(), SlowStore(), bn=None)
        for event in (Started(0), partials, timer, fetched, Persisted(DUTY)):
            runner.submit(event)  # all queued before the loop takes the first
        loop_task = asyncio.create_task(runner.run(Started(0)))
        while runner.steps < 6:
            await asyncio.sleep(0.01)
        runner.stop()
        await asyncio.wait_for(loop_task, 5)
        await runner.close()

    run(scenario(), 20)
    assert stepped == ["Started", "Started", "BeaconDataFetched", "Persisted", "PeerMessage", "TimerFired"]


def test_a_flooding_peer_fills_only_its_own_share_of_the_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 16 (Medium): the runner's queue had no bound, so a co-operator sending well-formed
    messages faster than the node steps could fill its memory. Each peer may have
    `peer_queue_limit` messages and `peer_queue_bytes` waiting; beyond that its messages are dropped
    and counted, while another peer's still get in, and the budget comes back as they are stepped."""
    from covalidator.model.node.events import Metric, PartialSignatures, PeerMessage, PeerPayload

    stepped: list[int] = []

    def recording_step(state: Any, event: Any) -> tuple[Any, tuple[NodeAction, ...]]:
        if isinstance(event, PeerMessage):
            stepped.append(event.sender)
        return state, ()

    monkeypatch.setattr(node_runner, "step", recording_step)
    payload = PeerPayload(partials=PartialSignatures(DUTY, ()))
    observed: list[Metric] = []

    class Sink:
        def observe(self, metric: Metric) -> None:
            observed.append(metric)

        def outcome(self, outcome: Any) -> None:
            pass

    async def scenario() -> None:
        runner = NodeRunner(config(), SlowStore(), bn=None, metrics=Sink())
        runner.peer_queue_limit, runner.peer_queue_bytes = 5, 1000
        for _ in range(8):
            runner.on_peer(2, payload, 10)  # the flooder: 5 queued, 3 dropped
        runner.on_peer(3, payload, 990)  # an honest peer: still room for it
        runner.on_peer(3, payload, 20)  # over ITS byte budget: dropped
        assert (runner._peer_queued[2], runner._peer_queued[3], runner._peer_bytes[3]) == (5, 1, 990)
        assert runner.peer_queue_dropped == {2: 3, 3: 1}
        loop_task = asyncio.create_task(runner.run(Started(0)))
        while len(stepped) < 6:
            await asyncio.sleep(0.01)
        assert (runner._peer_queued[2], runner._peer_bytes[2], runner._peer_bytes[3]) == (0, 0, 0)
        runner.on_peer(2, payload, 10)  # stepped messages give their budget back
        while len(stepped) < 7:
            await asyncio.sleep(0.01)
        runner.stop()
        await asyncio.wait_for(loop_task, 5)
        await runner.close()

    run(scenario(), 20)
    assert sorted(stepped) == [2] * 6 + [3]
    drops = [dict(m.labels) for m in observed if m.name == "peer_message_dropped"]
    assert drops == [{"cause": "queue_full", "peer": "2"}] * 3 + [{"cause": "queue_full", "peer": "3"}]


def test_a_full_disk_serves_nothing_says_store_unavailable_and_recovers_by_itself(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """Issue 16: while the store cannot commit (SQLite's max_page_count makes it answer SQLITE_FULL,
    "database or disk is full", exactly as a full disk does), the decided value is never served (the
    model serves only on Persisted), /readyz names store_unavailable, and when space returns the
    runner's retry commits it and the VC is served, with no restart."""
    from covalidator.runtime.monitoring import HealthInputs, not_ready_reasons
    from covalidator.runtime.store import Store

    def serve_after_persisted(state: Any, event: Any) -> tuple[Any, tuple[NodeAction, ...]]:
        if isinstance(event, VCRequest):
            state = {"request": event.request_id}
            return state, (Persist(DUTY, {"data": "x" * 200_000}, "0x01"),)  # needs new pages
        if isinstance(event, Persisted):
            return state, (ReplyToVC(state["request"], 200, {"data": "decided"}),)
        return state, ()

    monkeypatch.setattr(node_runner, "step", serve_after_persisted)
    monkeypatch.setattr(node_runner, "PERSIST_RETRY_S", 0.05)
    store = Store(tmp_path / "store.sqlite", b"\x4b" * 32)
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full

    def ready(runner: NodeRunner) -> list[str]:
        inputs = HealthInputs({}, 1, 0, {}, 0, 10**9, store_error=runner.store_error)
        return [r["reason"] for r in not_ready_reasons(inputs)]

    async def scenario() -> None:
        runner = NodeRunner(config(), store, bn=None, clock=lambda: 0)  # the duty's deadline is far
        loop_task = asyncio.create_task(runner.run(Started(0)))
        asked = asyncio.create_task(
            runner.ask(lambda rid: VCRequest(rid, VCRequestKind.ATTESTATION_DATA, {}), 10)
        )
        while runner.store_failures < 3:  # the first commit and two retries failed
            await asyncio.sleep(0.01)
        assert not asked.done()  # nothing served while nothing is durable
        assert "store_unavailable" in ready(runner) and "full" in (runner.store_error or "")
        store._db.execute("PRAGMA max_page_count = 1000000")  # space returns
        reply = await asyncio.wait_for(asked, 5)
        assert reply is not None and reply.status == 200
        assert runner.store_error is None and "store_unavailable" not in ready(runner)
        assert (runner.step_errors, runner.restarts) == (0, 0)
        runner.stop()
        await asyncio.wait_for(loop_task, 5)
        await runner.close()

    run(scenario(), 20)
    assert store.decided_since(0)  # the value is in the store
    store.close()


def test_timers_follow_the_wall_clock_across_a_jump_either_way() -> None:
    """The loop sleeps on the monotonic clock; the duty times are wall-clock times. A machine paused for
    9 s (seen in CI: a VM stall) leaves the wall clock 9 s ahead of every sleep armed before it, and a
    step back (NTP) leaves it behind. A timer must fire when the WALL clock reaches it: within
    TIMER_RECHECK_S after a forward jump, and never before its time after a backward one."""
    from covalidator.model.node.events import TimerFired, TimerKey

    wall = [1_000_000]

    async def next_fired(runner: NodeRunner, within_s: float) -> TimerFired | None:
        try:
            (item,) = await asyncio.wait_for(runner.queue.batch(1), within_s)
            event = item.event
        except TimeoutError:
            return None
        assert isinstance(event, TimerFired)
        return event

    async def scenario() -> None:
        runner = NodeRunner(config(), SlowStore(), bn=None, clock=lambda: wall[0])
        # forward: armed for 60 s ahead, then the wall clock jumps 60 s (no monotonic time passes)
        runner._start_timer(TimerKey("deadline", DUTY), wall[0] + 60_000)
        wall[0] += 60_000
        fired = await next_fired(runner, node_runner.TIMER_RECHECK_S + 0.5)
        assert fired is not None, "a timer armed before a forward jump fired late by the whole jump"
        assert fired.now_ms == wall[0]
        # backward: armed for 0.3 s ahead, then the wall clock steps 5 s back
        runner._start_timer(TimerKey("start", DUTY), wall[0] + 300)
        wall[0] -= 5_000
        assert await next_fired(runner, 1.5) is None, "a timer fired before the wall clock reached it"
        wall[0] += 5_300
        fired = await next_fired(runner, node_runner.TIMER_RECHECK_S + 0.5)
        assert fired is not None and fired.key.purpose == "start" and fired.now_ms == wall[0]
        await runner.close()

    run(scenario(), 20)


def test_pending_timers_fire_in_time_order_behind_one_loop_wake_up() -> None:
    """However many timers are pending, the loop holds one wake-up for them (the earliest, or
    TIMER_RECHECK_S away); each fires when the wall clock reaches it, in time order."""
    from covalidator.model.node.events import TimerFired, TimerKey

    wall = [5_000_000]

    async def scenario() -> None:
        runner = NodeRunner(config(), SlowStore(), bn=None, clock=lambda: wall[0])
        loop = asyncio.get_running_loop()

        def armed() -> int:  # the loop's live timer handles (cancelled ones linger until popped)
            return sum(not h.cancelled() for h in loop._scheduled)  # type: ignore[attr-defined]

        before = armed()
        for i in range(200):
            runner._start_timer(
                TimerKey("deadline", DutyId(1000 + i, DutyKind.ATTESTER)), wall[0] + 10_000 + i
            )
        for offset in (300, 100, 200):
            runner._start_timer(TimerKey("start", DutyId(offset, DutyKind.ATTESTER)), wall[0] + offset)
        runner._start_timer(TimerKey("start", DutyId(100, DutyKind.ATTESTER)), wall[0] + 100)  # again: once
        assert armed() - before == 1
        wall[0] += 250
        fired = []
        while len(fired) < 2:
            (item,) = await asyncio.wait_for(runner.queue.batch(1), node_runner.TIMER_RECHECK_S + 0.5)
            event = item.event
            assert isinstance(event, TimerFired)
            fired.append(event.key.duty.slot if event.key.duty else None)
        assert fired == [100, 200] and runner.queue.empty()
        wall[0] += 100
        (item,) = await asyncio.wait_for(runner.queue.batch(1), node_runner.TIMER_RECHECK_S + 0.5)
        event = item.event
        assert isinstance(event, TimerFired) and event.key.duty == DutyId(300, DutyKind.ATTESTER)
        assert len(runner._timers) == 200
        await runner.close()
        assert not runner._timers and runner._wake is None

    run(scenario(), 20)


def test_queued_events_are_stepped_in_one_hop_in_order_and_traced_event_then_actions(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """Events already queued go to the step thread together (`_step_batch`: one hop, not one each),
    are stepped in the queue's order, and each is in the trace right before its own actions, which
    run in that order. A step that raises ends the batch: the events after it are stepped after the
    restart, none lost, none stepped twice."""
    from covalidator.model.node.events import Log
    from covalidator.runtime.trace import TraceHeader, TraceRecorder, read_trace

    stepped: list[tuple[str, str]] = []

    def recording_step(state: Any, event: Any) -> tuple[Any, tuple[NodeAction, ...]]:
        stepped.append((threading.current_thread().name, repr(getattr(event, "params", ""))))
        if isinstance(event, VCRequest):
            if event.params == "boom":
                raise ValueError("a model bug on this input")
            return state, (Log("info", f"step {event.params}", ()),)
        return state, ()

    monkeypatch.setattr(node_runner, "step", recording_step)
    hops: list[int] = []
    executed: list[str] = []

    async def scenario() -> None:
        trace = TraceRecorder(tmp_path / "trace", TraceHeader("0x" + "00" * 32, 1, {}, {}))
        runner = NodeRunner(config(), SlowStore(), bn=None, trace=trace)
        batch = runner._step_batch

        def counting(events: list[Any]) -> Any:
            hops.append(len(events))
            return batch(events)

        async def execute(action: Any) -> None:
            executed.append(action.message)

        monkeypatch.setattr(runner, "_step_batch", counting)
        monkeypatch.setattr(runner, "_execute", execute)
        for params in ("a", "b", "c", "boom", "d", "e"):
            runner.submit(VCRequest(len(executed) + 100, VCRequestKind.ATTESTATION_DATA, params))
        loop_task = asyncio.create_task(runner.run(Started(0)))
        await until(lambda: len(executed) == 5, what="the five good requests' actions")
        assert (runner.step_errors, runner.restarts) == (1, 1)  # the model rebuilt after "boom"
        runner.stop()
        await asyncio.wait_for(loop_task, 5)
        await runner.close()
        trace.close()

    run(scenario(), 20)
    assert executed == ["step a", "step b", "step c", "step d", "step e"]
    order = [params for _, params in stepped]
    assert order.count("'a'") == order.count("'boom'") == order.count("'e'") == 1
    assert order.index("'c'") < order.index("'boom'") < order.index("'d'")
    assert all(name.startswith("covalidator-step") for name, _ in stepped)
    assert hops[0] > 1 and len(hops) < len(stepped)  # several events per hop
    steps = list(read_trace(tmp_path / "trace").steps())
    assert [getattr(s.event, "params", None) for s in steps if isinstance(s.event, VCRequest)] == [
        "a",
        "b",
        "c",
        "boom",
        "d",
        "e",
    ]
    assert [s.actions is None for s in steps if isinstance(s.event, VCRequest)] == [
        False,
        False,
        False,
        True,
        False,
        False,
    ]  # the raising step's event is traced without actions; every other with its own
    assert all(
        s.actions == (Log("info", f"step {s.event.params}", ()),)
        for s in steps
        if isinstance(s.event, VCRequest) and s.actions
    )


@pytest.mark.parametrize("failing", ["event", "actions"])
def test_a_trace_that_cannot_be_written_stops_tracing_and_the_duties_go_on(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, failing: str
) -> None:
    """A full disk under the trace (its event's line or its actions' line fails to write): the event is
    still stepped and its actions run, tracing stops for the rest of the run (counted), no restart,
    nothing dropped, and what was written still reads."""
    from covalidator.runtime.trace import TraceHeader, TraceRecorder, read_trace

    monkeypatch.setattr(node_runner, "step", scripted_step)
    trace = TraceRecorder(tmp_path / "trace", TraceHeader("0x" + "00" * 32, 1, {}, {}))
    write = trace._write
    # the header is written; then Started's event and actions, the first request's, its Persisted's,
    # and the second request's event (write 7) or actions (write 8): that write fails
    fail_at = {"event": 7, "actions": 8}[failing]
    writes = [0]

    def disk_fills(data: bytes) -> None:
        writes[0] += 1
        if writes[0] >= fail_at:
            raise OSError(28, "No space left on device")
        write(data)

    monkeypatch.setattr(trace, "_write", disk_fills)

    async def scenario() -> None:
        runner = NodeRunner(config(), SlowStore(), bn=None, trace=trace)
        loop_task = asyncio.create_task(runner.run(Started(0)))
        for _ in range(3):
            reply = await runner.ask(lambda rid: VCRequest(rid, VCRequestKind.ATTESTATION_DATA, {}), 5)
            assert reply is not None and reply.status == 200
        # Started, the three requests and their Persisted (the last one queued as its reply went out)
        await until(lambda: runner.steps == 7, what="the last request's Persisted to be stepped")
        assert (runner.trace_failures, runner.trace, runner.step_errors, runner.restarts) == (1, None, 0, 0)
        runner.stop()
        await asyncio.wait_for(loop_task, 5)
        await runner.close()

    run(scenario(), 20)
    steps = list(read_trace(tmp_path / "trace").steps())
    names = ["Started", "VCRequest", "Persisted", "VCRequest"]
    assert [type(s.event).__name__ for s in steps] == names[: {"event": 3, "actions": 4}[failing]]
    assert all(s.actions is not None for s in steps[:3])  # (the second request's, if there, has none)


def test_a_pool_partial_the_store_cannot_commit_is_never_broadcast_or_answered_200(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PersistPool must be durable before anything after it in its step: when the store cannot commit
    it, the step's broadcast and the VC's 200 never happen and the node restarts from its store (the VC
    gets 503 and asks again); once the store commits, both happen."""
    from covalidator.model.node.events import Broadcast, PersistPool

    def exit_step(state: Any, event: Any) -> tuple[Any, tuple[NodeAction, ...]]:
        if isinstance(event, VCRequest):
            return state, (
                PersistPool(()),
                Broadcast("partial"),  # type: ignore[arg-type]
                ReplyToVC(event.request_id, 200, {}),
            )
        return state, ()

    class Transport:
        def __init__(self) -> None:
            self.sent: list[Any] = []

        def broadcast(self, payload: Any) -> int:
            self.sent.append(payload)
            return 3

        def send(self, to: int, payload: Any) -> bool:
            return True

    monkeypatch.setattr(node_runner, "step", exit_step)
    store, transport = FailsFirstCommit("persist_pool"), Transport()

    async def scenario() -> None:
        runner = NodeRunner(config(), store, bn=None, transport=transport)
        loop_task = asyncio.create_task(runner.run(Started(0)))
        first = await runner.ask(lambda rid: VCRequest(rid, VCRequestKind.ATTESTATION_DATA, {}), 5)
        assert first is not None and first.status == 503
        assert (transport.sent, runner.restarts, runner.store_failures) == ([], 1, 1)
        again = await runner.ask(lambda rid: VCRequest(rid, VCRequestKind.ATTESTATION_DATA, {}), 5)
        assert again is not None and again.status == 200 and transport.sent == ["partial"]
        runner.stop()
        await asyncio.wait_for(loop_task, 5)
        await runner.close()

    run(scenario(), 20)
    assert store.commits["persist_pool"] == 2


def test_a_persist_retried_across_a_restart_never_reaches_the_rebuilt_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A decided value the store could not commit is retried; if the node restarts from its store
    meanwhile (a failed step), the retry's Persisted names only the duty, not the value, and the
    rebuilt state may be persisting another value for it: it is not stepped."""
    stepped: list[str] = []

    def step_persist(state: Any, event: Any) -> tuple[Any, tuple[NodeAction, ...]]:
        stepped.append(type(event).__name__)
        if isinstance(event, VCRequest) and event.params == "boom":
            raise ValueError("a model bug on this input")
        if isinstance(event, VCRequest):
            return state, (Persist(DUTY, {}, "0x00"),)
        return state, ()

    monkeypatch.setattr(node_runner, "step", step_persist)
    monkeypatch.setattr(node_runner, "PERSIST_RETRY_S", 0.2)
    store = FailsFirstCommit("persist")

    async def scenario() -> None:
        runner = NodeRunner(config(), store, bn=None, clock=lambda: 0)  # the duty's deadline is far
        loop_task = asyncio.create_task(runner.run(Started(0)))
        runner.submit(VCRequest(1, VCRequestKind.ATTESTATION_DATA, {}))
        await until(lambda: runner.store_failures == 1, what="the first commit to fail")
        runner.submit(VCRequest(2, VCRequestKind.ATTESTATION_DATA, "boom"))
        await until(lambda: "persisted" in [e for e, _ in store.log], what="the retry to commit")
        await asyncio.sleep(0.2)  # time for its Persisted to be stepped, were it submitted
        assert runner.restarts == 1
        runner.stop()
        await asyncio.wait_for(loop_task, 5)
        await runner.close()

    run(scenario(), 20)
    assert stepped == ["Started", "VCRequest", "VCRequest", "Started"]  # no Persisted after the restart


def test_a_restart_answers_503_only_to_what_the_old_state_took_in_and_survives_an_unreadable_store(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After a failed step the node restarts from its store: the request whose step failed gets 503 (the
    rebuilt state never saw it), while one still queued is the rebuilt state's to answer (200, not a 503
    for a request that is then stepped anyway). A store that cannot be read for the restart is read
    again until it can: the loop lives on, says store_unavailable meanwhile, and serves after."""
    stepped: list[str] = []

    def step(state: Any, event: Any) -> tuple[Any, tuple[NodeAction, ...]]:
        stepped.append(type(event).__name__)
        return scripted_step(state, event)

    class FailsFirstRead(SlowStore):
        def __init__(self) -> None:
            super().__init__()
            self.reads = 0

        def started(self, now_ms: int, pubkeys: Any, *, since_slot: int, slots_per_epoch: int) -> Started:
            self.reads += 1
            if self.reads == 1:
                raise sqlite3.OperationalError("disk I/O error")
            return super().started(now_ms, pubkeys, since_slot=since_slot, slots_per_epoch=slots_per_epoch)

    monkeypatch.setattr(node_runner, "step", step)
    monkeypatch.setattr(node_runner, "PERSIST_RETRY_S", 0.2)
    store = FailsFirstRead()

    async def scenario() -> None:
        runner = NodeRunner(config(), store, bn=None)
        asks = [
            asyncio.create_task(
                runner.ask(functools.partial(VCRequest, kind=VCRequestKind.ATTESTATION_DATA, params=p), 5)
            )
            for p in ("boom", {})
        ]
        await asyncio.sleep(0)  # both queued before the loop takes its first batch
        loop_task = asyncio.create_task(runner.run(Started(0)))
        await until(lambda: runner.store_error is not None, what="the restart's read to fail")
        assert not loop_task.done()
        bad, queued = await asyncio.gather(*asks)
        assert bad is not None and bad.status == 503 and "ask again" in bad.body["message"]
        assert queued is not None and queued.status == 200
        assert (store.reads, runner.restarts, runner.store_failures, runner.store_error) == (2, 1, 1, None)
        later = await runner.ask(lambda rid: VCRequest(rid, VCRequestKind.ATTESTATION_DATA, {}), 5)
        assert later is not None and later.status == 200
        runner.stop()
        await asyncio.wait_for(loop_task, 5)
        await runner.close()

    run(scenario(), 20)
    assert stepped[:4] == ["Started", "VCRequest", "Started", "VCRequest"]


def test_a_peer_keeping_its_queue_full_of_consensus_messages_neither_stops_the_vc_nor_other_peers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """QBFT messages go before the rest (runtime/step_queue.py), and the model judges them only when it
    steps them. A Byzantine co-operator refilling its whole queue budget with them as fast as the node
    steps them used to hold every VC request, timer and partial back for as long as it went on, and
    each honest peer's consensus messages behind its whole budget. Now the VC's request is answered
    and an honest peer's message is stepped within a batch or two of its arrival."""
    from covalidator.model.node.events import PeerMessage, PeerPayload
    from covalidator.model.qbft.messages import Envelope, Message, MsgType

    stepped: list[str] = []

    def slow_step(state: Any, event: Any) -> tuple[Any, tuple[NodeAction, ...]]:
        if isinstance(event, PeerMessage):
            stepped.append(f"peer{event.sender}")
            time.sleep(0.002)  # judging it (it is refused)
        return scripted_step(state, event)

    def prepare(sender: int, round: int) -> PeerPayload:
        return PeerPayload(qbft=Envelope(Message(MsgType.PREPARE, DUTY, sender, round, "0x")))

    monkeypatch.setattr(node_runner, "step", slow_step)

    async def scenario() -> tuple[float, int]:
        runner = NodeRunner(config(), SlowStore(), bn=None)
        runner.peer_queue_limit = 64
        loop_task = asyncio.create_task(runner.run(Started(0)))
        flooding = [True]

        async def flood() -> None:
            rounds = itertools.count(1)
            while flooding[0]:
                while runner._peer_queued[2] < runner.peer_queue_limit:
                    runner.on_peer(2, prepare(2, next(rounds)), 100)
                await asyncio.sleep(0.001)

        flooder = asyncio.create_task(flood())
        await until(lambda: len(stepped) > 200, what="the flood to be stepped")
        arrived = len(stepped)
        runner.on_peer(3, prepare(3, 1), 100)
        began = time.monotonic()
        reply = await runner.ask(lambda rid: VCRequest(rid, VCRequestKind.ATTESTATION_DATA, {}), 10)
        waited = time.monotonic() - began
        flooding[0] = False
        await flooder
        assert reply is not None and reply.status == 200, "the VC's request starved behind the flood"
        runner.stop()
        await asyncio.wait_for(loop_task, 5)
        await runner.close()
        return waited, stepped.index("peer3", arrived) - arrived

    waited, behind = run(scenario(), 30)
    print(
        f"under the flood: the VC's request answered in {waited:.2f} s; peer 3 stepped {behind} events after it arrived"
    )
    assert behind <= 2 * node_runner.STEP_BATCH


def test_a_commits_error_stands_after_a_restart_whose_read_failed_then_worked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The store could not commit (the node restarts), then could not be read for the restart, then
    could: the read's error is over, the commit's is not (the node stays not ready, store_unavailable),
    until a commit succeeds."""
    from covalidator.model.node.events import PersistPool

    def exit_step(state: Any, event: Any) -> tuple[Any, tuple[NodeAction, ...]]:
        if isinstance(event, VCRequest):
            return state, (PersistPool(()), ReplyToVC(event.request_id, 200, {}))
        return state, ()

    class AlsoFailsFirstRead(FailsFirstCommit):
        reads = 0

        def started(self, now_ms: int, pubkeys: Any, *, since_slot: int, slots_per_epoch: int) -> Started:
            self.reads += 1
            if self.reads == 1:
                raise OSError("I/O error")
            return super().started(now_ms, pubkeys, since_slot=since_slot, slots_per_epoch=slots_per_epoch)

    monkeypatch.setattr(node_runner, "step", exit_step)
    monkeypatch.setattr(node_runner, "PERSIST_RETRY_S", 0.1)
    store = AlsoFailsFirstRead("persist_pool")

    async def scenario() -> None:
        runner = NodeRunner(config(), store, bn=None)
        loop_task = asyncio.create_task(runner.run(Started(0)))
        first = await runner.ask(lambda rid: VCRequest(rid, VCRequestKind.ATTESTATION_DATA, {}), 5)
        assert first is not None and first.status == 503
        await until(lambda: runner.steps == 3, what="the Started of the restart, after its second read")
        # the commit's error, not cleared by the read
        assert store.reads == 2 and runner.store_error == "disk I/O error"
        again = await runner.ask(lambda rid: VCRequest(rid, VCRequestKind.ATTESTATION_DATA, {}), 5)
        assert again is not None and again.status == 200 and runner.store_error is None
        runner.stop()
        await asyncio.wait_for(loop_task, 5)
        await runner.close()

    run(scenario(), 20)
