"""One co-validator, every duty from schedule to submission: `state, actions = step(state, event)`.

The runtime, the cluster simulator, the Hypothesis machines and trace replay all drive this one
function. It reads no clock and does no I/O: time comes in events, and everything it wants done
comes out as actions, executed in order (a `Persist` completes before the next action runs).

This module only routes: each event, timer and internal signal to the step of the duty pipeline that
handles it. The pipeline of a duty (phases: node/phases.py; per-kind rules: model/duty.py):
1. schedule.py    duties fetched per epoch (again on a changed dependent root); each duty record
                  gets a start and a deadline timer.
2. consensus.py   ONE QBFT instance per (slot, kind) decides every cluster validator's data, joined
                  only when the ordering rule lets it (ordering.py); values are judged by
                  validity.py; the decision is persisted (Persist) and only after the store's
                  Persisted served and signed (what the store refused never is).
3. vc.py          the VC's requests (held until the data is persisted) and its partial signatures
                  (verified against this node's share and the decided signing root).
4. parsig.py      partials exchanged with the peers, M combined (Lagrange in G2), verified against the
                  group key, submitted once; a combined RANDAO reveal, selection proof or sync message
                  signals what it unlocks (signals.py), routed here.
5. outcome.py     every (duty, validator) ends in exactly one DutyOutcome: success or a named reason.
   signer.py      signer mode: the Remote Signing API's requests, answered with group signatures only
                  for what the cluster decided and persisted (parsig.py signs this node's partials).

Duty kinds: attester; proposer (the VC's block request carries its RANDAO partial; the RANDAO duty
combines M of them, then the proposal is decided); sync committee message (no consensus: partials are
grouped by signing root); aggregator and sync contribution (the DV selection endpoints combine
selection proofs first; a combined proof that selects the validator creates the duty).
"""

from __future__ import annotations

from covalidator.model.duty import CONSENSUS_KINDS, POOL_KINDS, DutyId, DutyKind
from covalidator.model.node import consensus, outcome, parsig, pool, schedule, signer, vc
from covalidator.model.node.events import (
    BeaconDataFailed,
    BeaconDataFetched,
    BNSubmitted,
    DutiesFailed,
    DutiesFetched,
    HeadChanged,
    NodeAction,
    NodeEvent,
    PeerMessage,
    Persisted,
    SharesSigned,
    SignRequest,
    Started,
    Tick,
    TimerFired,
    TimerKey,
    TimerPurpose,
    ValidatorsResolved,
    VCRequest,
    VCSubmission,
)
from covalidator.model.node.signals import (
    AggregationSelected,
    GroupSigned,
    RandaoCombined,
    SelectionCombined,
    Signal,
    SyncMessageCombined,
)
from covalidator.model.node.state import NodeState, Out, in_window, log, metric


def step(state: NodeState, event: NodeEvent) -> tuple[NodeState, tuple[NodeAction, ...]]:
    """Apply one event to the node; return it (mutated) and the actions to execute, in order."""
    out = Out(route)
    if isinstance(event, Started):
        schedule.on_started(state, event, out)
        pool.on_started(state, event.pool, out)
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
            on_timer(state, key, out)
        case ValidatorsResolved():
            schedule.on_validators(state, event, out)
            pool.on_validators(state, event, out)
        case DutiesFetched():
            schedule.on_duties(state, event, out)
            signer.answer_all(state, out)  # requests waiting to learn their validator's duty
        case DutiesFailed():
            schedule.on_duties_failed(state, event, out)
        case BeaconDataFetched():
            consensus.on_beacon_data(state, event, out)
        case BeaconDataFailed():
            consensus.on_beacon_data_failed(state, event, out)
        case PeerMessage():
            on_peer(state, event, out)
        case VCRequest():
            vc.on_vc_request(state, event, out)
        case VCSubmission() if event.kind in pool.SUBMISSIONS:
            pool.on_vc_submission(state, event, out)
        case VCSubmission():
            vc.on_vc_submission(state, event, out)
            consensus.wake_waiting(state, out)  # a sync contribution waits for the slot's sync messages
        case SignRequest() if pool.is_sign_request(event):
            pool.on_sign_request(state, event, out)
        case SignRequest():
            signer.on_sign_request(state, event, out)
            consensus.wake_waiting(state, out)  # a sync message partial may complete the slot's messages
        case SharesSigned():
            pool.on_shares_signed(state, event, out)
            parsig.on_shares_signed(state, event, out)
            consensus.wake_waiting(state, out)
        case Persisted():
            if consensus.on_persisted(state, event, out):
                rec = state.duties[event.duty]
                vc.answer_held(state, rec.id, out)
                parsig.try_combine(state, rec, list(rec.validators), out)  # peers' partials kept till now
                signer.answer_held(state, rec.id, out)
                consensus.wake_waiting(state, out)
        case BNSubmitted() if event.duty.kind in POOL_KINDS:
            pool.on_submitted(state, event, out)
        case BNSubmitted():
            parsig.on_submitted(state, event.duty, event.pubkeys, event.ok, event.error, out)
        case HeadChanged():
            schedule.on_head(state, event, out)
    return state, tuple(out)


def on_timer(state: NodeState, key: TimerKey, out: Out) -> None:
    if key.purpose is TimerPurpose.EPOCH:
        schedule.on_epoch(state, out)
        pool.on_epoch(state, out)
        return
    if key.purpose is TimerPurpose.REQUEST:
        held = state.requests.get(key.request_id)
        if held is not None and held.sign is not None:
            signer.on_deadline(state, held, out)
        else:
            vc.on_request_deadline(state, key.request_id, out)
        return
    rec = state.duties.get(key.duty) if key.duty is not None else None
    if rec is None:
        return
    match key.purpose:
        case TimerPurpose.START:
            consensus.on_start(state, rec, out)
            if rec.id.kind is DutyKind.SYNC_MESSAGE:
                schedule.sign_sync_selections(state, rec.id.slot + 1, out)
        case TimerPurpose.DEADLINE:
            if outcome.on_deadline(state, rec, out):
                vc.answer_held(state, rec.id, out)
                signer.answer_held(state, rec.id, out)
                consensus.wake_waiting(state, out)
        case TimerPurpose.REFETCH:
            consensus.on_refetch(state, rec, out)
        case TimerPurpose.QBFT_ROUND | TimerPurpose.QBFT_EXPIRY:
            consensus.on_qbft_timer(state, rec, key, out)


def on_peer(state: NodeState, event: PeerMessage, out: Out) -> None:
    payload = event.payload
    if not 1 <= event.sender <= state.config.n or event.sender == state.config.share_index:
        metric(out, "peer_message_dropped", cause="bad_sender")
        return
    if payload.partials is not None:
        parsig.on_peer_partials(state, event.sender, payload.partials, out)
        return
    if payload.pool is not None:
        pool.on_peer(state, event.sender, payload.pool, out)
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
    before = state.duties[duty].phase if duty in state.duties else None
    consensus.on_qbft_message(state, event.sender, envelope, out)
    rec = state.duties.get(duty)
    if rec is not None and rec.phase is not before and rec.decided is not None:
        # signer mode: our partial as soon as `Guards.may_release` allows. At the decision it does not
        # (the store has not answered yet); asking here is what makes the guard the only gate
        parsig.sign_decided(state, rec, list(rec.validators), out)


def route(state: NodeState, signal: Signal, out: Out) -> None:
    """What a combined signature unlocks (node/signals.py), at once."""
    match signal:
        case RandaoCombined(slot=slot):
            consensus.wake(state, DutyId(slot, DutyKind.PROPOSER), out)
        case SyncMessageCombined(slot=slot):
            consensus.wake(state, DutyId(slot, DutyKind.SYNC_CONTRIBUTION), out)
        case SelectionCombined(duty=duty):
            vc.answer_selections(state, duty, out)
        case GroupSigned(duty=duty):
            signer.answer_held(state, duty, out)
        case AggregationSelected(duty=duty, key=key):
            rec = state.duties[duty]
            consensus.prepare_signing(state, rec, key, out)
            vc.answer_held(state, duty, out)
            parsig.try_combine(state, rec, [key], out)
