"""The inputs and outputs of one QBFT instance (`qbft.step`): events in, actions out.

Decides the vocabulary between the QBFT model and whoever drives it (the node model, the simulator,
tests, trace replay); it holds no logic. All are frozen dataclasses that round-trip through
dataclasses-json.

Events:  InputValue (this node's own proposal, e.g. what its beacon node returned), Received (an
         envelope from a peer, already authenticated by the transport), TimerFired.
Actions: Broadcast (to every other co-validator), Send (to one), StartTimer (an absolute deadline),
         Decide (the decided value with its commit certificate: persist it before using it),
         Expired (the instance passed its deadline and forgot everything: drop it).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from dataclasses_json import DataClassJsonMixin

from covalidator.model.duty import DutyId
from covalidator.model.qbft.messages import Envelope, Message, Value


class TimerKind(IntEnum):
    ROUND = 1  # the end of `round`
    EXPIRY = 2  # the instance's deadline: prune it


@dataclass(frozen=True)
class InputValue(DataClassJsonMixin):
    instance: DutyId
    value: Value


@dataclass(frozen=True)
class Received(DataClassJsonMixin):
    envelope: Envelope


@dataclass(frozen=True)
class TimerFired(DataClassJsonMixin):
    instance: DutyId
    kind: TimerKind
    round: int
    at_ms: int


QbftEvent = InputValue | Received | TimerFired


@dataclass(frozen=True)
class Broadcast(DataClassJsonMixin):
    envelope: Envelope


@dataclass(frozen=True)
class Send(DataClassJsonMixin):
    to: int
    envelope: Envelope


@dataclass(frozen=True)
class StartTimer(DataClassJsonMixin):
    instance: DutyId
    kind: TimerKind
    round: int
    at_ms: int


@dataclass(frozen=True)
class Decide(DataClassJsonMixin):
    instance: DutyId
    round: int
    value: Value
    commits: tuple[Message, ...]


@dataclass(frozen=True)
class Expired(DataClassJsonMixin):
    instance: DutyId
    decided: bool


QbftAction = Broadcast | Send | StartTimer | Decide | Expired
