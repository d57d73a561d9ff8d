"""The main loop of one co-validator: await an input, step the model, execute its actions in order.

It contains no protocol decision. Events come from the VC API, the peer transport, the BN client and
timers; each is recorded in the trace, stepped through `model.node.step`, and the resulting actions
run in order:
  Persist       the store's one-transaction check-and-record, AWAITED before the next action runs
                (so a ReplyToVC later in the same step can never overtake it); its answer comes
                back as a `Persisted` event; PersistPool (partials over exits and registrations)
                likewise awaited, with no answer;
  ReplyToVC     resolves the HTTP handler waiting for that request id;
  Fetch*/SubmitToBN  BN calls in background tasks whose results come back as events;
  Broadcast/Send     the peer transport; StartTimer: a loop timer that feeds TimerFired;
  DutyOutcome   recorded durably; Log / Metric: the logger and the metrics sink;
  SignWithShare signer mode: signed with this node's share keys in a worker thread, earliest duty
                deadline first (runtime/sign_queue.py), back as
                `SharesSigned` (without share keys the node never asks).
Events wait in a StepQueue (runtime/step_queue.py: consensus inputs before partials, duties and timers,
fairly between peers, and the rest never starved).
`step` runs in a single worker thread (its BLS work would otherwise block the HTTP servers); only
that thread touches the node state, one event at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import heapq
import itertools
import logging
import random
import sqlite3
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, Protocol

from covalidator.model.cluster.config import NodeConfig
from covalidator.model.node import pool
from covalidator.model.node.events import (
    BeaconDataFailed,
    BNSubmitted,
    Broadcast,
    DutiesFailed,
    DutiesFetched,
    DutiesKind,
    DutyOutcome,
    FetchBeaconData,
    FetchDuties,
    FetchValidators,
    Log,
    Metric,
    NodeAction,
    NodeEvent,
    PassToBN,
    PeerMessage,
    PeerPayload,
    Persist,
    Persisted,
    PersistPool,
    PoolPartial,
    ReplyToVC,
    Send,
    SignRequest,
    SignWithShare,
    Started,
    StartTimer,
    SubmissionKind,
    SubmitToBN,
    Tick,
    TimerFired,
    TimerKey,
    ValidatorInfo,
    ValidatorsResolved,
    VCRequest,
    VCSubmission,
)
from covalidator.model.node.fetch import BeaconCall, assemble, calls
from covalidator.model.node.state import NodeState
from covalidator.model.node.step import step
from covalidator.runtime.bn_client import BNResponse, Duties, Json
from covalidator.runtime.share_keys import ShareSigner
from covalidator.runtime.sign_queue import SignQueue
from covalidator.runtime.step_queue import StepQueue

log = logging.getLogger("covalidator.node")

# What one peer may have waiting to be stepped: far above an honest peer's burst (a few messages per
# duty and slot), far below what fills memory.
PEER_QUEUE_LIMIT: Final = 2048
PEER_QUEUE_BYTES: Final = 64 * 2**20
PERSIST_RETRY_S: Final = 0.5
# Queued events stepped in one hop to the step thread (`_step_batch`): at most this many, and no more
# once the batch has taken STEP_BATCH_MS (the first event's actions wait for the batch's last step).
STEP_BATCH: Final = 16
STEP_BATCH_MS: Final = 10.0
TIMER_RECHECK_S: Final = 1.0  # how often a pending timer reads the wall clock again (see _start_timer)
STORE_FAULTS = (sqlite3.OperationalError, sqlite3.DatabaseError, OSError)  # disk full, I/O error, ...


def name_os_thread(name: str) -> None:
    """Give the calling thread `name` (15 bytes at most) in the OS, as `top -H` and /proc/<pid>/task
    show it (Python names its threads only for itself): the step thread's CPU can then be told from
    the event loop's. Linux only; elsewhere nothing happens."""
    with contextlib.suppress(OSError, AttributeError):
        # the process's own symbols hold libc's prctl (no library search: that spawns processes)
        ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME


def wall_ms() -> int:
    return int(time.time() * 1000)


class Transport(Protocol):
    def broadcast(self, payload: PeerPayload) -> int: ...
    def send(self, to: int, payload: PeerPayload) -> bool: ...


class MetricsSink(Protocol):
    def observe(self, metric: Metric) -> None: ...
    def outcome(self, outcome: DutyOutcome) -> None: ...


class _NullMetrics:
    def observe(self, metric: Metric) -> None:
        pass

    def outcome(self, outcome: DutyOutcome) -> None:
        pass


class PoolNotDurable(RuntimeError):
    """A PersistPool the store could not commit: nothing after it in its step may run."""


class InjectedFault(RuntimeError):
    """A step made to fail on purpose (COVALIDATOR_INJECT_STEP_FAULTS)."""


def _short(event: NodeEvent, limit: int = 600) -> str:
    text = repr(event)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def _runs_of_outcomes(actions: Sequence[NodeAction]) -> list[NodeAction | list[DutyOutcome]]:
    """The actions in order, each run of DutyOutcome as one list (one durable transaction). Metric and
    Log actions do not end a run: they follow it (the model notes each outcome with a metric, and a run
    split at each one recorded every outcome in its own transaction: 4,627 commits per node over two
    epochs at 1,000 validators). Any other action ends it, so no outcome moves past a Persist or a
    reply."""
    out: list[NodeAction | list[DutyOutcome]] = []
    run: list[DutyOutcome] | None = None
    held: list[NodeAction] = []  # the metrics and logs met inside the current run
    for action in actions:
        if isinstance(action, DutyOutcome):
            if run is None:
                run = []
                out.append(run)
            run.append(action)
        elif run is not None and isinstance(action, Metric | Log):
            held.append(action)
        else:
            out.extend(held)
            held, run = [], None
            out.append(action)
    out.extend(held)
    return out


class NodeStore(Protocol):
    """What the runner needs of the durable store (runtime/store.py's `Store`)."""

    def persist(self, action: Persist) -> Persisted: ...

    def record_outcomes(self, outcomes: Sequence[DutyOutcome]) -> None: ...

    def persist_pool(self, partials: Sequence[PoolPartial]) -> None: ...

    def started(
        self, now_ms: int, pubkeys: Sequence[str], *, since_slot: int, slots_per_epoch: int
    ) -> Started:
        """What the store holds, as the model's `Started` (a restart after a failed step)."""
        ...


class BeaconNodeClient(Protocol):
    """What the runner asks of its beacon nodes (runtime/bn_client.py's `BeaconClient`)."""

    async def resolve_validators(self, pubkeys: Sequence[str]) -> tuple[ValidatorInfo, ...]: ...

    async def attester_duties(self, epoch: int, indices: Sequence[int]) -> Duties: ...

    async def proposer_duties(self, epoch: int) -> Duties: ...

    async def sync_duties(self, epoch: int, indices: Sequence[int]) -> Duties: ...

    async def answer(self, call: BeaconCall) -> Json: ...

    async def submit(self, kind: SubmissionKind, body: Json, version: str = "") -> BNResponse: ...


class StepRecorder(Protocol):
    """The trace recorder (runtime/trace.py's `TraceRecorder`)."""

    def record_event(self, event: Any, *, now_ms: int | None = None) -> int: ...

    def record_actions(self, index: int, actions: Sequence[Any]) -> None: ...


class NodeRunner:
    def __init__(
        self,
        config: NodeConfig,
        store: NodeStore,
        bn: BeaconNodeClient,
        transport: Transport | None = None,
        trace: StepRecorder | None = None,
        metrics: MetricsSink | None = None,
        clock: Callable[[], int] = wall_ms,
        signer: ShareSigner | None = None,
    ) -> None:
        self.config = config
        self.signer = signer  # signer mode: this node's share keys
        self.state = NodeState(config)
        self.store = store
        self.bn = bn
        self.transport = transport
        self.trace = trace
        self.metrics = metrics or _NullMetrics()
        self.clock = clock
        self.queue = StepQueue()
        self._arrivals = itertools.count()
        self.replies: dict[int, asyncio.Future[ReplyToVC | PassToBN]] = {}
        self._next_request = 1
        self._timers: set[tuple[TimerKey, int]] = set()  # pending (key, wall-clock ms)
        self._due: list[tuple[int, int, TimerKey]] = []  # their heap: (ms, arrival, key)
        self._wake: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._step_thread = ThreadPoolExecutor(
            1, thread_name_prefix="covalidator-step", initializer=name_os_thread, initargs=("cov-step",)
        )
        self._io_thread = ThreadPoolExecutor(
            1, thread_name_prefix="covalidator-store", initializer=name_os_thread, initargs=("cov-store",)
        )
        self._sign_thread = ThreadPoolExecutor(
            1, thread_name_prefix="covalidator-sign", initializer=name_os_thread, initargs=("cov-sign",)
        )
        clock_rules = config.chain.clock
        self.sign_queue = (
            SignQueue(
                signer, lambda item: clock_rules.duty_deadline_ms(item.duty), self.submit, self._sign_thread
            )
            if signer is not None
            else None
        )
        self.steps = 0
        self.last_step_ms = 0.0
        self.stopped = asyncio.Event()
        self._stopping = False
        self.step_errors = 0
        self.restarts = 0  # the model rebuilt from the store after a failed step
        self.store_error: str | None = None  # the store's last commit failed (cleared when one succeeds)
        self.store_failures = 0
        self.fault_rate = 0.0  # the share of steps made to fail (fault-injection tests only)
        self._faults = random.Random(0)
        self.action_errors = 0
        self.trace_failures = 0  # the trace could not be written: tracing stopped (see _trace_failed)
        self._life = 0  # bumped by each restart from the store (see _retry_persist)
        self.on_commit: Callable[[float], None] | None = None  # seconds each Persist took to be durable
        self.peer_queue_limit = PEER_QUEUE_LIMIT
        self.peer_queue_bytes = PEER_QUEUE_BYTES
        self._peer_queued: Counter[int] = Counter()  # each peer's messages waiting to be stepped
        self._peer_bytes: Counter[int] = Counter()  # and their frames' bytes
        self.peer_queue_dropped: Counter[int] = Counter()

    # -- inputs -------------------------------------------------------------------------------------------

    def submit(self, event: NodeEvent) -> None:
        self.queue.put(event)

    def on_peer(self, sender: int, payload: PeerPayload, size: int = 0) -> None:
        """A peer's message (`size`: its frame's bytes), queued unless that peer has
        `peer_queue_limit` messages or `peer_queue_bytes` waiting already: a flooding (Byzantine)
        co-operator fills its own share of the queue, never the node's memory, and the events of the
        others (and the node's own) keep their place."""
        queued, held = self._peer_queued[sender], self._peer_bytes[sender]
        if queued >= self.peer_queue_limit or held + size > self.peer_queue_bytes:
            self.peer_queue_dropped[sender] += 1
            labels = (("cause", "queue_full"), ("peer", str(sender)))
            self.metrics.observe(Metric("peer_message_dropped", labels))
            return
        self._peer_queued[sender], self._peer_bytes[sender] = queued + 1, held + size
        self.queue.put(PeerMessage(sender, payload), sender, size)

    def new_request_id(self) -> int:
        rid = self._next_request
        self._next_request += 1
        return rid

    async def ask(
        self, make: Callable[[int], VCRequest | VCSubmission | SignRequest], timeout_s: float
    ) -> ReplyToVC | PassToBN | None:
        """Hand a VC request (Beacon API or Remote Signing API) to the model and wait for its ReplyToVC or PassToBN (None on timeout)."""
        rid = self.new_request_id()
        future: asyncio.Future[ReplyToVC | PassToBN] = asyncio.get_running_loop().create_future()
        self.replies[rid] = future
        self.submit(make(rid))
        try:
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            return None
        finally:
            self.replies.pop(rid, None)

    # -- the loop -----------------------------------------------------------------------------------------

    async def run(self, started: NodeEvent) -> None:
        """Step events until `stop()`: the step in progress finishes first, with every action of it
        executed (so a Persist it emitted is durable before the loop ends)."""
        loop = asyncio.get_running_loop()
        self.submit(started)
        try:
            while not self._stopping:
                items = await self.queue.batch(STEP_BATCH)
                if self._stopping:
                    break
                stepped, failed = await loop.run_in_executor(
                    self._step_thread, self._step_batch, [item.event for item in items]
                )
                done = len(stepped) + (failed is not None)
                self.queue.put_back(items[done:])  # not stepped (the batch ran long, or one failed)
                for item in items[:done]:
                    if item.peer:  # a peer's message that on_peer counted: its budget back
                        self._peer_queued[item.peer] -= 1
                        self._peer_bytes[item.peer] -= item.size
                not_durable = False
                for event, actions in stepped:
                    if not_durable:
                        break
                    if isinstance(actions, Exception):
                        # an event the trace cannot encode is never stepped (replay must see every
                        # event the model saw); the inputs bound their JSON so this stays a bug report
                        self.step_errors += 1
                        log.error(
                            "event not recordable, dropped: %s: %s", type(actions).__name__, _short(event)
                        )
                        continue
                    for batch in _runs_of_outcomes(actions):
                        try:
                            await (
                                self._record_outcomes(batch)
                                if isinstance(batch, list)
                                else self._execute(batch)
                            )
                        except PoolNotDurable:
                            # what follows in the step (a broadcast, the VC's 200) must not run before
                            # it is durable, and the model now holds the partials as if they were: the
                            # node restarts from its store, as after a failed step (the VC asks again);
                            # the batch's later steps' actions are dropped, as after a crash
                            not_durable = True
                            break
                        except Exception:
                            self.action_errors += 1
                            log.exception("executing %s failed", type(batch).__name__)
                if failed is not None:
                    # a model bug on this input. The step may have changed the state half-way, and
                    # none of its actions ran: the node restarts from its durable store, as after a
                    # crash (the trace holds the event without actions, then the new Started)
                    event, error = failed
                    self.step_errors += 1
                    log.error(
                        "the model (or its trace) raised on %s: %s",
                        type(event).__name__,
                        _short(event),
                        exc_info=(type(error), error, error.__traceback__)
                        if not isinstance(error, InjectedFault)  # a real bug: its traceback
                        else False,
                    )
                if failed is not None or not_durable:
                    restarted = await self._restart()
                    if restarted is None:
                        break  # stopped while the store could not be read
                    self.submit(restarted)
        finally:
            self.stopped.set()

    def _step_batch(
        self, events: list[NodeEvent]
    ) -> tuple[
        list[tuple[NodeEvent, tuple[NodeAction, ...] | Exception]], tuple[NodeEvent, Exception] | None
    ]:
        """On the step thread: record and step `events` in order, each recorded in the trace before it
        is stepped and its actions right after (so a trace reads event, actions, event, ...), while the
        batch has taken less than STEP_BATCH_MS. One hop to this thread for several queued events: a
        hop and the GIL hand-overs around it cost the node about as much CPU as the event loop's
        share of a small step. Returns (event, its actions) per event stepped, (event, the error) for one
        the trace could not encode (never stepped), and the event and error of a step that raised (the
        batch ends there); the events after the last returned were not stepped."""
        stepped: list[tuple[NodeEvent, tuple[NodeAction, ...] | Exception]] = []
        begin_batch = time.perf_counter()
        for event in events:
            if stepped and (time.perf_counter() - begin_batch) * 1000 > STEP_BATCH_MS:
                break
            try:
                index = self._trace_event(event)
            except Exception as error:
                stepped.append((event, error))
                continue
            begin = time.perf_counter()
            try:
                self.state, actions = self._step(event)
                self.last_step_ms = (time.perf_counter() - begin) * 1000
                self.steps += 1
                if index is not None:
                    self._trace_actions(index, actions)  # a model bug if they cannot be encoded
            except Exception as error:
                return stepped, (event, error)
            stepped.append((event, actions))
        return stepped, None

    def _trace_event(self, event: NodeEvent) -> int | None:
        """The event's step index in the trace, None if there is no trace (any more). An event it cannot
        encode raises (a bug report: the caller drops it); a write that fails stops the tracing."""
        if self.trace is None:
            return None
        try:
            return self.trace.record_event(event)
        except OSError as error:
            self._trace_failed(error)
            return None

    def _trace_actions(self, index: int, actions: tuple[NodeAction, ...]) -> None:
        if self.trace is None:
            return
        try:
            self.trace.record_actions(index, actions)
        except OSError as error:
            self._trace_failed(error)

    def _trace_failed(self, error: OSError) -> None:
        """The trace cannot be written (a full disk, an I/O error): tracing stops for the rest of the run
        and the duties go on, each event stepped and its actions run (the store guards what is signed,
        with its own fault handling). What was written replays; a line torn by the failure is the
        trace's last, which the reader tolerates."""
        self.trace_failures += 1
        self.trace = None
        log.error("the trace could not be written (%s): tracing stops; the node goes on without it", error)

    def _step(self, event: NodeEvent) -> tuple[NodeState, tuple[NodeAction, ...]]:
        result = step(self.state, event)
        if self.fault_rate and self._faults.random() < self.fault_rate:
            # fault injection (COVALIDATOR_INJECT_STEP_FAULTS; tests only): the step has changed the
            # state and its actions are lost, the worst point for a step to fail
            raise InjectedFault(f"injected after stepping {type(event).__name__}")
        return result

    async def _restart(self) -> NodeEvent | None:
        """The `Started` that rebuilds the model from the store after a failed step: its timers are
        cancelled (the new state asks for its own), and the VC requests the old state had taken in are
        answered 503 (the new state does not know them; the VC asks again); those still queued are the
        new state's. A store that cannot be read is read again every PERSIST_RETRY_S (the node is not
        ready meanwhile, store_unavailable) until it can; None if the node is stopped before."""
        self._cancel_timers()
        queued = {
            e.request_id for e in self.queue.events() if isinstance(e, VCRequest | VCSubmission | SignRequest)
        }
        for rid, future in list(self.replies.items()):
            if not future.done() and rid not in queued:
                message = "the node restarted its state after an internal error: ask again"
                future.set_result(ReplyToVC(rid, 503, {"code": 503, "message": message}))
        clock = self.config.chain.clock
        pubkeys = [v.group for v in self.config.validators]
        self.restarts += 1
        self._life += 1
        log.warning("restoring the node from its store (restart %d)", self.restarts)
        commit_error = self.store_error  # a read that works says nothing of commits
        while not self._stopping:
            now = self.clock()
            since = max(0, clock.slot_at(now) - 2 * clock.slots_per_epoch)
            try:
                started: NodeEvent = await self._in_io(
                    functools.partial(
                        self.store.started,
                        now,
                        pubkeys,
                        since_slot=since,
                        slots_per_epoch=clock.slots_per_epoch,
                    )
                )
            except STORE_FAULTS as error:
                self._store_failed(error)
                await asyncio.sleep(PERSIST_RETRY_S)
                continue
            self.store_error = commit_error  # the read's error is over; a commit's stands until one commits
            return started
        return None

    def stop(self) -> None:
        """Ask the loop to end after the step in progress (and its actions)."""
        self._stopping = True
        self.submit(Tick(self.clock()))  # wakes a loop waiting for input; never stepped

    async def close(self) -> None:
        self._cancel_timers()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        if self.sign_queue is not None:
            await self.sign_queue.close()
        self._step_thread.shutdown(wait=True)
        self._io_thread.shutdown(wait=True)
        self._sign_thread.shutdown(wait=True)

    async def pool_status(self) -> dict[str, Any]:
        """Exits and registrations as the model holds them (node/pool.py), read in the step thread
        (the only one that touches the state)."""

        def read() -> dict[str, Any]:
            return {
                "entries": pool.summary(self.state),
                "registrations": pool.registrations_summary(self.state),
            }

        return await asyncio.get_running_loop().run_in_executor(self._step_thread, read)

    def _spawn(self, work: Awaitable[NodeEvent | None]) -> None:
        async def wrapper() -> None:
            event = await work
            if event is not None:
                self.submit(event)

        task = asyncio.ensure_future(wrapper())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _store_failed(self, error: BaseException) -> None:
        self.store_failures += 1
        if self.store_error is None:
            log.error("the store failed (%s): nothing that needs it is served or signed", error)
        self.store_error = str(error) or type(error).__name__
        self.metrics.observe(Metric("store_commit_failed", (("error", type(error).__name__),)))

    def _store_ok(self) -> None:
        if self.store_error is not None:
            log.warning("the store commits again")
        self.store_error = None

    async def _retry_persist(self, action: Persist) -> NodeEvent | None:
        """A Persist the store could not commit (disk full, I/O error), tried again every
        PERSIST_RETRY_S until it commits or its duty's deadline passes (then it ends unserved)."""
        deadline = self.config.chain.clock.duty_deadline_ms(action.duty)
        life = self._life
        while self.clock() < deadline:
            await asyncio.sleep(PERSIST_RETRY_S)
            try:
                persisted: Persisted = await self._in_io(self.store.persist, action)
            except STORE_FAULTS as error:
                self._store_failed(error)
                continue
            self._store_ok()
            if self._life != life:
                # the state that asked was rebuilt from the store since (a restart): its Persisted
                # carries no value, and the new state may be persisting another one for this duty
                log.warning("%s committed after a restart: its Persisted is not stepped", action.duty)
                return None
            return persisted
        log.error("gave up persisting %s: the store did not commit before its deadline", action.duty)
        return None

    async def _in_io(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._io_thread, fn, *args)

    async def _execute(self, action: NodeAction) -> None:
        match action:
            case Persist():
                begin = time.perf_counter()
                try:
                    persisted = await self._in_io(self.store.persist, action)  # durable before anything else
                except STORE_FAULTS as error:
                    # nothing recorded: the duty stays PERSISTING (never served), retried until it commits
                    self._store_failed(error)
                    self._spawn(self._retry_persist(action))
                    return
                self._store_ok()
                if self.on_commit is not None:
                    self.on_commit(time.perf_counter() - begin)
                self.submit(persisted)
            case PersistPool(partials=partials):
                try:
                    await self._in_io(self.store.persist_pool, partials)  # durable before anything else
                except STORE_FAULTS as error:
                    self._store_failed(error)
                    raise PoolNotDurable(str(error)) from error
                self._store_ok()
            case ReplyToVC(request_id=rid) | PassToBN(request_id=rid):
                future = self.replies.get(rid)
                if future is not None and not future.done():
                    future.set_result(action)
            case SignWithShare(items=items):
                if self.sign_queue is not None:
                    self.sign_queue.add(items)  # earliest duty deadline first (runtime/sign_queue.py)
                else:
                    log.error("the model asked to sign with share keys this node does not hold")
            case Broadcast(payload=payload):
                if self.transport is not None:
                    self.transport.broadcast(payload)
            case Send(to=to, payload=payload):
                if self.transport is not None:
                    self.transport.send(to, payload)
            case StartTimer(key=key, at_ms=at_ms):
                self._start_timer(key, at_ms)
            case FetchValidators(pubkeys=pubkeys):
                self._spawn(self._fetch_validators(pubkeys))
            case FetchDuties():
                self._spawn(self._fetch_duties(action))
            case FetchBeaconData():
                self._spawn(self._fetch_data(action))
            case SubmitToBN():
                self._spawn(self._submit(action))
            case DutyOutcome():
                await self._record_outcomes([action])
            case Log(level=level, message=message, fields=fields):
                log.log(
                    logging.getLevelName(level.upper()) if level != "warn" else logging.WARNING,
                    message,
                    extra={"fields": dict(fields)},
                )
            case Metric():
                self.metrics.observe(action)

    async def _record_outcomes(self, outcomes: list[DutyOutcome]) -> None:
        """Consecutive outcomes of a step in one durable transaction (a duty's end emits one per
        validator: 125 a slot at 1,000 validators, each its own fsync and thread hop before)."""
        await self._in_io(self.store.record_outcomes, outcomes)
        for outcome in outcomes:
            self.metrics.outcome(outcome)
            if not outcome.ok:
                log.warning(
                    "duty failed",
                    extra={
                        "fields": {
                            "duty": str(outcome.duty),
                            "validator": outcome.pubkey,
                            "reason": outcome.reason,
                            "missing_peers": ",".join(map(str, outcome.missing_peers)),
                        }
                    },
                )

    def _start_timer(self, key: TimerKey, at_ms: int) -> None:
        """Fire at the wall-clock time `at_ms`. The loop sleeps on the monotonic clock, which stops while
        the machine is paused (a VM stalled for seconds) and is not stepped by NTP, so the wall clock is
        read again at least every TIMER_RECHECK_S: after a jump a timer fires at most that late, not late
        by the whole jump (a 9 s stall made every duty timer armed before it fire 9 s late, failing the
        aggregations and attestations of the next 9 slots). Pending timers wait in one heap behind one
        loop wake-up (`_wake`), not one re-armed callback each: ~150 pending timers at 1,000 validators
        made ~5,000 loop callbacks per node per epoch."""
        if (key, at_ms) in self._timers:
            return
        self._timers.add((key, at_ms))
        heapq.heappush(self._due, (at_ms, next(self._arrivals), key))
        self._arm_timers()

    def _arm_timers(self) -> None:
        """Wake at the earliest pending timer's time, or TIMER_RECHECK_S from now if that is sooner."""
        if not self._due:
            return
        loop = asyncio.get_running_loop()
        delay = min(max(0.0, (self._due[0][0] - self.clock()) / 1000), TIMER_RECHECK_S)
        when = loop.time() + delay
        if self._wake is not None:
            if self._wake.when() <= when:
                return  # an earlier wake-up is armed: it re-arms for this one
            self._wake.cancel()
        self._wake = loop.call_at(when, self._fire_timers)

    def _fire_timers(self) -> None:
        self._wake = None
        now = self.clock()
        while self._due and self._due[0][0] <= now:
            at_ms, _, key = heapq.heappop(self._due)
            self._timers.discard((key, at_ms))
            self.submit(TimerFired(key, now))
        self._arm_timers()

    def _cancel_timers(self) -> None:
        if self._wake is not None:
            self._wake.cancel()
            self._wake = None
        self._timers.clear()
        self._due.clear()

    # -- BN calls (results come back as events) -----------------------------------------------------------

    async def _fetch_validators(self, pubkeys: tuple[str, ...]) -> NodeEvent | None:
        delay = 1.0
        while True:
            try:
                return ValidatorsResolved(await self.bn.resolve_validators(pubkeys))
            except Exception as error:
                log.warning("could not resolve validators", extra={"fields": {"error": str(error)}})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 12.0)

    async def _fetch_duties(self, action: FetchDuties) -> NodeEvent:
        try:
            if action.kind is DutiesKind.ATTESTER:
                duties = await self.bn.attester_duties(action.epoch, action.indices)
            elif action.kind is DutiesKind.PROPOSER:
                duties = await self.bn.proposer_duties(action.epoch)
            else:
                duties = await self.bn.sync_duties(action.epoch, action.indices)
        except Exception as error:
            return DutiesFailed(action.kind, action.epoch, str(error))
        return DutiesFetched(action.kind, action.epoch, tuple(duties.duties), duties.dependent_root)

    async def _fetch_data(self, action: FetchBeaconData) -> NodeEvent:
        """Ask the BN what the request needs (node/fetch.py makes the calls and reads the answers, as for
        the simulator's chain); any failed call fails the fetch (the model asks again)."""
        try:
            answers = await asyncio.gather(*(self.bn.answer(call) for call in calls(action.request)))
        except Exception as error:
            return BeaconDataFailed(action.duty, str(error))
        event: NodeEvent = assemble(action.duty, action.request, list(answers))
        return event

    async def _submit(self, action: SubmitToBN) -> NodeEvent:
        try:
            await self.bn.submit(action.kind, action.body, action.version)
        except Exception as error:
            return BNSubmitted(action.duty, action.pubkeys, False, str(error))
        return BNSubmitted(action.duty, action.pubkeys, True)
