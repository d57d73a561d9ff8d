"""One co-validator, every duty from schedule to submission: `state, actions = step(state, event)`.

The runtime, the cluster simulator, the Hypothesis machines and trace replay all drive this one
function. It reads no clock and does no I/O: time comes in events, and everything it wants done
comes out as actions, executed in order (a `Persist` completes before the next action runs).

The pipeline of a duty (phases and triggers: `duty_state.TRANSITIONS`):
1. Duties. At each epoch boundary (and after a restart) fetch duties for this epoch and the next;
   keep the cluster validators'. A changed dependent root replaces duties not yet started.
2. Schedule. Each duty record gets a start timer (`clock.START_FRACTION`) and a deadline timer.
3. Consensus. ONE QBFT instance per (slot, kind) decides every cluster validator's data for it (a
   map pubkey -> Beacon data). Every node asks its BN and offers that as its input; the leader's is
   proposed. The validity predicate checks the data is well formed for the duties (`beacon_data`) and
   not slashable against this node's slashing view (`slashing_view`).
4. Ordering (the condition of the Consensys DV-safety proof): a node joins the consensus of a
   slashable duty (attester, proposer) only when every earlier duty of the same kind of each of its
   validators is finished here: decided and persisted, or ended at its deadline. Until then the duty
   WAITS (peers' messages are buffered, bounded). A duty still waiting at its own deadline ends with
   `out_of_order` for its validators: it is skipped, never signed out of order.
5. Decided. `Persist` (decided value + slashing records) is emitted; nothing is served until the
   store answers `Persisted` (validators whose records the store refused end `slashing_refused`).
   Then held VC requests are answered, and later ones from the cache (`node_vc`).
6-7. Partial signatures from the VC and from peers are checked and combined (`node_partials`); the
   combined signature is verified against the group pubkey and submitted once.
8. Every (duty, validator) ends in exactly one DutyOutcome: success or a named reason (`outcomes`).

Duty kinds: attester; proposer (the VC's block request carries its RANDAO partial; the RANDAO duty
combines M of them, then the proposal is decided); sync committee message (no consensus: partials are
grouped by signing root); aggregator and sync contribution (the DV selection endpoints combine
selection proofs first; a combined proof that selects the validator creates the duty).
"""

from __future__ import annotations

import json
from typing import Any

from covalidator.model.clock import SlotClock
from covalidator.model.duty import DutyId, DutyKind
from covalidator.model.eth.beacon_data import (
    DataProblem,
    block_of,
    check_aggregate,
    check_attestation_data,
    check_block,
    check_contribution,
    fork_at_least,
    root_of,
    uint,
)
from covalidator.model.eth.signing import Kind
from covalidator.model.node.events import (
    BeaconDataFailed,
    BeaconDataFetched,
    BNSubmitted,
    Broadcast,
    DutiesFailed,
    DutiesFetched,
    DutiesKind,
    FetchBeaconData,
    FetchDuties,
    FetchValidators,
    HeadChanged,
    NodeAction,
    NodeEvent,
    PeerMessage,
    PeerPayload,
    Persist,
    Persisted,
    Send,
    SlashingRecord,
    Started,
    Tick,
    TimerFired,
    ValidatorsResolved,
    VCRequest,
    VCSubmission,
)
from covalidator.model.node.parsig import finish, on_peer_partials, on_submitted, try_combine
from covalidator.model.node.phases import (
    CONSENSUS_KINDS,
    SLASHABLE_KINDS,
    UNDECIDED,
    DutyRecord,
    Phase,
    Trigger,
)
from covalidator.model.node.state import (
    KIND_OF_DUTIES,
    NodeState,
    Out,
    in_window,
    log,
    metric,
    on_duty,
    pubkey_of,
    record,
    schedule,
    timer,
    validator,
)
from covalidator.model.node.vc import (
    answer_held,
    on_request_deadline,
    on_vc_request,
    on_vc_submission,
    start_block_request,
)
from covalidator.model.outcomes import Reason
from covalidator.model.qbft import instance as qbft
from covalidator.model.qbft.events import Broadcast as QbftBroadcast
from covalidator.model.qbft.events import Decide, Expired, InputValue, Received, TimerKind
from covalidator.model.qbft.events import Send as QbftSend
from covalidator.model.qbft.events import StartTimer as QbftStartTimer
from covalidator.model.qbft.events import TimerFired as QbftTimerFired
from covalidator.model.qbft.messages import Value, canonical_json, make_value
from covalidator.model.slashing.rules import SignedAttestation, SignedBlock


def step(state: NodeState, event: NodeEvent) -> tuple[NodeState, tuple[NodeAction, ...]]:
    """Apply one event to the node; return it (mutated) and the actions to execute, in order."""
    out: Out = []
    if isinstance(event, Started):
        _on_started(state, event, out)
        return state, tuple(out)
    if not state.started:
        log(out, "warn", "event before Started dropped", event=type(event).__name__)
        return state, tuple(out)
    if isinstance(event, (Tick, TimerFired)):
        state.now_ms = max(state.now_ms, event.now_ms)
    match event:
        case Tick():
            pass
        case TimerFired(key=key):
            _on_timer(state, key.purpose, key.duty, key.round, key.request_id, out)
        case ValidatorsResolved():
            _on_validators(state, event, out)
        case DutiesFetched():
            _on_duties(state, event, out)
        case DutiesFailed():
            metric(out, "bn_errors", what="duties", kind=event.kind.value)
            log(
                out,
                "warn",
                "could not fetch duties",
                kind=event.kind.value,
                epoch=event.epoch,
                error=event.error,
            )
        case BeaconDataFetched():
            _on_beacon_data(state, event, out)
        case BeaconDataFailed():
            rec = state.duties.get(event.duty)
            if rec is not None:
                rec.extra["fetch_error"] = event.error
                _refetch_later(state, rec, out)
            metric(out, "bn_errors", what="beacon_data", kind=event.duty.kind.name.lower())
        case PeerMessage():
            _on_peer(state, event, out)
        case VCRequest():
            on_vc_request(state, event, out)
        case VCSubmission():
            on_vc_submission(state, event, out)
            _wake_waiting(state, out)  # a sync contribution waits for the slot's sync messages
        case Persisted():
            _on_persisted(state, event, out)
        case BNSubmitted():
            on_submitted(state, event.duty, event.pubkeys, event.ok, event.error, out)
        case HeadChanged():
            _on_head(state, event, out)
    return state, tuple(out)


# ---- start, validators, duties -----------------------------------------------------------------------


def _on_started(state: NodeState, event: Started, out: Out) -> None:
    """A (re)start: everything in memory is gone but what the store kept (in `event`)."""
    config = state.config
    fresh = NodeState(config)
    state.__dict__.update(fresh.__dict__)
    state.now_ms = state.started_ms = event.now_ms
    state.started = True
    for r in event.slashing:
        if r.slot is not None:
            state.slashing.record_block(r.pubkey, SignedBlock(r.slot, _root_bytes(r.signing_root)))
        elif r.source_epoch is not None and r.target_epoch is not None:
            state.slashing.record_attestation(
                r.pubkey, SignedAttestation(r.source_epoch, r.target_epoch, _root_bytes(r.signing_root))
            )
    state.finished = set(event.finished)
    for decided in event.decided:
        if not in_window(state, decided.duty.slot) or decided.duty.kind not in CONSENSUS_KINDS:
            continue
        rec = record(state, decided.duty, out)
        rec.advance(Trigger.RESTORED)
        rec.decided, rec.decided_hash = decided.value, decided.value_hash
        if not isinstance(decided.value, dict):
            continue
        for key, data in decided.value.items():
            if pubkey_of(key) not in config.by_group:
                continue
            vd = validator(rec, key)
            vd.data = data
            _prepare_signing(state, rec, key, out)
            if rec.id.kind in SLASHABLE_KINDS and not _is_recorded(state, rec, key):
                # the store refused it (or never committed its record): it is never served
                vd.data = None
                rec.roots.pop(key, None)
    out.append(FetchValidators(tuple(v.group for v in config.validators)))
    _schedule_epoch_timer(state, out)


def _is_recorded(state: NodeState, rec: DutyRecord, key: str) -> bool:
    """The validator's decided message is in the slashing DB as it is (accepted when persisted)."""
    vd = rec.validators[key]
    root = rec.roots.get(key)
    if vd.data is None or root is None:
        return False
    if rec.id.kind is DutyKind.ATTESTER:
        att = SignedAttestation(
            uint(vd.data, "source", "epoch"), uint(vd.data, "target", "epoch"), bytes.fromhex(root[2:])
        )
        verdict = state.slashing.check_attestation(vd.pubkey, att)
    else:
        verdict = state.slashing.check_block(vd.pubkey, SignedBlock(rec.id.slot, bytes.fromhex(root[2:])))
    return verdict.safe and verdict.repeat


def _root_bytes(text: str | None) -> bytes | None:
    return None if text is None else bytes.fromhex(text[2:])


def _schedule_epoch_timer(state: NodeState, out: Out) -> None:
    clock = state.config.chain.clock
    if state.now_ms < clock.genesis_time_ms and state.next_epoch_timer < 0:
        # before genesis a BN may refuse duties (Lodestar: "more than one ahead"): ask again at genesis
        state.next_epoch_timer = 0
        timer(out, "epoch", clock.genesis_time_ms)
        return
    next_epoch = clock.epoch_at(state.now_ms) + 1
    if next_epoch > state.next_epoch_timer:
        state.next_epoch_timer = next_epoch
        timer(out, "epoch", clock.slot_start_ms(clock.first_slot(next_epoch)))


def _on_validators(state: NodeState, event: ValidatorsResolved, out: Out) -> None:
    for info in event.validators:
        if info.pubkey in state.config.by_group:
            state.indices[info.pubkey] = info.index
            state.by_index[info.index] = info.pubkey
    epoch = state.config.chain.clock.epoch_at(state.now_ms)
    _fetch_duties(state, epoch, out, force=True)
    _fetch_duties(state, epoch + 1, out, force=True)


def _fetch_duties(state: NodeState, epoch: int, out: Out, force: bool = False) -> None:
    indices = tuple(sorted(state.indices.values()))
    if not indices:
        return
    kinds = [DutiesKind.ATTESTER, DutiesKind.PROPOSER]
    if fork_at_least(state.config.chain, state.config.chain.clock.first_slot(epoch), "altair"):
        kinds.append(DutiesKind.SYNC)
    for kind in kinds:
        if force or (kind, epoch) not in state.fetched:
            out.append(FetchDuties(kind, epoch, indices))


def _on_duties(state: NodeState, event: DutiesFetched, out: Out) -> None:
    config = state.config
    clock = config.chain.clock
    if event.kind is not DutiesKind.SYNC and not _duties_in_epoch(event, clock):
        # not this epoch's duties (Lodestar 1.5.1 answers next-epoch proposer duties with the current
        # epoch's slots): left unfetched, so the epoch timer and head events ask again
        log(out, "warn", "duties outside their epoch ignored", kind=event.kind.value, epoch=event.epoch)
        return
    previous = state.fetched.get((event.kind, event.epoch))
    state.fetched[(event.kind, event.epoch)] = event.dependent_root
    mine = [d for d in event.duties if isinstance(d, dict) and d.get("pubkey") in config.by_group]
    if event.kind is DutiesKind.SYNC:
        state.sync_members[config.chain.sync_period(event.epoch)] = {d["pubkey"]: d for d in mine}
        _create_sync_message_duties(state, event.epoch, out)
        return
    kind = KIND_OF_DUTIES[event.kind]
    slots = range(clock.first_slot(event.epoch), clock.first_slot(event.epoch + 1))
    replaced: set[tuple[DutyId, str]] = set()  # known before a reorg: not scheduled again
    if previous is not None and previous != event.dependent_root:
        metric(out, "duties_refetched", kind=event.kind.value)
        for slot in slots:  # a reorg changed the duties: replace those not yet started
            rec = state.duties.get(DutyId(slot, kind))
            if rec is not None and rec.phase is Phase.SCHEDULED:
                replaced.update((rec.id, key) for key in on_duty(rec))
                rec.validators.clear()
            randao = state.duties.get(DutyId(slot, DutyKind.RANDAO))
            if (
                kind is DutyKind.PROPOSER
                and randao is not None
                and state.now_ms < clock.duty_start_ms(randao.id)
            ):
                replaced.update((randao.id, key) for key in on_duty(randao))
                randao.validators.clear()  # (no duty without consensus has started before its slot)
    for duty_json in mine:
        try:
            slot = uint(duty_json, "slot")
        except DataProblem:
            continue
        if slot not in slots or clock.duty_deadline_ms(DutyId(slot, kind)) <= state.now_ms:
            continue
        pubkey = duty_json["pubkey"]
        rec = record(state, DutyId(slot, kind), out)
        schedule(rec, pubkey, duty_json, out, known=(rec.id, pubkey) in replaced)
        if rec.phase is Phase.SIGNING:  # restored at a restart: now it can be served and combined
            answer_held(state, rec.id, out)
            try_combine(state, rec, [duty_json["pubkey"]], out)
        if kind is DutyKind.PROPOSER:
            randao = record(state, DutyId(slot, DutyKind.RANDAO), out)
            schedule(randao, pubkey, duty_json, out, known=(randao.id, pubkey) in replaced)
    for req in list(state.requests.values()):  # block requests that came before their duties
        if req.duty.kind is DutyKind.PROPOSER:
            start_block_request(state, req, out)


def _duties_in_epoch(event: DutiesFetched, clock: SlotClock) -> bool:
    slots = range(clock.first_slot(event.epoch), clock.first_slot(event.epoch + 1))
    for duty_json in event.duties:
        try:
            if uint(duty_json, "slot") not in slots:
                return False
        except DataProblem:
            continue
    return True


def _create_sync_message_duties(state: NodeState, epoch: int, out: Out) -> None:
    chain = state.config.chain
    clock = chain.clock
    members = state.sync_members.get(chain.sync_period(epoch), {})
    if not members or not fork_at_least(chain, clock.first_slot(epoch), "altair"):
        return
    for slot in range(clock.first_slot(epoch), clock.first_slot(epoch + 1)):
        duty = DutyId(slot, DutyKind.SYNC_MESSAGE)
        if clock.duty_deadline_ms(duty) <= state.now_ms:
            continue
        rec = record(state, duty, out)
        for pubkey, info in members.items():
            schedule(rec, pubkey, info, out)


def _on_head(state: NodeState, event: HeadChanged, out: Out) -> None:
    """A new head: fetch duties again where the dependent root they were fetched at changed."""
    epoch = state.config.chain.clock.epoch_of(event.slot)
    for kind, e, root in (
        (DutiesKind.ATTESTER, epoch + 1, event.current_duty_dependent_root),
        (DutiesKind.PROPOSER, epoch, event.current_duty_dependent_root),
        (DutiesKind.ATTESTER, epoch, event.previous_duty_dependent_root),
    ):
        known = state.fetched.get((kind, e))
        if root and known != root and state.indices:  # changed, or never fetched (a failed fetch)
            out.append(FetchDuties(kind, e, tuple(sorted(state.indices.values()))))


# ---- timers ------------------------------------------------------------------------------------------


def _on_timer(
    state: NodeState, purpose: str, duty: DutyId | None, round: int, request_id: int, out: Out
) -> None:
    if purpose == "epoch":
        _on_epoch(state, out)
        return
    if purpose == "request":
        on_request_deadline(state, request_id, out)
        return
    rec = state.duties.get(duty) if duty is not None else None
    if rec is None:
        return
    if purpose == "start":
        if rec.id.kind in CONSENSUS_KINDS and rec.can(Trigger.START):
            rec.advance(Trigger.START)
            _maybe_ready(state, rec, out)
    elif purpose == "deadline":
        _on_deadline(state, rec, out)
    elif purpose == "refetch":
        if rec.phase is Phase.CONSENSUS and rec.qbft is not None and "fetch_request" in rec.extra:
            out.append(FetchBeaconData(rec.id, rec.extra["fetch_request"]))
    elif purpose in ("qbft_round", "qbft_expiry") and rec.qbft is not None:
        kind = TimerKind.ROUND if purpose == "qbft_round" else TimerKind.EXPIRY
        _run_qbft(state, rec, QbftTimerFired(rec.id, kind, round, state.now_ms), out)


def _refetch_later(state: NodeState, rec: DutyRecord, out: Out) -> None:
    """A BN that had no data yet (an aggregate before the attestations reached it, a BN a moment
    behind) is asked again a twelfth of a slot later, while the duty's consensus runs: without an
    input no node can lead a round."""
    clock = state.config.chain.clock
    at = state.now_ms + clock.slot_ms // 12
    if rec.phase is Phase.CONSENSUS and rec.qbft is not None and at < clock.duty_deadline_ms(rec.id):
        timer(out, "refetch", at, rec.id)


def _on_epoch(state: NodeState, out: Out) -> None:
    clock = state.config.chain.clock
    epoch = clock.epoch_at(state.now_ms)
    _fetch_duties(state, epoch, out)
    _fetch_duties(state, epoch + 1, out, force=True)
    if state.sync_members:
        _create_sync_message_duties(state, epoch + 1, out)
    # bounded memory: forget finished duties a slot after their deadline, and old slashing records
    horizon = state.now_ms - clock.slot_ms
    for duty, rec in list(state.duties.items()):
        if rec.phase is Phase.DONE and clock.duty_deadline_ms(duty) < horizon:
            del state.duties[duty]
    state.finished = {(d, k) for d, k in state.finished if d.slot >= clock.first_slot(epoch - 2)}
    state.slashing.prune(epoch - 4, clock.first_slot(epoch - 4))
    for key in [k for k in state.fetched if k[1] < epoch - 2]:
        del state.fetched[key]
    for period in [p for p in state.sync_members if p < state.config.chain.sync_period(epoch) - 1]:
        del state.sync_members[period]
    _schedule_epoch_timer(state, out)


def _on_deadline(state: NodeState, rec: DutyRecord, out: Out) -> None:
    if rec.phase is Phase.DONE:
        return
    for key, vd in rec.validators.items():
        if vd.outcome is None and (vd.info is not None or vd.own is not None):
            finish(state, rec, key, False, out, _failure_reason(state, rec, key))
    rec.advance(Trigger.DEADLINE)
    rec.qbft = None
    rec.buffered.clear()
    answer_held(state, rec.id, out)
    _wake_waiting(state, out)


def _failure_reason(state: NodeState, rec: DutyRecord, key: str) -> str:
    vd = rec.validators[key]
    if rec.phase is Phase.WAITING:
        if rec.id.kind is DutyKind.PROPOSER and not _randao(state, rec.id.slot):
            return Reason.NO_RANDAO
        return Reason.OUT_OF_ORDER if _blocking(state, rec) else Reason.DEADLINE_EXCEEDED
    if rec.phase is Phase.CONSENSUS:
        return (
            Reason.FETCH_BN_ERROR
            if "fetch_error" in rec.extra and not rec.input_received
            else Reason.NO_CONSENSUS
        )
    if rec.phase is Phase.SIGNING:
        if vd.submitted:
            return Reason.BROADCAST_BN_ERROR
        if vd.invalid_senders and len(vd.partials) + (vd.own is not None) < state.config.threshold:
            return Reason.INVALID_PEER_SIGNATURE
        if vd.own is None and rec.id.kind is not DutyKind.RANDAO:
            return Reason.NO_LOCAL_VC_SIGNATURE
        return Reason.INSUFFICIENT_PEER_SIGNATURES
    return Reason.DEADLINE_EXCEEDED


# ---- the ordering rule and the start of consensus ----------------------------------------------------


def _blocking(state: NodeState, rec: DutyRecord) -> list[DutyId]:
    """Earlier duties of the same slashable kind, for a validator of `rec`, not finished here."""
    if rec.id.kind not in SLASHABLE_KINDS:
        return []
    keys = set(on_duty(rec))
    blocked_by = state.config.guards.is_blocked_by
    return [other.id for other in state.duties.values() if blocked_by(other, rec, on_duty(other), keys)]


def _randao(state: NodeState, slot: int) -> str | None:
    randao = state.duties.get(DutyId(slot, DutyKind.RANDAO))
    reveals = randao.extra.get("randao", {}) if randao else {}
    return next(iter(reveals.values()), None)


def _maybe_ready(state: NodeState, rec: DutyRecord, out: Out) -> None:
    validators = on_duty(rec)
    if rec.phase is not Phase.WAITING or not validators or _blocking(state, rec):
        return
    request: dict[str, Any] = {"slot": str(rec.id.slot)}
    if rec.id.kind is DutyKind.ATTESTER:
        request["committee_indices"] = sorted(
            {str(vd.info["committee_index"]) for vd in validators.values()}, key=int
        )
    elif rec.id.kind is DutyKind.PROPOSER:
        reveal = _randao(state, rec.id.slot)
        if reveal is None:
            return  # the RANDAO duty calls us again when it combines
        request["randao_reveal"] = reveal
    elif rec.id.kind is DutyKind.AGGREGATOR:
        attester = state.duties.get(DutyId(rec.id.slot, DutyKind.ATTESTER))
        if attester is not None and attester.phase in UNDECIDED:
            return  # the slot's attestation data is not decided yet; its Persisted wakes us
        aggregates = []
        for key, vd in validators.items():
            data = attester.validators[key].data if attester and key in attester.validators else None
            if data is None:
                continue
            spec = _spec_module(state, rec.id.slot)
            from covalidator.model.eth.ssz_json import hash_tree_root

            vd.info["attestation_data_root"] = "0x" + hash_tree_root(spec.AttestationData, data).hex()
            aggregates.append(
                {
                    "committee_index": vd.info["committee_index"],
                    "attestation_data_root": vd.info["attestation_data_root"],
                }
            )
        request["aggregates"] = aggregates
    elif rec.id.kind is DutyKind.SYNC_CONTRIBUTION:
        root = _sync_root(state, rec.id.slot)
        if root is None:
            return  # no combined sync message for the slot yet; the sync duty wakes us
        request["beacon_block_root"] = root
        request["subcommittee_indices"] = sorted(
            {str(vd.info["subcommittee_index"]) for vd in validators.values()}, key=int
        )
    rec.advance(Trigger.READY)
    config = state.config
    clock = config.chain.clock
    instance = qbft.InstanceConfig(
        instance=rec.id,
        n=config.n,
        self_index=config.share_index,
        start_ms=clock.duty_start_ms(rec.id),
        expiry_ms=clock.duty_deadline_ms(rec.id),
        round_duration_ms=config.round_duration_ms,
    )
    if state.started_ms > instance.start_ms:  # (re)started after the duty began: we may have voted
        rec.qbft, actions = qbft.restart(instance, state.now_ms)
    else:
        rec.qbft, actions = qbft.init(instance)
    _qbft_actions(state, rec, actions, out)
    rec.extra["fetch_request"] = request
    out.append(FetchBeaconData(rec.id, request))
    for envelope in rec.buffered:
        _run_qbft(state, rec, Received(envelope), out)
    rec.buffered.clear()


def _spec_module(state: NodeState, slot: int) -> Any:
    from covalidator.model.eth.specs import spec

    schedule = state.config.chain.schedule
    return spec(state.config.chain.fork_name(slot), schedule.preset)


def _sync_root(state: NodeState, slot: int) -> str | None:
    """The block root the cluster's sync committee messages signed in this slot (the contribution's):
    the root of a combined message (what M co-validators signed), else this node's VC's."""
    sync = state.duties.get(DutyId(slot, DutyKind.SYNC_MESSAGE))
    if sync is None:
        return None
    combined: dict[str, str] = sync.extra.get("combined_roots", {})
    if combined:
        return min(combined.values())
    for _, vd in sorted(sync.validators.items()):
        if vd.own_message:
            return str(vd.own_message["beacon_block_root"])
    return None


def on_sync_message_combined(state: NodeState, slot: int, out: Out) -> None:
    rec = state.duties.get(DutyId(slot, DutyKind.SYNC_CONTRIBUTION))
    if rec is not None:
        _maybe_ready(state, rec, out)


def _wake_waiting(state: NodeState, out: Out) -> None:
    for rec in sorted(state.duties.values(), key=lambda r: r.id):
        if rec.phase is Phase.WAITING:
            _maybe_ready(state, rec, out)


def on_randao_combined(state: NodeState, slot: int, out: Out) -> None:
    rec = state.duties.get(DutyId(slot, DutyKind.PROPOSER))
    if rec is not None:
        _maybe_ready(state, rec, out)


# ---- consensus ---------------------------------------------------------------------------------------


def _on_beacon_data(state: NodeState, event: BeaconDataFetched, out: Out) -> None:
    rec = state.duties.get(event.duty)
    if (
        rec is None
        or rec.qbft is None
        or rec.phase is not Phase.CONSENSUS
        or not isinstance(event.data, dict)
    ):
        return
    value: dict[str, Any] = {}
    data = event.data
    for key, vd in on_duty(rec).items():
        info = vd.info
        if rec.id.kind is DutyKind.ATTESTER:
            item = data.get(str(info.get("committee_index")), data.get("0") if len(data) == 1 else None)
        elif rec.id.kind is DutyKind.PROPOSER:
            item = data
        elif rec.id.kind is DutyKind.AGGREGATOR:
            item = data.get(str(info.get("attestation_data_root")))
        else:
            item = data.get(str(info.get("subcommittee_index")))
        if item is not None:
            value[key] = item
    if value:
        rec.input_received = True
        _run_qbft(state, rec, InputValue(rec.id, make_value(canonical_json(value))), out)


def _is_valid(state: NodeState, rec: DutyRecord) -> Any:
    """The consensus validity predicate for this duty (cached per value hash)."""
    cache: dict[str, bool] = rec.extra.setdefault("validity", {})

    def is_valid(value: Value) -> bool:
        if value.hash not in cache:
            problem = _value_problem(state, rec, value)
            cache[value.hash] = problem is None
            if problem is not None:
                rec.extra.setdefault("invalid_reasons", []).append(problem)
        return cache[value.hash]

    return is_valid


def _value_problem(state: NodeState, rec: DutyRecord, value: Value) -> str | None:
    chain = state.config.chain
    try:
        proposal = json.loads(value.body)
    except (ValueError, UnicodeDecodeError):
        return "value is not JSON"
    if not isinstance(proposal, dict) or not proposal:
        return "value is not a non-empty map"
    try:
        for key, data in proposal.items():
            vd = rec.validators.get(key)
            if vd is None or vd.info is None:
                return f"{key} has no {rec.id} duty here"
            info = vd.info
            slot = rec.id.slot
            if rec.id.kind is DutyKind.ATTESTER:
                check_attestation_data(chain, data, slot, int(info["committee_index"]))
                root = bytes.fromhex(root_of(chain, Kind.ATTESTATION, data)[2:])
                att = SignedAttestation(uint(data, "source", "epoch"), uint(data, "target", "epoch"), root)
                verdict = state.config.guards.check_slashing(state.slashing, vd.pubkey, att)
            elif rec.id.kind is DutyKind.PROPOSER:
                check_block(chain, data, slot, int(info["validator_index"]), str(_randao(state, slot)))
                root = bytes.fromhex(_block_root(state, data)[2:])
                verdict = state.config.guards.check_slashing(
                    state.slashing, vd.pubkey, SignedBlock(slot, root)
                )
            elif rec.id.kind is DutyKind.AGGREGATOR:
                check_aggregate(
                    chain,
                    data,
                    slot,
                    str(info.get("attestation_data_root")),
                    int(info["committee_index"]),
                    int(info["committee_length"]),
                )
                continue
            else:
                check_contribution(data, slot, int(info["subcommittee_index"]), str(_sync_root(state, slot)))
                continue
            if not verdict.safe:
                return f"{key}: slashable ({verdict.describe()})"
    except DataProblem as problem:
        return str(problem)
    except (KeyError, TypeError, ValueError, AttributeError) as problem:
        return f"malformed value: {problem!r}"
    return None


def _block_root(state: NodeState, proposal: Any) -> str:
    kind = Kind.BLINDED_BLOCK if proposal.get("blinded") else Kind.BLOCK
    return root_of(
        state.config.chain, kind, block_of(proposal) if kind is Kind.BLINDED_BLOCK else proposal["block"]
    )


def _run_qbft(state: NodeState, rec: DutyRecord, event: Any, out: Out) -> None:
    assert rec.qbft is not None
    rec.qbft, actions = qbft.step(rec.qbft, event, _is_valid(state, rec))
    _qbft_actions(state, rec, actions, out)


def _qbft_actions(state: NodeState, rec: DutyRecord, actions: tuple[Any, ...], out: Out) -> None:
    for action in actions:
        match action:
            case QbftBroadcast(envelope=envelope):
                out.append(Broadcast(PeerPayload(qbft=envelope)))
            case QbftSend(to=to, envelope=envelope):
                out.append(Send(to, PeerPayload(qbft=envelope)))
            case QbftStartTimer(kind=kind, round=round, at_ms=at_ms):
                purpose = "qbft_round" if kind is TimerKind.ROUND else "qbft_expiry"
                timer(out, purpose, at_ms, rec.id, round)
            case Decide(value=value, round=round):
                _on_decided(state, rec, value, round, out)
            case Expired():
                rec.qbft = None


def _on_peer(state: NodeState, event: PeerMessage, out: Out) -> None:
    payload = event.payload
    if not 1 <= event.sender <= state.config.n or event.sender == state.config.share_index:
        metric(out, "peer_message_dropped", cause="bad_sender")
        return
    if payload.partials is not None:
        on_peer_partials(state, event.sender, payload.partials, out)
        return
    envelope = payload.qbft
    if envelope is None:
        metric(out, "peer_message_dropped", cause="empty_payload", peer=event.sender)
        return
    duty = envelope.message.instance
    if envelope.message.sender != event.sender:
        metric(out, "peer_message_dropped", cause="sender_mismatch", peer=event.sender)
        return
    if duty.kind not in CONSENSUS_KINDS or not in_window(state, duty.slot):
        metric(out, "peer_message_dropped", cause="stale_or_future_instance", peer=event.sender)
        return
    rec = state.duties.get(duty)
    if rec is None:
        if len(state.duties) >= state.config.limits.duties:
            metric(out, "peer_message_dropped", cause="too_many_duties", peer=event.sender)
            return
        rec = record(state, duty, out)
    if rec.qbft is not None:
        _run_qbft(state, rec, Received(envelope), out)
    elif rec.phase in (Phase.SCHEDULED, Phase.WAITING):
        if len(rec.buffered) < state.config.limits.buffered_peer_messages:
            rec.buffered.append(envelope)
        else:
            metric(out, "peer_message_dropped", cause="buffer_full", peer=event.sender)


# ---- decided, persisted ------------------------------------------------------------------------------


def _on_decided(state: NodeState, rec: DutyRecord, value: Value, round: int, out: Out) -> None:
    if not rec.can(Trigger.DECIDED):
        return
    rec.advance(Trigger.DECIDED)
    decided = json.loads(value.body)
    rec.decided, rec.decided_hash = decided, value.hash
    records: list[SlashingRecord] = []
    for key, data in decided.items():
        vd = rec.validators.get(key)
        if vd is None or vd.info is None:
            continue  # a validator this node has no duty for (its BN disagrees): it cannot sign it
        vd.data = data
        slashing_record = _prepare_signing(state, rec, key, out)
        if slashing_record is not None:
            records.append(slashing_record)
    clock = state.config.chain.clock
    metric(
        out,
        "consensus_duration_ms",
        state.now_ms - clock.duty_start_ms(rec.id),
        kind=rec.id.kind.name.lower(),
    )
    metric(out, "consensus_decided_round", round, kind=rec.id.kind.name.lower())
    if rec.qbft is not None:
        metric(out, "consensus_leader", rec.qbft.config.leader(round), kind=rec.id.kind.name.lower())
    out.append(Persist(rec.id, decided, value.hash, tuple(records)))


def prepare_signing(state: NodeState, rec: DutyRecord, key: str, out: Out) -> None:
    """A duty's validator learned what it lacked to be signed (a restored aggregation duty, its
    combined selection proof): compute its signing root now."""
    if (
        state.config.guards.may_serve(rec.phase)
        and key not in rec.roots
        and rec.validators[key].data is not None
    ):
        _prepare_signing(state, rec, key, out)


def _prepare_signing(state: NodeState, rec: DutyRecord, key: str, out: Out) -> SlashingRecord | None:
    """The signing root of the validator's decided data (`rec.roots`), the signed message of an
    aggregation duty, and for attestations and blocks the slashing record to persist. Data that
    cannot be signed is dropped (never served); an aggregation duty whose selection proof is not
    known yet (restored at a restart) waits for it."""
    vd = rec.validators[key]
    data = vd.data
    chain = state.config.chain
    kind = rec.id.kind
    try:
        if kind is DutyKind.ATTESTER:
            root = root_of(chain, Kind.ATTESTATION, data)
            rec.roots[key] = root
            source, target = uint(data, "source", "epoch"), uint(data, "target", "epoch")
            return SlashingRecord(vd.pubkey, None, source, target, root)
        if kind is DutyKind.PROPOSER:
            root = _block_root(state, data)
            rec.roots[key] = root
            return SlashingRecord(vd.pubkey, rec.id.slot, signing_root=root)
        info = vd.info or {}
        if "selection_proof" not in info or vd.pubkey not in state.indices:
            return None
        inner = "aggregate" if kind is DutyKind.AGGREGATOR else "contribution"
        signed = {
            "aggregator_index": str(state.indices[vd.pubkey]),
            inner: data,
            "selection_proof": info["selection_proof"],
        }
        message_kind = (
            Kind.AGGREGATE_AND_PROOF if kind is DutyKind.AGGREGATOR else Kind.CONTRIBUTION_AND_PROOF
        )
        rec.roots[key] = root_of(chain, message_kind, signed)
        rec.extra.setdefault("signed", {})[key] = signed
    except (DataProblem, KeyError, TypeError, AttributeError) as problem:
        log(
            out, "error", "decided data cannot be signed", duty=str(rec.id), validator=key, error=str(problem)
        )
        vd.data = None
        rec.roots.pop(key, None)
    return None


def _on_persisted(state: NodeState, event: Persisted, out: Out) -> None:
    rec = state.duties.get(event.duty)
    if rec is None or not rec.can(Trigger.PERSISTED):
        return
    rec.advance(Trigger.PERSISTED)
    refused = state.config.guards.refused_by_store(event.refused)
    for key, vd in rec.validators.items():
        if vd.data is None:
            continue
        if vd.pubkey in refused:
            vd.data = None
            rec.roots.pop(key, None)
            metric(out, "slashing_refusals", kind=rec.id.kind.name.lower())
            finish(state, rec, key, False, out, Reason.SLASHING_REFUSED)
            continue
        data = vd.data
        if rec.id.kind is DutyKind.ATTESTER:
            root = bytes.fromhex(rec.roots[key][2:])
            att = SignedAttestation(uint(data, "source", "epoch"), uint(data, "target", "epoch"), root)
            state.slashing.record_attestation(vd.pubkey, att)
        elif rec.id.kind is DutyKind.PROPOSER:
            state.slashing.record_block(
                vd.pubkey, SignedBlock(rec.id.slot, bytes.fromhex(rec.roots[key][2:]))
            )
    answer_held(state, rec.id, out)
    try_combine(state, rec, list(rec.validators), out)  # peers' partials that came before we persisted
    _wake_waiting(state, out)
