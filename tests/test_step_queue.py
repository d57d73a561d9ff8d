"""The runner's queue (runtime/step_queue.py): Started first, consensus inputs before the rest and
round-robin between peers, the rest never starved, and events not stepped back in their places."""

from __future__ import annotations

import asyncio

from covalidator.model.duty import DutyId, DutyKind
from covalidator.model.node.events import (
    BeaconDataFetched,
    NodeEvent,
    PartialSignatures,
    PeerMessage,
    PeerPayload,
    Started,
    TimerFired,
    TimerKey,
)
from covalidator.model.qbft.messages import Envelope, Message, MsgType
from covalidator.runtime.step_queue import StepQueue

DUTY = DutyId(8, DutyKind.ATTESTER)


def qbft(sender: int, round: int) -> PeerMessage:
    return PeerMessage(
        sender, PeerPayload(qbft=Envelope(Message(MsgType.PREPARE, DUTY, sender, round, "0x")))
    )


def name(event: NodeEvent) -> str:
    if isinstance(event, PeerMessage) and event.payload.qbft is not None:
        return f"q{event.sender}.{event.payload.qbft.message.round}"
    return type(event).__name__


def take(queue: StepQueue, limit: int) -> list[str]:
    """A batch, every event of it stepped (as the runner says with put_back)."""
    items = asyncio.run(queue.batch(limit))
    queue.put_back([])
    return [name(item.event) for item in items]


def test_started_first_then_each_peer_and_this_node_in_turn_then_the_rest() -> None:
    queue = StepQueue(clock=lambda: 0.0)
    partials = PeerMessage(3, PeerPayload(partials=PartialSignatures(DUTY, ())))
    for event in (
        qbft(2, 1),
        qbft(2, 2),
        qbft(2, 3),
        qbft(3, 1),
        BeaconDataFetched(DUTY, {}),
        partials,
        Started(0),
    ):
        queue.put(event)
    assert queue.qsize() == 7
    assert take(queue, 16) == ["Started", "q2.1", "q3.1", "BeaconDataFetched", "q2.2", "q2.3", "PeerMessage"]
    assert queue.empty()


def test_a_flooding_peer_delays_another_by_one_message_per_turn() -> None:
    queue = StepQueue(clock=lambda: 0.0)
    for r in range(1, 101):
        queue.put(qbft(2, r))
    queue.put(qbft(3, 1))
    assert take(queue, 4) == ["q2.1", "q3.1", "q2.2", "q2.3"]
    assert queue.qsize() == 97


def test_the_rest_gets_a_place_first_in_a_batch_once_it_waited_starve_s_behind_urgent_events() -> None:
    now = [0.0]
    queue = StepQueue(clock=lambda: now[0], starve_s=0.5)
    timers = [TimerFired(TimerKey("deadline", DutyId(s, DutyKind.ATTESTER)), 0) for s in (1, 2)]
    for timer in timers:
        queue.put(timer)
    rounds = iter(range(1, 10_000))
    stepped: list[str] = []
    for _ in range(12):  # a peer keeps 16 or more urgent messages waiting; 0.1 s a batch
        while queue.qsize() < 20:
            queue.put(qbft(2, next(rounds)))
        batch = take(queue, 16)
        assert all(n.startswith("q2.") for n in batch[1:]) and len(batch) in (16, 17)
        stepped.append(batch[0])
        now[0] += 0.1
    # batches at 0.0 .. 0.4 s: only urgent; at 0.5 s and 0.6 s each timer goes first; then urgent again
    assert [n == "TimerFired" for n in stepped] == [False] * 5 + [True, True] + [False] * 5


def test_a_backlog_of_the_rest_alone_never_goes_before_urgent_events() -> None:
    """A slot's partials waiting long (each combining step 100-450 ms) is not starvation: the consensus
    inputs arriving meanwhile still go first, as long as batches step some of the rest in its place."""
    now = [0.0]
    queue = StepQueue(clock=lambda: now[0], starve_s=0.5)
    partials = PeerMessage(3, PeerPayload(partials=PartialSignatures(DUTY, ())))
    for _ in range(40):
        queue.put(partials)
    for batch in range(1, 8):  # a batch every 0.3 s, each with new consensus inputs
        queue.put(qbft(2, batch))
        queue.put(BeaconDataFetched(DUTY, {}))
        assert take(queue, 4) == [f"q2.{batch}", "BeaconDataFetched", "PeerMessage", "PeerMessage"]
        now[0] += 0.3


def test_the_rest_arriving_after_a_quiet_while_waits_behind_the_urgent_events_of_its_batch() -> None:
    now = [0.0]
    queue = StepQueue(clock=lambda: now[0], starve_s=0.5)
    for batch in range(1, 11):  # 1 s of urgent events only: none of the rest to step
        queue.put(qbft(2, batch))
        assert take(queue, 16) == [f"q2.{batch}"]
        now[0] += 0.1
    queue.put(qbft(2, 11))
    queue.put(TimerFired(TimerKey("deadline", DUTY), 0))
    assert take(queue, 16) == ["q2.11", "TimerFired"]


def test_the_rest_goes_first_once_batches_cut_short_before_it_kept_it_waiting_starve_s() -> None:
    """Batches that take the rest behind urgent events but end (STEP_BATCH_MS) before stepping it are
    no progress for it: after STARVE_S it goes first."""
    now = [0.0]
    queue = StepQueue(clock=lambda: now[0], starve_s=0.5)
    queue.put(TimerFired(TimerKey("deadline", DUTY), 0))
    firsts = []
    for batch in range(1, 8):
        for sender in (2, 3, 4):
            queue.put(qbft(sender, batch))
        items = asyncio.run(queue.batch(16))
        names = [name(i.event) for i in items]
        firsts.append(names[0])
        if names[-1] == "TimerFired":
            queue.put_back(items[-1:])  # the batch ran out of time before it
        else:
            queue.put_back([])
        now[0] += 0.1
    assert firsts == ["q2.1", "q2.2", "q2.3", "q2.4", "q2.5", "TimerFired", "q2.7"]


def test_events_not_stepped_go_back_to_the_front_of_their_lanes_in_order() -> None:
    queue = StepQueue(clock=lambda: 0.0)
    for event in (qbft(2, 1), qbft(2, 2), qbft(3, 1), qbft(3, 2), Started(0)):
        queue.put(event)
    items = asyncio.run(queue.batch(16))
    assert [name(i.event) for i in items] == ["Started", "q2.1", "q3.1", "q2.2", "q3.2"]
    queue.put(qbft(2, 3))
    queue.put_back(items[2:])  # the batch stepped Started and q2.1 only
    assert queue.qsize() == 4
    assert take(queue, 16) == ["q3.1", "q2.2", "q3.2", "q2.3"]


def test_a_batch_waits_for_an_event() -> None:
    async def scenario() -> list[str]:
        queue = StepQueue()
        waiting = asyncio.create_task(queue.batch(16))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        queue.put(Started(0))
        return [name(i.event) for i in await asyncio.wait_for(waiting, 2)]

    assert asyncio.run(scenario()) == ["Started"]
