"""The node's schedule: its (re)start, its validators, their duties per epoch, heads, epochs.

Decides when duties are fetched (at each epoch boundary for this epoch and the next, again when a head
shows a changed dependent root, again at genesis when a BN refused before it), which of the BN's
duties are this cluster's and in their epoch, which duty records they create (with their start and
deadline timers: node/state.py), how a reorg replaces duties not yet started, and what is forgotten at
each epoch (finished duties, old slashing records: memory stays bounded). A restart starts over from
what the store kept (`Started`): the slashing records, the finished duties and the decided values.

Must not: decide about consensus, serving or signing (it hands restored and newly known duties to
node/consensus.py, node/vc.py and node/parsig.py).
"""

from __future__ import annotations

from typing import Any

from covalidator.model.clock import SlotClock
from covalidator.model.cluster.config import ChainConfig
from covalidator.model.duty import (
    CONSENSUS_KINDS,
    KIND_OF_DUTIES,
    DutiesKind,
    DutyId,
    DutyKind,
    VCRequestKind,
)
from covalidator.model.eth.beacon_data import DataProblem, fork_at_least, uint
from covalidator.model.node.consensus import restore_decided
from covalidator.model.node.events import (
    DutiesFailed,
    DutiesFetched,
    FetchDuties,
    FetchValidators,
    HeadChanged,
    Started,
    TimerPurpose,
    ValidatorsResolved,
)
from covalidator.model.node.parsig import sign_duty_message, try_combine
from covalidator.model.node.phases import Phase
from covalidator.model.node.state import (
    NodeState,
    Out,
    in_window,
    log,
    metric,
    on_duty,
    record,
    schedule,
    take_buffered,
    timer,
)
from covalidator.model.node.vc import answer_held, start_block_request
from covalidator.model.slashing.rules import SignedAttestation, SignedBlock
from covalidator.model.slashing.view import KEEP_EPOCHS


def on_started(state: NodeState, event: Started, out: Out) -> None:
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
        if in_window(state, decided.duty.slot) and decided.duty.kind in CONSENSUS_KINDS:
            restore_decided(state, decided, out)
    out.append(FetchValidators(tuple(v.group for v in config.validators)))
    schedule_epoch_timer(state, out)


def _root_bytes(text: str | None) -> bytes | None:
    return None if text is None else bytes.fromhex(text[2:])


def schedule_epoch_timer(state: NodeState, out: Out) -> None:
    clock = state.config.chain.clock
    if state.now_ms < clock.genesis_time_ms and state.next_epoch_timer < 0:
        # before genesis a BN may refuse duties (Lodestar: "more than one ahead"): ask again at genesis
        state.next_epoch_timer = 0
        timer(out, TimerPurpose.EPOCH, clock.genesis_time_ms)
        return
    next_epoch = clock.epoch_at(state.now_ms) + 1
    if next_epoch > state.next_epoch_timer:
        state.next_epoch_timer = next_epoch
        timer(out, TimerPurpose.EPOCH, clock.slot_start_ms(clock.first_slot(next_epoch)))


def on_validators(state: NodeState, event: ValidatorsResolved, out: Out) -> None:
    new = False
    for info in event.validators:
        if info.pubkey in state.config.by_group and state.indices.get(info.pubkey) != info.index:
            state.indices[info.pubkey] = info.index
            state.by_index[info.index] = info.pubkey
            new = True
    if not new:
        return  # a status refresh (node/pool.py: is an exit on chain?): the duties are known
    epoch = state.config.chain.clock.epoch_at(state.now_ms)
    fetch_duties(state, epoch, out, force=True)
    fetch_duties(state, epoch + 1, out, force=True)


def fetch_duties(state: NodeState, epoch: int, out: Out, force: bool = False) -> None:
    indices = tuple(sorted(state.indices.values()))
    if not indices:
        return
    kinds = [DutiesKind.ATTESTER, DutiesKind.PROPOSER]
    if fork_at_least(state.config.chain, state.config.chain.clock.first_slot(epoch), "altair"):
        kinds.append(DutiesKind.SYNC)
    for kind in kinds:
        if force or (kind, epoch) not in state.fetched:
            out.append(FetchDuties(kind, epoch, indices))


def on_duties(state: NodeState, event: DutiesFetched, out: Out) -> None:
    config = state.config
    clock = config.chain.clock
    if event.kind is not DutiesKind.SYNC and not duties_in_epoch(event, clock):
        # not this epoch's duties (Lodestar 1.5.1 answers next-epoch proposer duties with the current
        # epoch's slots): left unfetched, so the epoch timer and head events ask again
        log(out, "warn", "duties outside their epoch ignored", kind=event.kind.value, epoch=event.epoch)
        return
    previous = state.fetched.get((event.kind, event.epoch))
    state.fetched[(event.kind, event.epoch)] = event.dependent_root
    mine = [  # a pubkey that is not a string (a BN's malformed JSON) is no one's: unhashable, never a key
        d
        for d in event.duties
        if isinstance(d, dict) and isinstance(d.get("pubkey"), str) and d["pubkey"] in config.by_group
    ]
    problems = [(d, duty_problem(event.kind, d, config.chain)) for d in mine]
    mine = [d for d, problem in problems if problem is None]  # fields later steps read as numbers
    for _, problem in problems:
        if problem is not None:
            log(out, "warn", "malformed duty from the BN ignored", kind=event.kind.value, problem=problem)
            metric(out, "bn_duty_malformed", kind=event.kind.value)
    if event.kind is DutiesKind.SYNC:
        state.sync_members[config.chain.sync_period(event.epoch)] = {d["pubkey"]: d for d in mine}
        create_sync_message_duties(state, event.epoch, out)
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
            sign_duty_message(state, randao, [pubkey], out)  # signer mode: our RANDAO partial now
        elif config.signs_own_partials:  # signer mode: our selection proof now (the VC may never ask)
            selection = record(state, DutyId(slot, DutyKind.PREPARE_AGGREGATOR), out)
            index = duty_json.get("validator_index")
            schedule(
                selection, pubkey, {"validator_index": str(index)}, out, known=pubkey in selection.validators
            )
            sign_duty_message(state, selection, [pubkey], out)
    for req in list(state.requests.values()):  # the VC's block requests that came before their duties
        if req.kind is VCRequestKind.BLOCK:  # (a held signing request of a block is not one)
            start_block_request(state, req, out)


MAX_VALIDATORS_PER_COMMITTEE = 2048  # the specs' (phase0 .. fulu)


def duty_problem(kind: DutiesKind, duty: dict[str, Any], chain: ChainConfig) -> str | None:
    """Why a BN's duty of the cluster cannot be scheduled (a field missing or out of its range), or None.
    The node reads these fields later as numbers (committee seats, subcommittees); a bad one must not
    make a step raise."""
    try:
        uint(duty, "validator_index")
        if kind is DutiesKind.SYNC:
            positions = duty.get("validator_sync_committee_indices")
            if not isinstance(positions, list) or not positions:
                return "validator_sync_committee_indices is not a non-empty list"
            if any(uint({"i": p}, "i") >= chain.sync_committee_size for p in positions):
                return "a sync committee index past the committee"
            return None
        uint(duty, "slot")
        if kind is DutiesKind.ATTESTER:
            length = uint(duty, "committee_length")
            if not 0 < length <= MAX_VALIDATORS_PER_COMMITTEE:
                return f"committee_length {length}"
            if uint(duty, "validator_committee_index") >= length:
                return "validator_committee_index past the committee"
            if uint(duty, "committee_index") >= max(1, uint(duty, "committees_at_slot")):
                return "committee_index past committees_at_slot"
    except DataProblem as problem:
        return str(problem)
    return None


def duties_in_epoch(event: DutiesFetched, clock: SlotClock) -> bool:
    slots = range(clock.first_slot(event.epoch), clock.first_slot(event.epoch + 1))
    for duty_json in event.duties:
        try:
            if uint(duty_json, "slot") not in slots:
                return False
        except DataProblem:
            continue
    return True


def create_sync_message_duties(state: NodeState, epoch: int, out: Out) -> None:
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
        # the epoch's first slot (its previous slot may have no sync duty here) and the next slot now,
        # the others a slot ahead (sign_sync_selections)
        if slot == clock.first_slot(epoch) or slot <= clock.slot_at(state.now_ms) + 1:
            sign_sync_selections(state, slot, out)


def sign_sync_selections(state: NodeState, slot: int, out: Out) -> None:
    """Signer mode: this node's sync committee selection proofs for `slot`, signed a slot ahead (at
    the previous slot's sync message start), not a whole epoch at once: at an epoch's start that burst
    (every slot and subcommittee of the next epoch) held a RANDAO reveal back by seconds on the devnet."""
    chain = state.config.chain
    members = state.sync_members.get(chain.sync_period(chain.clock.epoch_of(slot)), {})
    if state.config.signs_own_partials and members and fork_at_least(chain, slot, "altair"):
        _sign_sync_selections(state, slot, members, out)


def _sign_sync_selections(state: NodeState, slot: int, members: dict[str, Any], out: Out) -> None:
    chain = state.config.chain
    size = chain.sync_committee_size // chain.sync_committee_subnet_count
    selection = record(state, DutyId(slot, DutyKind.PREPARE_SYNC_CONTRIBUTION), out)
    keys = []
    for pubkey, info in members.items():
        positions = info.get("validator_sync_committee_indices", []) if isinstance(info, dict) else []
        for sub in sorted({int(i) // size for i in positions if str(i).isascii() and str(i).isdigit()}):
            key = f"{pubkey}/{sub}"
            known = key in selection.validators and selection.validators[key].info is not None
            schedule(
                selection, key, {"validator_index": str(info.get("validator_index", ""))}, out, known=known
            )
            keys.append(key)
    sign_duty_message(state, selection, keys, out)


def on_head(state: NodeState, event: HeadChanged, out: Out) -> None:
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


def on_epoch(state: NodeState, out: Out) -> None:
    clock = state.config.chain.clock
    epoch = clock.epoch_at(state.now_ms)
    fetch_duties(state, epoch, out)
    fetch_duties(state, epoch + 1, out, force=True)
    if state.sync_members:
        create_sync_message_duties(state, epoch + 1, out)
    # bounded memory: forget finished duties a slot after their deadline, and old slashing records
    horizon = state.now_ms - clock.slot_ms
    for duty, rec in list(state.duties.items()):
        if rec.phase is Phase.DONE and clock.duty_deadline_ms(duty) < horizon:
            take_buffered(state, rec)  # (empty since its deadline: kept exact whatever made it DONE)
            del state.duties[duty]
    state.finished = {(d, k) for d, k in state.finished if d.slot >= clock.first_slot(epoch - 2)}
    state.slashing.prune(epoch - KEEP_EPOCHS, clock.first_slot(epoch - KEEP_EPOCHS))
    for key in [k for k in state.fetched if k[1] < epoch - 2]:
        del state.fetched[key]
    for period in [p for p in state.sync_members if p < state.config.chain.sync_period(epoch) - 1]:
        del state.sync_members[period]
    schedule_epoch_timer(state, out)


def on_duties_failed(state: NodeState, event: DutiesFailed, out: Out) -> None:
    metric(out, "bn_errors", what="duties", kind=event.kind.value)
    log(out, "warn", "could not fetch duties", kind=event.kind.value, epoch=event.epoch, error=event.error)
