"""The state of one co-validator, the output of a step, and the small helpers every step module shares.

`NodeState` is a mutable value owned by `node.step`: step mutates it and returns it (copying a
state that holds thousands of validators' partials at every event would dominate the cost). Drivers
that need a snapshot (Hypothesis, the simulator's crash/restart) deep-copy it or rebuild it from the
durable part (`Started`). Nothing here reads a clock, a file or a random source.

Validator keys inside a duty record: the group pubkey, or "pubkey/subcommittee" for the sync
contribution duties a validator can hold once per subcommittee.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from covalidator.model.cluster.config import NodeConfig
from covalidator.model.duty import CONSENSUS_KINDS, DutiesKind, DutyId, DutyKind, VCRequestKind
from covalidator.model.eth.specs import spec
from covalidator.model.node.events import (
    Log,
    Metric,
    NodeAction,
    ReplyToVC,
    StartTimer,
    TimerKey,
    TimerPurpose,
)
from covalidator.model.node.phases import DutyRecord, Trigger, ValidatorDuty
from covalidator.model.node.pool_state import PoolEntry
from covalidator.model.node.signals import Signal
from covalidator.model.qbft.messages import Envelope
from covalidator.model.slashing.view import SlashingView


@dataclass
class HeldRequest:
    request_id: int
    kind: VCRequestKind
    params: Any
    duty: DutyId
    deadline_ms: int
    randao_shared: bool = False  # a block request's RANDAO partial went to the peers
    selections: list[tuple[DutyId, str]] | None = None  # a selections request's (duty, key) items
    selection_duties: frozenset[DutyId] = frozenset()  # the duties of `selections`
    selections_combined: int = 0  # how many of `selections`, from the first, have combined
    sign: Any = None  # a Remote Signing API request's target (node/signer.py `Target`)


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
    signing: dict[tuple[DutyId, str], set[str]] = field(default_factory=dict)  # own partials asked: roots
    next_epoch_timer: int = -1
    pool: dict[str, PoolEntry] = field(default_factory=dict)  # exits, registrations: signing root -> entry
    # group pubkey -> (ValidatorRegistrationV1 JSON, group signature): the lock's, or a newer combined one
    registrations: dict[str, tuple[dict[str, Any], str]] = field(default_factory=dict)
    # sender -> bytes of the value bodies its QBFT envelopes hold in duty buffers (before this node
    # joins a duty's consensus), over all duties: bounded by Limits.buffered_peer_bytes
    buffered_bytes: dict[int, int] = field(default_factory=dict)


class Out(list[NodeAction]):
    """The actions a step produces, in order, and the router of its internal signals: a step module
    that unlocks another's work (a combined RANDAO reveal starts the proposal) says so with `signal`,
    which the dispatcher (node/step.py) routes at once, in place, so the step modules never import
    each other back and the actions come out in the same order as direct calls would make them."""

    def __init__(self, route: Callable[[NodeState, Signal, Out], None]) -> None:
        super().__init__()
        self._route = route

    def signal(self, state: NodeState, signal: Signal) -> None:
        self._route(state, signal, self)


def error(code: int, message: str, failures: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A Beacon-API (and Remote Signing API) error body."""
    body: dict[str, Any] = {"code": code, "message": message}
    if failures is not None:
        body["failures"] = failures
    return body


def reply(out: Out, request_id: int, status: int, body: Any, version: str = "") -> None:
    out.append(ReplyToVC(request_id, status, body, version))


def log(out: Out, level: str, message: str, **fields: object) -> None:
    out.append(Log(level, message, tuple((k, str(v)) for k, v in fields.items())))


def metric(out: Out, name: str, value: float = 1.0, **labels: object) -> None:
    out.append(Metric(name, tuple((k, str(v)) for k, v in labels.items()), value))


def timer(
    out: Out,
    purpose: TimerPurpose,
    at_ms: int,
    duty: DutyId | None = None,
    round: int = 0,
    request_id: int = 0,
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
        timer(out, TimerPurpose.START, clock.duty_start_ms(duty), duty)
        timer(out, TimerPurpose.DEADLINE, clock.duty_deadline_ms(duty), duty)
        if duty.kind not in CONSENSUS_KINDS:
            rec.advance(Trigger.OPEN)  # no consensus: partials may flow at once
    return rec


def buffer_peer_message(state: NodeState, rec: DutyRecord, envelope: Envelope) -> bool:
    """Keep a peer's QBFT envelope for a duty whose consensus this node has not joined yet. Each sender
    has `buffered_peer_messages` places per duty (when they are full its oldest goes: the newest, a
    DECIDED say, tell more) and `buffered_peer_bytes` of value bodies over all duties (an envelope
    that would pass it is dropped): a flooding sender never crowds out the others' messages, and what
    one can make the node hold is bounded. False when an envelope was dropped."""
    sender, size = envelope.message.sender, len(envelope.body or b"")
    limits = state.config.limits
    mine = [i for i, e in enumerate(rec.buffered) if e.message.sender == sender]
    oldest = rec.buffered[mine[0]] if len(mine) >= limits.buffered_peer_messages else None
    held = state.buffered_bytes.get(sender, 0) - (len(oldest.body or b"") if oldest else 0)
    if held + size > limits.buffered_peer_bytes:
        return False
    if oldest is not None:
        del rec.buffered[mine[0]]
    rec.buffered.append(envelope)
    if held + size:
        state.buffered_bytes[sender] = held + size
    else:
        state.buffered_bytes.pop(sender, None)
    return oldest is None


def take_buffered(state: NodeState, rec: DutyRecord) -> list[Envelope]:
    """The duty's buffered peer envelopes, in arrival order, removed (their bodies off their senders'
    budgets): at the join, which steps them, and when the duty ends."""
    envelopes, rec.buffered = rec.buffered, []
    for envelope in envelopes:
        if envelope.body:
            sender = envelope.message.sender
            left = state.buffered_bytes[sender] - len(envelope.body)
            if left:
                state.buffered_bytes[sender] = left
            else:
                del state.buffered_bytes[sender]
    return envelopes


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


def too_far_ahead(state: NodeState, kind: DutyKind | None, slot: int) -> int | None:
    """The bound a VC's request for `slot` is past, if it is too far ahead of the clock to be held.
    Data is asked for at its slot (two slots allowed: the VC's clock may run ahead, and the node's
    `now_ms` is as fresh as its last timer); selection proofs, and anything a
    remote signer is asked (`kind` None: a VC may sign a RANDAO reveal or a proof early), for any duty
    the BN has announced, which reach the end of the next epoch. A request beyond would only sit in
    the bounded queue of held requests that the real VC needs."""
    clock = state.config.chain.clock
    early = kind in (None, DutyKind.PREPARE_AGGREGATOR, DutyKind.PREPARE_SYNC_CONTRIBUTION)
    ahead = 2 * clock.slots_per_epoch if early else 2
    return ahead if slot > clock.slot_at(state.now_ms) + ahead else None


def combined_randao(state: NodeState, slot: int) -> str | None:
    """The cluster's combined RANDAO reveal for the slot's proposal, once combined."""
    randao = state.duties.get(DutyId(slot, DutyKind.RANDAO))
    return next(iter(randao.combined.values()), None) if randao else None


def combined_sync_root(state: NodeState, slot: int) -> str | None:
    """The block root the cluster's sync committee messages signed in this slot (the contribution's):
    the root of a combined message (what M co-validators signed), else this node's VC's."""
    sync = state.duties.get(DutyId(slot, DutyKind.SYNC_MESSAGE))
    if sync is None:
        return None
    if sync.combined_roots:
        return min(sync.combined_roots.values())
    for _, vd in sorted(sync.validators.items()):
        if vd.own_message:
            return str(vd.own_message["beacon_block_root"])
    return None


def spec_module(state: NodeState, slot: int) -> Any:
    """The consensus specs' module of the fork at `slot` (containers for roots)."""
    return spec(state.config.chain.fork_name(slot), state.config.chain.schedule.preset)
