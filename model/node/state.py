"""The state of one co-validator, and the small helpers every part of the node model shares.

`NodeState` is a mutable value owned by `node.step`: step mutates it and returns it (copying a
state that holds thousands of validators' partials at every event would dominate the cost). Drivers
that need a snapshot (Hypothesis, the simulator's crash/restart) deep-copy it or rebuild it from the
durable part (`Started`). Nothing here reads a clock, a file or a random source.

Validator keys inside a duty record: the group pubkey, or "pubkey/subcommittee" for the sync
contribution duties a validator can hold once per subcommittee.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from covalidator.model.cluster.config import NodeConfig
from covalidator.model.duty import DutyId, DutyKind
from covalidator.model.node.events import (
    DutiesKind,
    Log,
    Metric,
    NodeAction,
    StartTimer,
    TimerKey,
    VCRequestKind,
)
from covalidator.model.node.phases import CONSENSUS_KINDS, DutyRecord, Phase, Trigger, ValidatorDuty
from covalidator.model.slashing.view import SlashingView


@dataclass
class HeldRequest:
    request_id: int
    kind: VCRequestKind
    params: Any
    duty: DutyId
    deadline_ms: int
    state: dict[str, Any] = field(default_factory=dict)


@dataclass
class NodeState:
    config: NodeConfig
    now_ms: int = 0
    started: bool = False
    started_ms: int = 0
    indices: dict[str, int] = field(default_factory=dict)  # group pubkey -> validator index
    by_index: dict[int, str] = field(default_factory=dict)
    duties: dict[DutyId, DutyRecord] = field(default_factory=dict)
    fetched: dict[tuple[DutiesKind, int], str] = field(default_factory=dict)  # -> dependent root
    sync_members: dict[int, dict[str, Any]] = field(default_factory=dict)  # period -> pubkey -> SyncDuty
    slashing: SlashingView = field(default_factory=SlashingView)
    requests: dict[int, HeldRequest] = field(default_factory=dict)
    finished: set[tuple[DutyId, str]] = field(default_factory=set)
    next_epoch_timer: int = -1


Out = list[NodeAction]


def log(out: Out, level: str, message: str, **fields: object) -> None:
    out.append(Log(level, message, tuple((k, str(v)) for k, v in fields.items())))


def metric(out: Out, name: str, value: float = 1.0, **labels: object) -> None:
    out.append(Metric(name, tuple((k, str(v)) for k, v in labels.items()), value))


def timer(
    out: Out, purpose: str, at_ms: int, duty: DutyId | None = None, round: int = 0, request_id: int = 0
) -> None:
    out.append(StartTimer(TimerKey(purpose, duty, round, request_id), at_ms))


def pubkey_of(key: str) -> str:
    """The validator's group pubkey of a duty-record key ("pubkey" or "pubkey/subcommittee")."""
    return key.split("/", 1)[0]


def record(state: NodeState, duty: DutyId, out: Out) -> DutyRecord:
    """The duty's record, created (with its start and deadline timers) when new."""
    rec = state.duties.get(duty)
    if rec is None:
        rec = state.duties[duty] = DutyRecord(duty)
        clock = state.config.chain.clock
        timer(out, "start", clock.duty_start_ms(duty), duty)
        timer(out, "deadline", clock.duty_deadline_ms(duty), duty)
        if duty.kind not in CONSENSUS_KINDS:
            rec.advance(Trigger.OPEN)  # no consensus: partials may flow at once
    return rec


def validator(rec: DutyRecord, key: str, info: Any = None) -> ValidatorDuty:
    vd = rec.validators.get(key)
    if vd is None:
        vd = rec.validators[key] = ValidatorDuty(pubkey_of(key), info)
    elif info is not None:
        vd.info = info
    return vd


def schedule(rec: DutyRecord, key: str, info: Any, out: Out, known: bool = False) -> ValidatorDuty:
    """`validator` for a duty this node learns it has (its BN's duties, a sync membership, a
    selection): counted once, as the `duty_scheduled` metric (the operator's duties expected), unless
    it was `known` already."""
    assert info is not None
    vd = rec.validators.get(key)
    if not known and (vd is None or vd.info is None):
        metric(out, "duty_scheduled", kind=rec.id.kind.name.lower())
    return validator(rec, key, info)


def on_duty(rec: DutyRecord) -> dict[str, ValidatorDuty]:
    """The validators this node knows a duty of in `rec` (from its BN's duties, a selection, a sync
    membership). Others may have entries (peers' partials arrive first, a decided value is restored
    before the duties are fetched again): they join no consensus and get no outcome until known."""
    return {key: vd for key, vd in rec.validators.items() if vd.info is not None}


def in_window(state: NodeState, slot: int) -> bool:
    """Slots a peer may talk about: from two slots ago to two epochs ahead (bounded memory)."""
    now_slot = state.config.chain.clock.slot_at(state.now_ms)
    return now_slot - 2 <= slot <= now_slot + 2 * state.config.chain.clock.slots_per_epoch


def is_open(rec: DutyRecord) -> bool:
    return rec.phase is not Phase.DONE


KIND_OF_DUTIES = {
    DutiesKind.ATTESTER: DutyKind.ATTESTER,
    DutiesKind.PROPOSER: DutyKind.PROPOSER,
    DutiesKind.SYNC: DutyKind.SYNC_MESSAGE,
}
