"""The validator client's side: requests for data to sign, and the partial signatures it posts.

Decides what the VC gets and when: decided data only once it is persisted (`may_serve`); a request
for data not yet decided is held (bounded) until it is, or until its deadline, then answered with a
Beacon-API error. Decides which posted signatures are accepted: a partial must verify against THIS
node's share of the validator AND be over the signing root of the decided data (a VC that signed
anything else is refused, counted, and named in the duty's outcome). Accepted partials are
broadcast to the peers in one message per duty and VC request.
"""

from __future__ import annotations

from typing import Any

from covalidator.model.cluster.config import unhex
from covalidator.model.crypto import bls
from covalidator.model.duty import CONSENSUS_KINDS, REQUEST_DUTY, SELECTION_OF, DutyId, DutyKind
from covalidator.model.eth.beacon_data import (
    DataProblem,
    bitlist_positions,
    block_of,
    fork_at_least,
    root_of,
    uint,
)
from covalidator.model.eth.signing import Kind
from covalidator.model.node.events import (
    PartialSignature,
    PassToBN,
    SubmissionKind,
    TimerPurpose,
    VCRequest,
    VCRequestKind,
    VCSubmission,
)
from covalidator.model.node.outcome import finish
from covalidator.model.node.parsig import broadcast_own, try_combine
from covalidator.model.node.phases import DutyRecord, Phase, ValidatorDuty
from covalidator.model.node.state import (
    HeldRequest,
    NodeState,
    Out,
    combined_randao,
    error,
    metric,
    record,
    reply,
    schedule,
    timer,
    too_far_ahead,
    validator,
)
from covalidator.model.outcomes import Reason

# ---- requests -----------------------------------------------------------------------------------------


def on_vc_request(state: NodeState, event: VCRequest, out: Out) -> None:
    config = state.config
    params = event.params if isinstance(event.params, dict) else {}
    try:
        if event.kind in (VCRequestKind.BEACON_COMMITTEE_SELECTIONS, VCRequestKind.SYNC_COMMITTEE_SELECTIONS):
            items = params.get("selections")
            if not isinstance(items, list) or not items:
                raise DataProblem("no selections")
            slot = uint(items[0], "slot")
        else:
            slot = uint(params, "slot")
    except DataProblem as problem:
        reply(out, event.request_id, 400, error(400, str(problem)))
        return
    if len(state.requests) >= config.limits.held_requests:
        metric(out, "vc_requests_refused", cause="too_many_held")
        reply(out, event.request_id, 503, error(503, "too many requests waiting for consensus"))
        return
    ahead = too_far_ahead(state, REQUEST_DUTY[event.kind], slot)
    if ahead is not None:
        metric(out, "vc_requests_refused", cause="future_slot")
        reply(out, event.request_id, 400, error(400, f"slot {slot} is more than {ahead} slots ahead"))
        return
    duty = DutyId(slot, REQUEST_DUTY[event.kind])
    selection = SELECTION_OF.get(event.kind)
    if selection is not None and DutyId(slot, selection) not in state.duties:
        # No selection proofs were combined for this slot: the VC is not in distributed mode (it
        # decided "aggregator" from its own partial proof). Holding the request would only stall
        # the VC past its next slot; the BN's unsigned aggregate is passed through (PassToBN), and
        # what the VC signs with it is refused at submission (selection_proof_not_combined).
        metric(out, "vc_requests_passed_through", kind=event.kind.value)
        out.append(PassToBN(event.request_id))
        return
    clock = config.chain.clock
    wait = config.limits.vc_request_wait_ms or clock.slot_ms * 9 // 10
    deadline = min(clock.duty_deadline_ms(duty), state.now_ms + wait)
    if deadline <= state.now_ms:
        reply(out, event.request_id, 400, error(400, f"slot {slot} is too old"))
        return
    req = HeldRequest(event.request_id, event.kind, params, duty, deadline)
    state.requests[req.request_id] = req
    timer(out, TimerPurpose.REQUEST, deadline, duty, request_id=req.request_id)
    if event.kind is VCRequestKind.BLOCK:
        start_block_request(state, req, out)
    elif event.kind in (VCRequestKind.BEACON_COMMITTEE_SELECTIONS, VCRequestKind.SYNC_COMMITTEE_SELECTIONS):
        start_selections(state, req, out)
    if req.request_id in state.requests:
        answer(state, req, out)


def answer_held(state: NodeState, duty: DutyId, out: Out) -> None:
    """The duty moved (persisted, or done): answer what its held requests can now get."""
    for req in [r for r in state.requests.values() if r.duty == duty and r.sign is None]:
        answer(state, req, out)


def on_request_deadline(state: NodeState, request_id: int, out: Out) -> None:
    req = state.requests.pop(request_id, None)
    if req is not None:
        metric(out, "vc_requests_expired", kind=req.kind.value)
        reason = _why_not(state, req)
        reply(out, request_id, 503, error(503, f"no data for {req.duty} before its deadline: {reason}"))


def _why_not(state: NodeState, req: HeldRequest) -> str:
    rec = state.duties.get(req.duty)
    if rec is None:
        return "this cluster has no such duty (duties not fetched yet, or none for this slot)"
    return {
        Phase.SCHEDULED: "the duty has not started",
        Phase.WAITING: "waiting for an earlier duty of the validator or for the RANDAO reveal",
        Phase.CONSENSUS: "the co-validators have not decided yet",
        Phase.PERSISTING: "the decided value is being written to the slashing DB",
        Phase.SIGNING: "no decided data matches the request",
        Phase.DONE: "the duty ended",
    }[rec.phase]


def _done(state: NodeState, req: HeldRequest, out: Out, status: int, body: Any, version: str = "") -> None:
    state.requests.pop(req.request_id, None)
    reply(out, req.request_id, status, body, version)


def answer(state: NodeState, req: HeldRequest, out: Out) -> None:
    rec = state.duties.get(req.duty)
    if req.kind in (VCRequestKind.BEACON_COMMITTEE_SELECTIONS, VCRequestKind.SYNC_COMMITTEE_SELECTIONS):
        _answer_selections(state, req, out)
        return
    if rec is None:
        return
    if rec.phase is Phase.DONE and not any(vd.data is not None for vd in rec.validators.values()):
        _done(state, req, out, 503, error(503, f"{rec.id} ended without decided data"))
        return
    if not state.config.guards.may_serve(rec.phase):
        return
    params = req.params
    fork = state.config.chain.fork_name(req.duty.slot)
    for vd in rec.validators.values():
        if vd.data is None:
            continue
        info = vd.info or {}
        if req.kind is VCRequestKind.ATTESTATION_DATA:
            if fork_at_least(state.config.chain, req.duty.slot, "electra") or str(
                info.get("committee_index")
            ) == str(params.get("committee_index")):
                _done(state, req, out, 200, {"data": vd.data})
                return
        elif req.kind is VCRequestKind.BLOCK:
            proposal = vd.data
            _done(
                state,
                req,
                out,
                200,
                {
                    "version": proposal["version"],
                    "execution_payload_blinded": bool(proposal.get("blinded")),
                    "execution_payload_value": proposal.get("execution_payload_value", "0"),
                    "consensus_block_value": proposal.get("consensus_block_value", "0"),
                    "data": proposal["block"],
                },
                proposal["version"],
            )
            return
        elif req.kind is VCRequestKind.AGGREGATE_ATTESTATION:
            if info.get("attestation_data_root") == params.get("attestation_data_root"):
                _done(state, req, out, 200, {"version": fork, "data": vd.data}, fork)
                return
        elif (
            req.kind is VCRequestKind.SYNC_CONTRIBUTION
            and str(info.get("subcommittee_index")) == str(params.get("subcommittee_index"))
            and vd.data.get("beacon_block_root") == params.get("beacon_block_root")
        ):
            _done(state, req, out, 200, {"data": vd.data})
            return
    refused = [vd for vd in rec.validators.values() if vd.reason is Reason.SLASHING_REFUSED]
    if refused and rec.phase is Phase.SIGNING:
        _done(
            state, req, out, 500, error(500, "the decided data is slashable against this node's slashing DB")
        )
    elif rec.phase is Phase.DONE:
        _done(state, req, out, 503, error(503, f"{rec.id} ended; no decided data matches the request"))


# ---- block requests: this VC's RANDAO partial comes with the request --------------------------------


def start_block_request(state: NodeState, req: HeldRequest, out: Out) -> None:
    """Verify the VC's partial RANDAO reveal and share it; re-run when duties arrive."""
    if req.randao_shared:
        return
    rec = state.duties.get(DutyId(req.duty.slot, DutyKind.PROPOSER))
    if rec is None or not rec.validators:
        return  # duties not known yet: node/schedule.py calls us again when they arrive
    (pubkey,) = list(rec.validators)[:1]
    epoch = state.config.chain.clock.epoch_of(req.duty.slot)
    message = {"epoch": str(epoch)}
    reveal = req.params.get("randao_reveal")
    try:
        root = root_of(state.config.chain, Kind.RANDAO_REVEAL, message)
        if isinstance(reveal, str) and (
            reveal == combined_randao(state, req.duty.slot)
            or bls.verify(unhex(pubkey), unhex(root), unhex(reveal))
        ):
            req.randao_shared = True  # signer mode: the group reveal our signer API gave the VC
            return
        valid = isinstance(reveal, str) and bls.verify(
            unhex(state.config.my_share(pubkey)), unhex(root), unhex(reveal)
        )
    except (DataProblem, ValueError, bls.BlsError):
        valid = False
    if not valid:
        metric(out, "vc_partial_refused", cause="invalid_randao_reveal")
        _done(
            state,
            req,
            out,
            400,
            error(400, "randao_reveal is not a valid partial signature of this node's share"),
        )
        return
    req.randao_shared = True
    randao = record(state, DutyId(req.duty.slot, DutyKind.RANDAO), out)
    vd = validator(randao, pubkey)
    if vd.own is None:
        vd.own, vd.own_message = (root, reveal), message
        broadcast_own(state, randao.id, [PartialSignature(pubkey, root, reveal, message)], out)
        try_combine(state, randao, [pubkey], out)


# ---- selection proofs (the DV endpoints: beacon_committee_selections, sync_committee_selections) ------


def start_selections(state: NodeState, req: HeldRequest, out: Out) -> None:
    sync = req.kind is VCRequestKind.SYNC_COMMITTEE_SELECTIONS
    items: list[tuple[DutyId, str]] = []
    failures: list[dict[str, Any]] = []
    own: dict[DutyId, list[PartialSignature]] = {}
    parsed: list[tuple[int, int, str, str, str, Any, dict[str, str]]] = []
    for i, item in enumerate(req.params["selections"]):
        try:
            slot = uint(item, "slot")
            pubkey = state.by_index.get(uint(item, "validator_index"))
            if pubkey is None:
                raise DataProblem("not a validator of this cluster")
            message: dict[str, str] = {"slot": str(slot)}
            key = pubkey
            if sync:
                message["subcommittee_index"] = str(uint(item, "subcommittee_index"))
                key = f"{pubkey}/{message['subcommittee_index']}"
            kind = Kind.SYNC_COMMITTEE_SELECTION_PROOF if sync else Kind.AGGREGATION_SLOT
            root = root_of(state.config.chain, kind, message)
        except (DataProblem, ValueError, bls.BlsError) as problem:
            failures.append({"index": i, "message": str(problem)})
            continue
        parsed.append((i, slot, pubkey, key, root, item.get("selection_proof"), message))
    # every proof of the request in one batch check (a slot's proofs share their signing root)
    bad = _invalid_own(state, [(pubkey, root, proof) for _, _, pubkey, _, root, proof, _ in parsed])
    for position, (i, slot, pubkey, key, root, proof, message) in enumerate(parsed):
        if position in bad:
            failures.append(
                {
                    "index": i,
                    "message": "selection_proof is not a valid partial signature of this node's share",
                }
            )
            continue
        duty = DutyId(slot, DutyKind.PREPARE_SYNC_CONTRIBUTION if sync else DutyKind.PREPARE_AGGREGATOR)
        rec = record(state, duty, out)
        vd = schedule(rec, key, {"validator_index": str(state.indices[pubkey])}, out)
        if vd.own is None:
            vd.own, vd.own_message = (root, proof), message
            own.setdefault(duty, []).append(PartialSignature(key, root, proof, message))
        items.append((duty, key))
    if failures:
        failures.sort(key=lambda failure: int(failure["index"]))
        metric(out, "vc_partial_refused", cause="invalid_selection_proof")
        _done(state, req, out, 400, error(400, "some selection proofs were refused", failures))
        return
    req.selections = items
    req.selection_duties = frozenset(duty for duty, _ in items)
    for duty, partials in own.items():
        broadcast_own(state, duty, partials, out)
        try_combine(state, state.duties[duty], [p.pubkey for p in partials], out)


def answer_selections(state: NodeState, duty: DutyId, out: Out) -> None:
    for req in [r for r in state.requests.values() if r.selections]:
        if duty in req.selection_duties:
            _answer_selections(state, req, out)


def _answer_selections(state: NodeState, req: HeldRequest, out: Out) -> None:
    items = req.selections
    if not items:
        return
    # still waiting? (checked per combination, so this is the common case: no copies). Combinations
    # are never undone, so the items before `selections_combined` need no second look.
    while req.selections_combined < len(items):
        duty, key = items[req.selections_combined]
        if key not in state.duties[duty].combined:
            return
        req.selections_combined += 1
    combined = [
        {**original, "selection_proof": state.duties[duty].combined[key]}
        for (duty, key), original in zip(items, req.params["selections"], strict=False)
    ]
    _done(state, req, out, 200, {"data": combined})


# ---- submissions ------------------------------------------------------------------------------------


def on_vc_submission(state: NodeState, event: VCSubmission, out: Out) -> None:
    failures: list[dict[str, Any]] = []
    own: dict[DutyId, list[PartialSignature]] = {}
    accepted: list[tuple[int, DutyId, str, str, Any, Any]] = []
    seats: Seats = {}
    for i, obj in enumerate(event.objects):
        try:
            item = _accept(state, event.kind, obj, out, seats)
        except DataProblem as problem:
            failures.append({"index": i, "message": str(problem)})
            continue
        duty, key, _, signature, _ = item
        if signature in state.duties[duty].group_signed.get(key, {}).values():
            # signer mode: the group signature our signer API gave the VC, submitted when it combined
            metric(out, "vc_submissions_already_combined", kind=duty.kind.name.lower())
            continue
        accepted.append((i, *item))
    # every partial of the submission in one batch check (bisection only if one is invalid)
    bad = _invalid_own(
        state, [(state.duties[d].validators[k].pubkey, root, sig) for _, d, k, root, sig, _ in accepted]
    )
    for position, (i, duty, key, root, signature, message) in enumerate(accepted):
        if position in bad:
            failures.append({"index": i, "message": NOT_OWN_PARTIAL})
            continue
        rec = state.duties[duty]
        vd = rec.validators[key]
        if vd.own is None:
            vd.own, vd.own_message = (root, signature), message
            own.setdefault(duty, []).append(
                PartialSignature(key, root, signature, message if duty.kind not in CONSENSUS_KINDS else None)
            )
    for duty, partials in own.items():
        broadcast_own(state, duty, partials, out)
        try_combine(state, state.duties[duty], [p.pubkey for p in partials], out)
    if failures:
        failures.sort(key=lambda failure: int(failure["index"]))
        metric(out, "vc_partial_refused", cause=event.kind.value, count=len(failures))
        reply(out, event.request_id, 400, error(400, "some signatures were refused", failures))
    else:
        reply(out, event.request_id, 200, {})


NOT_OWN_PARTIAL = "signature is not a valid partial signature of this node's share over the decided data"


def _invalid_own(state: NodeState, items: list[tuple[str, str, Any]]) -> set[int]:
    """Positions of the (group pubkey, signing root, signature) items that are not valid partial
    signatures of this node's share: one batch check for all, bisection only when one is invalid."""
    bad: set[int] = set()
    signed: list[bls.SignedItem] = []
    positions: list[int] = []
    for position, (pubkey, root, signature) in enumerate(items):
        try:
            if not isinstance(signature, str):
                raise ValueError("not a string")
            share = unhex(state.config.my_share(pubkey))
            signed.append(bls.SignedItem(share, unhex(root), unhex(signature)))
            positions.append(position)
        except (ValueError, bls.BlsError):
            bad.add(position)
    if signed:
        bad |= {positions[p] for p in bls.find_invalid(signed)}
    return bad


def _record_of(state: NodeState, duty: DutyId) -> DutyRecord:
    """The duty's record, or DataProblem: a posted object for a duty this cluster does not have."""
    rec = state.duties.get(duty)
    if rec is None:
        raise DataProblem(f"no {duty} duty in this cluster")
    return rec


def _decided(state: NodeState, duty: DutyId, find: Any) -> tuple[DutyRecord, str]:
    rec = _record_of(state, duty)
    for key, vd in rec.validators.items():
        if find(key, vd):
            return _persisted(state, rec, key)
    raise DataProblem(f"no validator of this cluster matches in {duty}")


def _persisted(state: NodeState, rec: DutyRecord, key: str) -> tuple[DutyRecord, str]:
    """(rec, key) if the validator's decided data may be served (persisted), else DataProblem: the
    one check both lookups of a posted object's duty (`_decided`, `_decided_seat`) go through."""
    if state.config.guards.may_serve(rec.phase) and rec.validators[key].data is not None:
        return rec, key
    raise DataProblem(f"{rec.id} has no persisted decided data (phase {rec.phase.value})")


def _signed_by_own_share(
    state: NodeState, rec: DutyRecord, key: str, root: str | None, signature: Any
) -> bool:
    """Whether `signature` is this node's share signature over `root` (the signing root of what was
    posted): only a VC holding the share can make one, so only then may a posted object change a
    duty's state. An unsigned or foreign object is refused with no state change."""
    return root is not None and not _invalid_own(state, [(rec.validators[key].pubkey, root, signature)])


def _root(chain: Any, kinds: tuple[Kind, ...], message: Any) -> str | None:
    """The signing root of a posted message as the first of `kinds` that reads it, or None."""
    for kind in kinds:
        try:
            return root_of(chain, kind, message)
        except (DataProblem, KeyError, TypeError, ValueError, AttributeError):
            continue
    return None


def _refuse_other_data(
    state: NodeState, rec: DutyRecord, key: str, out: Out, root: str | None, signature: Any
) -> None:
    if not _signed_by_own_share(state, rec, key, root, signature):
        metric(out, "vc_partial_refused", cause="other_data_not_signed")
        raise DataProblem(
            "data other than what the cluster decided, and not signed by this node's share: ignored"
        )
    metric(out, "vc_partial_refused", cause="signed_other_data")
    finish(state, rec, key, False, out, Reason.VC_SIGNED_OTHER_DATA)
    raise DataProblem("the VC signed data other than what the cluster decided")


def _submitted_duty(state: NodeState, duty: DutyId, key: str, what: str) -> tuple[DutyRecord, ValidatorDuty]:
    """The record and validator entry of a scheduled duty a posted object names. A submission never
    creates one: a local process posting objects for arbitrary slots or validators leaves no state."""
    rec = state.duties.get(duty)
    vd = rec.validators.get(key) if rec is not None else None
    if rec is None or vd is None or vd.info is None:
        raise DataProblem(f"no {what} duty of this cluster at {duty}")
    return rec, vd


Seats = dict[DutyId, dict[tuple[str, str], str]]


def _decided_seat(
    state: NodeState, duty: DutyId, seat: tuple[str, str], seats: Seats
) -> tuple[DutyRecord, str]:
    """`_decided` for the validator at a (committee index, position in committee) seat: the first in
    the record's order, as `_decided` finds it, from an index built once per submission (`seats`)
    instead of a scan of the duty's validators per posted attestation."""
    rec = _record_of(state, duty)
    index = seats.get(duty)
    if index is None:
        index = seats[duty] = {}
        for k, vd in rec.validators.items():
            info = vd.info or {}
            index.setdefault(
                (str(info.get("committee_index")), str(info.get("validator_committee_index"))), k
            )
    key = index.get(seat)
    if key is None:
        raise DataProblem(f"no validator of this cluster matches in {duty}")
    return _persisted(state, rec, key)


def _accept(
    state: NodeState, kind: SubmissionKind, obj: Any, out: Out, seats: Seats | None = None
) -> tuple[DutyId, str, str, Any, Any]:
    """(duty, validator key, root, signature, message) of one posted object, or DataProblem.
    `seats`: the submission's index of attesters by seat (filled on first use)."""
    seats = {} if seats is None else seats
    chain = state.config.chain
    if not isinstance(obj, dict):
        raise DataProblem("not a JSON object")
    if kind is SubmissionKind.ATTESTATIONS:
        data = obj.get("data")
        slot = uint(obj, "data", "slot")
        duty = DutyId(slot, DutyKind.ATTESTER)
        if "attester_index" in obj:
            pubkey = state.by_index.get(uint(obj, "attester_index"))
            rec, key = _decided(state, duty, lambda k, vd: k == pubkey)
        else:
            _, positions = bitlist_positions(obj.get("aggregation_bits", ""))
            if len(positions) != 1:
                raise DataProblem("a partial attestation must have exactly one aggregation bit")
            committee = str(uint(obj, "data", "index"))
            rec, key = _decided_seat(state, duty, (committee, str(positions[0])), seats)
        if rec.validators[key].data != data:
            root = _root(chain, (Kind.ATTESTATION,), data)
            _refuse_other_data(state, rec, key, out, root, obj.get("signature"))
    elif kind is SubmissionKind.BLOCK:
        signed = obj.get("signed_block", obj)
        block = signed.get("message") if isinstance(signed, dict) else None
        slot = uint(block, "slot")
        rec, key = _decided(state, DutyId(slot, DutyKind.PROPOSER), lambda k, vd: True)
        if block_of(rec.validators[key].data) != block:
            root = _root(chain, (Kind.BLOCK, Kind.BLINDED_BLOCK), block)
            _refuse_other_data(state, rec, key, out, root, signed.get("signature"))
        obj = signed
    elif kind in (SubmissionKind.AGGREGATE_AND_PROOFS, SubmissionKind.CONTRIBUTION_AND_PROOFS):
        message = obj.get("message")
        if not isinstance(message, dict):
            raise DataProblem("missing message")
        aggregate = kind is SubmissionKind.AGGREGATE_AND_PROOFS
        inner = message.get("aggregate" if aggregate else "contribution")
        slot = uint(inner, "data", "slot") if aggregate else uint(inner, "slot")
        pubkey = state.by_index.get(uint(message, "aggregator_index"))
        if pubkey is None:
            raise DataProblem("aggregator_index is not a validator of this cluster")
        key = pubkey if aggregate else f"{pubkey}/{uint(inner, 'subcommittee_index')}"
        duty = DutyId(slot, DutyKind.AGGREGATOR if aggregate else DutyKind.SYNC_CONTRIBUTION)
        rec, vd = _submitted_duty(state, duty, key, "aggregation" if aggregate else "sync contribution")
        kinds = (Kind.AGGREGATE_AND_PROOF,) if aggregate else (Kind.CONTRIBUTION_AND_PROOF,)
        if (vd.info or {}).get("selection_proof") != message.get("selection_proof"):
            if not _signed_by_own_share(state, rec, key, _root(chain, kinds, message), obj.get("signature")):
                metric(out, "vc_partial_refused", cause="other_data_not_signed")
                raise DataProblem(
                    "selection_proof is not the cluster's combined proof, and not signed: ignored"
                )
            metric(out, "vc_partial_refused", cause="selection_proof_not_combined")
            finish(state, rec, key, False, out, Reason.SELECTION_PROOF_NOT_COMBINED)
            raise DataProblem(
                "selection_proof is not the cluster's combined proof: run the VC in distributed mode "
                "(it must call the beacon_committee_selections / sync_committee_selections endpoints)"
            )
        if not state.config.guards.may_serve(rec.phase) or vd.data is None:
            raise DataProblem(f"{duty} has no persisted decided data")
        if vd.data != inner:
            _refuse_other_data(state, rec, key, out, _root(chain, kinds, message), obj.get("signature"))
    elif kind is SubmissionKind.SYNC_COMMITTEE_MESSAGES:
        slot = uint(obj, "slot")
        pubkey = state.by_index.get(uint(obj, "validator_index"))
        period = chain.sync_period(chain.clock.epoch_of(slot))
        if pubkey is None or pubkey not in state.sync_members.get(period, {}):
            raise DataProblem("validator_index is not a sync committee member of this cluster")
        rec, _ = _submitted_duty(state, DutyId(slot, DutyKind.SYNC_MESSAGE), pubkey, "sync committee")
        if rec.phase is Phase.DONE:
            raise DataProblem(f"{rec.id} already ended")
        key = pubkey
        message = {k: obj.get(k) for k in ("slot", "beacon_block_root", "validator_index")}
        root = root_of(chain, Kind.SYNC_COMMITTEE_MESSAGE, message)
        return rec.id, key, root, obj.get("signature"), message
    else:
        raise DataProblem(f"unsupported submission {kind}")
    return rec.id, key, rec.roots[key], obj.get("signature"), None
