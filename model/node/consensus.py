"""Consensus on a duty's data: the ordering rule, joining the QBFT instance, deciding, persisting.

Decides, for a duty with consensus (`duty.KINDS`):
- when this node joins its QBFT instance (`maybe_ready`): once the duty has started, the ordering rule
  lets it (`blocking`: every earlier duty of the same slashable kind of its validators is decided and
  persisted here, or ended), and what it needs first is there (a proposal: the combined RANDAO; an
  aggregation: the slot's decided attestation data; a sync contribution: the slot's sync root). Until
  then peers' messages are buffered (bounded);
- what this node offers (its BN's data, `fetch`) and how QBFT's actions become the node's;
- what the decision becomes: `Persist` (the decided value and its slashing records), and only after
  the store's `Persisted` the data may be served and signed (`on_persisted`: the store's refusals
  are never served).

Must not: serve the VC or touch partial signatures (node/vc.py, node/parsig.py), nor judge a value
(node/validity.py).
"""

from __future__ import annotations

import json
from typing import Any

from covalidator.model.duty import SLASHABLE_KINDS, DutyId, DutyKind
from covalidator.model.eth.beacon_data import DataProblem, root_of, uint
from covalidator.model.eth.signing import Kind
from covalidator.model.eth.ssz_json import hash_tree_root
from covalidator.model.node.events import (
    BeaconDataFailed,
    BeaconDataFetched,
    Broadcast,
    DecidedRecord,
    FetchBeaconData,
    PeerPayload,
    Persist,
    Persisted,
    Send,
    SlashingRecord,
    TimerKey,
    TimerPurpose,
)
from covalidator.model.node.ordering import blocking
from covalidator.model.node.outcome import finish
from covalidator.model.node.phases import UNDECIDED, DutyRecord, Phase, Trigger
from covalidator.model.node.requests import (
    AggregatesRequest,
    AttestationDataRequest,
    BeaconRequest,
    BlockRequest,
    ContributionsRequest,
)
from covalidator.model.node.state import (
    NodeState,
    Out,
    buffer_peer_message,
    combined_randao,
    combined_sync_root,
    log,
    metric,
    on_duty,
    pubkey_of,
    record,
    spec_module,
    take_buffered,
    timer,
    validator,
)
from covalidator.model.node.validity import block_root, is_valid
from covalidator.model.outcomes import Reason
from covalidator.model.qbft import instance as qbft
from covalidator.model.qbft.events import Broadcast as QbftBroadcast
from covalidator.model.qbft.events import Decide, Expired, InputValue, Received, TimerKind
from covalidator.model.qbft.events import Send as QbftSend
from covalidator.model.qbft.events import StartTimer as QbftStartTimer
from covalidator.model.qbft.events import TimerFired as QbftTimerFired
from covalidator.model.qbft.messages import Envelope, Value, canonical_json, make_value
from covalidator.model.slashing.rules import SignedAttestation, SignedBlock

# ---- the ordering rule and the start of consensus ---------------------------------------------------------


def on_start(state: NodeState, rec: DutyRecord, out: Out) -> None:
    """The duty's start time: a duty with consensus now waits for the ordering rule."""
    if rec.can(Trigger.START):
        rec.advance(Trigger.START)
        maybe_ready(state, rec, out)


def wake_waiting(state: NodeState, out: Out) -> None:
    """Something a waiting duty may wait for happened (an earlier duty ended or persisted)."""
    for rec in sorted(state.duties.values(), key=lambda r: r.id):
        if rec.phase is Phase.WAITING:
            maybe_ready(state, rec, out)


def wake(state: NodeState, duty: DutyId, out: Out) -> None:
    """What this duty waited for (a combined RANDAO, a combined sync message) is there."""
    rec = state.duties.get(duty)
    if rec is not None:
        maybe_ready(state, rec, out)


def maybe_ready(state: NodeState, rec: DutyRecord, out: Out) -> None:
    validators = on_duty(rec)
    if rec.phase is not Phase.WAITING or not validators or blocking(state, rec):
        return
    slot = rec.id.slot
    request: BeaconRequest
    if rec.id.kind is DutyKind.ATTESTER:
        indices = sorted({int(vd.info["committee_index"]) for vd in validators.values()})
        request = AttestationDataRequest(slot, tuple(indices))
    elif rec.id.kind is DutyKind.PROPOSER:
        reveal = combined_randao(state, slot)
        if reveal is None:
            return  # the RANDAO duty wakes us when it combines
        request = BlockRequest(slot, reveal)
    elif rec.id.kind is DutyKind.AGGREGATOR:
        attester = state.duties.get(DutyId(slot, DutyKind.ATTESTER))
        if attester is not None and attester.phase in UNDECIDED:
            return  # the slot's attestation data is not decided yet; its Persisted wakes us
        aggregates = []
        for key, vd in validators.items():
            data = attester.validators[key].data if attester and key in attester.validators else None
            if data is None:
                continue
            spec = spec_module(state, slot)
            vd.info["attestation_data_root"] = "0x" + hash_tree_root(spec.AttestationData, data).hex()
            aggregates.append((int(vd.info["committee_index"]), vd.info["attestation_data_root"]))
        request = AggregatesRequest(slot, tuple(aggregates))
    elif rec.id.kind is DutyKind.SYNC_CONTRIBUTION:
        root = combined_sync_root(state, slot)
        if root is None:
            return  # no combined sync message for the slot yet; the sync duty wakes us
        subcommittees = sorted({int(vd.info["subcommittee_index"]) for vd in validators.values()})
        request = ContributionsRequest(slot, root, tuple(subcommittees))
    else:
        raise AssertionError(f"{rec.id}: no consensus for this kind")
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
    qbft_actions(state, rec, actions, out)
    rec.fetch_request = request
    out.append(FetchBeaconData(rec.id, request))
    for envelope in take_buffered(state, rec):
        run_qbft(state, rec, Received(envelope), out)


# ---- this node's input: its BN's data ----------------------------------------------------------------


def on_beacon_data(state: NodeState, event: BeaconDataFetched, out: Out) -> None:
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
        run_qbft(state, rec, InputValue(rec.id, make_value(canonical_json(value))), out)


def on_beacon_data_failed(state: NodeState, event: BeaconDataFailed, out: Out) -> None:
    """A BN that had no data yet (an aggregate before the attestations reached it, a BN a moment
    behind) is asked again a twelfth of a slot later, while the duty's consensus runs: without an
    input no node can lead a round."""
    rec = state.duties.get(event.duty)
    if rec is not None:
        rec.fetch_error = event.error
        clock = state.config.chain.clock
        at = state.now_ms + clock.slot_ms // 12
        if rec.phase is Phase.CONSENSUS and rec.qbft is not None and at < clock.duty_deadline_ms(rec.id):
            timer(out, TimerPurpose.REFETCH, at, rec.id)
    metric(out, "bn_errors", what="beacon_data", kind=event.duty.kind.name.lower())


def on_refetch(state: NodeState, rec: DutyRecord, out: Out) -> None:
    if rec.phase is Phase.CONSENSUS and rec.qbft is not None and rec.fetch_request is not None:
        out.append(FetchBeaconData(rec.id, rec.fetch_request))


# ---- QBFT ----------------------------------------------------------------------------------------------


def on_qbft_message(state: NodeState, sender: int, envelope: Envelope, out: Out) -> None:
    """A peer's QBFT message for a duty with consensus in the window (checked by the dispatcher)."""
    duty = envelope.message.instance
    rec = state.duties.get(duty)
    if rec is None:
        if len(state.duties) >= state.config.limits.duties:
            metric(out, "peer_message_dropped", cause="too_many_duties", peer=sender)
            return
        rec = record(state, duty, out)
    if rec.qbft is not None:
        run_qbft(state, rec, Received(envelope), out)
    elif rec.phase in (Phase.SCHEDULED, Phase.WAITING) and not buffer_peer_message(state, rec, envelope):
        metric(out, "peer_message_dropped", cause="buffer_full", peer=sender)


def on_qbft_timer(state: NodeState, rec: DutyRecord, key: TimerKey, out: Out) -> None:
    if rec.qbft is not None:
        kind = TimerKind.ROUND if key.purpose is TimerPurpose.QBFT_ROUND else TimerKind.EXPIRY
        run_qbft(state, rec, QbftTimerFired(rec.id, kind, key.round, state.now_ms), out)


def run_qbft(state: NodeState, rec: DutyRecord, event: Any, out: Out) -> None:
    assert rec.qbft is not None
    rec.qbft, actions = qbft.step(rec.qbft, event, is_valid(state, rec))
    qbft_actions(state, rec, actions, out)


def qbft_actions(state: NodeState, rec: DutyRecord, actions: tuple[Any, ...], out: Out) -> None:
    for action in actions:
        match action:
            case QbftBroadcast(envelope=envelope):
                out.append(Broadcast(PeerPayload(qbft=envelope)))
            case QbftSend(to=to, envelope=envelope):
                out.append(Send(to, PeerPayload(qbft=envelope)))
            case QbftStartTimer(kind=kind, round=round, at_ms=at_ms):
                purpose = TimerPurpose.QBFT_ROUND if kind is TimerKind.ROUND else TimerPurpose.QBFT_EXPIRY
                timer(out, purpose, at_ms, rec.id, round)
            case Decide(value=value, round=round):
                on_decided(state, rec, value, round, out)
            case Expired():
                rec.qbft = None


# ---- decided, persisted ------------------------------------------------------------------------------


def on_decided(state: NodeState, rec: DutyRecord, value: Value, round: int, out: Out) -> None:
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
            root = block_root(state, data)
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
        rec.signed[key] = signed
    except (DataProblem, KeyError, TypeError, AttributeError) as problem:
        log(
            out, "error", "decided data cannot be signed", duty=str(rec.id), validator=key, error=str(problem)
        )
        vd.data = None
        rec.roots.pop(key, None)
    return None


def on_persisted(state: NodeState, event: Persisted, out: Out) -> bool:
    """The store committed the decided value: record it in the view, end the validators whose records
    it refused, and open the duty for serving and signing. False when there was nothing to persist."""
    rec = state.duties.get(event.duty)
    if rec is None or not rec.can(Trigger.PERSISTED):
        return False
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
    return True


# ---- a restart: the decided values the store kept ---------------------------------------------------


def restore_decided(state: NodeState, decided: DecidedRecord, out: Out) -> None:
    """A decided value read back at a restart: served and signed again only where the slashing DB
    holds its record as it is (else the store refused it, or never committed it)."""
    rec = record(state, decided.duty, out)
    rec.advance(Trigger.RESTORED)
    rec.decided, rec.decided_hash = decided.value, decided.value_hash
    if not isinstance(decided.value, dict):
        return
    for key, data in decided.value.items():
        if pubkey_of(key) not in state.config.by_group:
            continue
        vd = validator(rec, key)
        vd.data = data
        _prepare_signing(state, rec, key, out)
        if rec.id.kind in SLASHABLE_KINDS and not _is_recorded(state, rec, key):
            vd.data = None
            rec.roots.pop(key, None)


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
