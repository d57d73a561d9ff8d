"""Building QBFT events for one instance by hand: the instance tests feed these to `step`.

Cluster N = 4 (F = 1, Q = 3), duty attester@100: the leader of round r is ((100 + 1 + r) mod 4) + 1,
so rounds 1, 2, 3, 4 are led by nodes 3, 4, 1, 2. Values whose body starts with b"valid" are valid.
"""

from __future__ import annotations

from collections.abc import Iterable

from covalidator.model.duty import DutyId, DutyKind
from covalidator.model.qbft import instance as qbft
from covalidator.model.qbft.events import (
    Broadcast,
    QbftAction,
    QbftEvent,
    Received,
    Send,
    TimerFired,
    TimerKind,
)
from covalidator.model.qbft.instance import InstanceConfig, InstanceState
from covalidator.model.qbft.messages import Envelope, Message, MsgType, Value, make_value

DUTY = DutyId(100, DutyKind.ATTESTER)
N = 4
LEADER = {1: 3, 2: 4, 3: 1, 4: 2}
V = make_value(b"valid: v")
W = make_value(b"valid: w")
BAD = make_value(b"bad value")


def is_valid(value: Value) -> bool:
    return value.body.startswith(b"valid")


def config(i: int, n: int = N) -> InstanceConfig:
    return InstanceConfig(DUTY, n, i, start_ms=0, expiry_ms=20_000)


def fresh(i: int, n: int = N) -> InstanceState:
    return qbft.init(config(i, n))[0]


def feed(state: InstanceState, *events: QbftEvent) -> tuple[InstanceState, list[QbftAction]]:
    actions: list[QbftAction] = []
    for event in events:
        state, out = qbft.step(state, event, is_valid)
        actions.extend(out)
    return state, actions


def sent(actions: Iterable[QbftAction], kind: MsgType) -> list[Envelope]:
    return [
        a.envelope for a in actions if isinstance(a, Broadcast | Send) and a.envelope.message.type == kind
    ]


def msg(kind: MsgType, sender: int, round: int, value: Value | None = None) -> Message:
    return Message(kind, DUTY, sender, round, value.hash if value else "")


def pre_prepare(
    round: int, value: Value, justification: tuple[Message, ...] = (), sender: int | None = None
) -> Received:
    m = msg(MsgType.PRE_PREPARE, LEADER[round] if sender is None else sender, round, value)
    return Received(Envelope(m, value.body, justification))


def prepare(sender: int, round: int, value: Value) -> Received:
    return Received(Envelope(msg(MsgType.PREPARE, sender, round, value)))


def commit(sender: int, round: int, value: Value) -> Received:
    return Received(Envelope(msg(MsgType.COMMIT, sender, round, value)))


def rc_message(sender: int, round: int, prepared: tuple[int, Value] | None = None) -> Message:
    pr, ph = (prepared[0], prepared[1].hash) if prepared else (0, "")
    return Message(MsgType.ROUND_CHANGE, DUTY, sender, round, "", pr, ph)


def round_change(
    sender: int, round: int, prepared: tuple[int, Value] | None = None, prepares: tuple[Message, ...] = ()
) -> Received:
    body = prepared[1].body if prepared else None
    return Received(Envelope(rc_message(sender, round, prepared), body, prepares))


def prepare_certificate(round: int, value: Value, senders: Iterable[int] = (1, 2, 3)) -> tuple[Message, ...]:
    return tuple(msg(MsgType.PREPARE, s, round, value) for s in senders)


def timeout(round: int) -> TimerFired:
    return TimerFired(DUTY, TimerKind.ROUND, round, round * 1000)
