"""The Remote Signing API's requests (signer mode): what the VC may get signed, and when.

In signer mode the validator client holds no key: it asks this node to sign every message, through
the Remote Signing (Web3Signer) API, and gets the cluster's GROUP signature. Decides, per
`SignRequest`, whether the request names something the cluster signs and what the VC gets:

  404  the identifier is not a validator of this cluster;
  400  malformed: an unknown type, a message that does not parse, a `fork_info` that is not this
       chain's fork at the message's epoch, a `signingRoot` other than the one we compute from the
       object (we never sign a root we did not compute);
  412  not signable: other than what the cluster decided, refused by the slashing DB, a duty this
       validator does not have, a type the cluster does not sign here (DEPOSIT: deposits come from
       the DKG or create-cluster), or no group signature by the duty's deadline;
  200  {"signature": the group signature}: only once M partials over the request's root were
       combined and verified against the group key (node/parsig.py).

What the object must be, per type:
  ATTESTATION, BLOCK_V2 (a full block before bellatrix, a header from bellatrix on: the same root),
  AGGREGATE_AND_PROOF, SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF: exactly the value the cluster decided
    and persisted for this validator's duty (its signing root is the decided one; an aggregation's
    message carries the cluster's combined selection proof). Checked by `Guards.may_release`, the
    function theorem signer_safety proves things about.
  AGGREGATION_SLOT, SYNC_COMMITTEE_SELECTION_PROOF: the same message on every node (no consensus),
    for a duty this validator has (an attester duty at that slot; sync committee membership with
    that subcommittee).
  RANDAO_REVEAL: the epoch of a known proposer duty of the validator, or the current epoch.
  SYNC_COMMITTEE_MESSAGE: any block root the VC chooses (up to `Limits.sync_roots` per slot; no
    slashing condition covers them); partials are grouped by root, and the node co-signs a root more
    peers than may be Byzantine signed (`Guards.may_cosign`), so co-validators whose VCs saw different
    heads each still get a group signature over their own root.

A request that passes is held (bounded, like the VC's data requests) until the group signature exists
or its deadline. This node's own partial (node/parsig.py `sign_own`) is signed by the runtime, which
holds the share keys; the model never sees a secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from covalidator.model.cluster.config import hex0x
from covalidator.model.duty import CONSENSUS_KINDS, DutyId, DutyKind
from covalidator.model.eth.beacon_data import DataProblem, root_of, uint
from covalidator.model.eth.signing import Kind, SigningError, message_epoch
from covalidator.model.node.events import SignRequest, TimerPurpose, VCRequestKind
from covalidator.model.node.parsig import many_roots, rebroadcast_own, sign_own, signed_roots
from covalidator.model.node.phases import Phase
from covalidator.model.node.state import (
    HeldRequest,
    NodeState,
    Out,
    error,
    metric,
    on_duty,
    record,
    reply,
    timer,
    too_far_ahead,
    validator,
)
from covalidator.model.outcomes import Reason

# The Remote Signing API's types, and the one among them covalidator refuses by design.
NOT_SIGNED_HERE = {
    "DEPOSIT": "covalidator does not sign deposits: deposit data comes from the DKG or create-cluster",
}


class Refused(Exception):
    def __init__(self, status: int, cause: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.cause, self.reason = status, cause, reason


@dataclass(frozen=True)
class Target:
    """What a request asks for: this validator key's signature in this duty, over `root`."""

    duty: DutyId
    key: str  # the key in the duty record: group pubkey, or "pubkey/subcommittee"
    kind: Kind
    root: str  # the signing root we computed from the request's object
    epoch: int  # the epoch whose fork signs it (`signing.message_epoch`)
    message: Any = None  # duties without consensus: the message the partials carry


# ---- parsing ----------------------------------------------------------------------------------------


def _field(body: dict[str, Any], name: str) -> Any:
    value = body.get(name)
    if not isinstance(value, dict):
        raise Refused(400, "malformed", f"missing object {name!r} for type {body.get('type')}")
    return value


def _fork_field(fork: dict[str, Any], snake: str) -> Any:
    camel = snake.split("_")[0] + "".join(w.title() for w in snake.split("_")[1:])
    return fork.get(snake, fork.get(camel))


def check_fork_info(state: NodeState, fork_info: Any, epoch: int) -> None:
    """`fork_info` must be this chain's (genesis validators root) and name the fork version in force at
    the message's epoch, read as the API defines it: `previous_version` before `fork.epoch`, else
    `current_version`. (Lodestar sends the message's own epoch as `fork.epoch`, not the fork's.)"""
    schedule = state.config.chain.schedule
    if not isinstance(fork_info, dict) or not isinstance(fork_info.get("fork"), dict):
        raise Refused(400, "malformed", "missing fork_info.fork")
    root = fork_info.get("genesis_validators_root", fork_info.get("genesisValidatorsRoot"))
    ours = hex0x(schedule.genesis_validators_root)
    if not isinstance(root, str) or root.lower() != ours:
        raise Refused(
            400, "wrong_chain", f"fork_info.genesis_validators_root {root} is not this chain's ({ours})"
        )
    fork = fork_info["fork"]
    try:
        fork_epoch = int(str(_fork_field(fork, "epoch")))
        ours_at = schedule.fork_at_epoch(epoch)
    except ValueError as problem:
        raise Refused(400, "wrong_fork", f"fork_info.fork.epoch: {problem}") from None
    claimed = str(_fork_field(fork, "previous_version" if epoch < fork_epoch else "current_version")).lower()
    if claimed != hex0x(ours_at.version):
        raise Refused(
            400,
            "wrong_fork",
            f"fork_info.fork gives version {claimed} at epoch {epoch}; this chain's is "
            f"{hex0x(ours_at.version)} ({ours_at.name})",
        )


def _signed(state: NodeState, kind: Kind, message: Any) -> tuple[str, int]:
    """(our signing root of the message, the epoch whose fork signs it)."""
    try:
        root = root_of(state.config.chain, kind, message)
        return root, message_epoch(state.config.chain.schedule, kind, message)
    except (DataProblem, SigningError) as problem:
        raise Refused(400, "malformed", str(problem)) from None


def _slot(obj: Any, *path: str) -> int:
    try:
        return uint(obj, *path)
    except DataProblem as problem:
        raise Refused(400, "malformed", str(problem)) from None


def parse(state: NodeState, identifier: str, body: Any) -> Target:
    """The request's target, or `Refused` with the API's status and a named reason."""
    config = state.config
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        raise Refused(400, "malformed", "the body must be a JSON object with a string 'type'")
    group = identifier.lower() if isinstance(identifier, str) else ""
    if group not in config.by_group:
        mine = group in config.group_of_my_share
        raise Refused(
            404,
            "unknown_key",
            f"{identifier} is this node's SHARE key: sign with the validator's group key"
            if mine
            else f"{identifier} is not a validator of this cluster",
        )
    kind_name = body["type"]
    if kind_name in NOT_SIGNED_HERE:
        raise Refused(412, "not_signed_here", NOT_SIGNED_HERE[kind_name])
    clock = config.chain.clock
    target = _target(state, group, kind_name, body)
    epoch = (
        clock.epoch_of(target.duty.slot)
        if target.kind is not Kind.RANDAO_REVEAL
        else _slot(body, "randao_reveal", "epoch")
    )
    check_fork_info(state, body.get("fork_info"), epoch)
    claimed = body.get("signingRoot", body.get("signing_root"))
    if claimed is not None and (not isinstance(claimed, str) or claimed.lower() != target.root):
        raise Refused(
            400,
            "signing_root_mismatch",
            f"signingRoot {claimed} is not the object's signing root {target.root}",
        )
    return target


def _target(state: NodeState, group: str, kind_name: str, body: dict[str, Any]) -> Target:
    duty_kind, kind, key, message, carried = _shape(state, group, kind_name, body)
    root, epoch = _signed(state, kind, message)
    slot = (
        state.config.chain.clock.first_slot(epoch)
        if kind is Kind.RANDAO_REVEAL
        else _message_slot(kind, message)
    )
    if duty_kind is DutyKind.RANDAO:
        slot = _randao_slot(state, group, epoch)
    return Target(DutyId(slot, duty_kind), key, kind, root, epoch, message if carried else None)


def _message_slot(kind: Kind, message: Any) -> int:
    if kind is Kind.ATTESTATION:
        return _slot(message, "slot")
    if kind is Kind.AGGREGATE_AND_PROOF:
        return _slot(message, "aggregate", "data", "slot")
    if kind is Kind.CONTRIBUTION_AND_PROOF:
        return _slot(message, "contribution", "slot")
    return _slot(message, "slot")


def _shape(
    state: NodeState, group: str, kind_name: str, body: dict[str, Any]
) -> tuple[DutyKind, Kind, str, Any, bool]:
    """(duty kind, signing kind, key in the duty record, the message signed, whether partials carry it)."""
    if kind_name == "ATTESTATION":
        return DutyKind.ATTESTER, Kind.ATTESTATION, group, _field(body, "attestation"), False
    if kind_name == "BLOCK":
        return DutyKind.PROPOSER, Kind.BLOCK, group, _field(body, "block"), False
    if kind_name == "BLOCK_V2":
        wrapped = _field(body, "beacon_block")
        if isinstance(wrapped.get("block_header"), dict):
            return DutyKind.PROPOSER, Kind.BLOCK_HEADER, group, wrapped["block_header"], False
        return DutyKind.PROPOSER, Kind.BLOCK, group, _field(wrapped, "block"), False
    if kind_name == "AGGREGATE_AND_PROOF":
        return (
            DutyKind.AGGREGATOR,
            Kind.AGGREGATE_AND_PROOF,
            group,
            _field(body, "aggregate_and_proof"),
            False,
        )
    if kind_name == "SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF":
        message = _field(body, "contribution_and_proof")
        key = f"{group}/{_slot(message, 'contribution', 'subcommittee_index')}"
        return DutyKind.SYNC_CONTRIBUTION, Kind.CONTRIBUTION_AND_PROOF, key, message, False
    if kind_name == "AGGREGATION_SLOT":
        message = {"slot": str(_slot(_field(body, "aggregation_slot"), "slot"))}
        return DutyKind.PREPARE_AGGREGATOR, Kind.AGGREGATION_SLOT, group, message, True
    if kind_name == "SYNC_COMMITTEE_SELECTION_PROOF":
        data = _field(body, "sync_aggregator_selection_data")
        slot, sub = _slot(data, "slot"), _slot(data, "subcommittee_index")
        message = {"slot": str(slot), "subcommittee_index": str(sub)}
        kind = Kind.SYNC_COMMITTEE_SELECTION_PROOF
        return DutyKind.PREPARE_SYNC_CONTRIBUTION, kind, f"{group}/{sub}", message, True
    if kind_name == "SYNC_COMMITTEE_MESSAGE":
        data = _field(body, "sync_committee_message")
        index = state.indices.get(group)
        if index is None:
            raise Refused(412, "no_duty", f"{group} has no validator index yet (not resolved by the BN)")
        message = {
            "slot": str(_slot(data, "slot")),
            "beacon_block_root": data.get("beacon_block_root"),
            "validator_index": str(index),
        }
        return DutyKind.SYNC_MESSAGE, Kind.SYNC_COMMITTEE_MESSAGE, group, message, True
    if kind_name == "RANDAO_REVEAL":
        message = {"epoch": str(_slot(_field(body, "randao_reveal"), "epoch"))}
        return DutyKind.RANDAO, Kind.RANDAO_REVEAL, group, message, True
    raise Refused(400, "malformed", f"unknown type {kind_name!r}")


def _randao_slot(state: NodeState, group: str, epoch: int) -> int:
    """The proposal slot a RANDAO request is for. A VC asks for its reveal in its proposal slot, and a
    validator may propose more than once in an epoch: the earliest of its known proposer duties in
    `epoch` whose reveal is not past its deadline, else, in the current epoch, the current slot."""
    clock = state.config.chain.clock
    for duty, rec in sorted(state.duties.items()):
        if (
            duty.kind is DutyKind.PROPOSER
            and clock.epoch_of(duty.slot) == epoch
            and group in on_duty(rec)
            and clock.duty_deadline_ms(DutyId(duty.slot, DutyKind.RANDAO)) > state.now_ms
        ):
            return duty.slot
    if epoch == clock.epoch_at(state.now_ms):
        return clock.slot_at(state.now_ms)
    raise Refused(
        412, "no_duty", f"no proposer duty of {group} in epoch {epoch}, and it is not the current epoch"
    )


# ---- requests ---------------------------------------------------------------------------------------


def on_sign_request(state: NodeState, event: SignRequest, out: Out) -> None:
    config = state.config
    try:
        if not config.signs_own_partials:
            raise Refused(412, "no_share_keys", "this node holds no share keys (start it with --signer-api)")
        target = parse(state, event.identifier, event.body)
    except Refused as refused:
        metric(out, "signer_requests_refused", cause=refused.cause)
        reply(out, event.request_id, refused.status, error(refused.status, refused.reason))
        return
    ahead = too_far_ahead(state, None, target.duty.slot)
    if ahead is not None:
        metric(out, "signer_requests_refused", cause="future_slot")
        reply(out, event.request_id, 412, error(412, f"{target.duty} is more than {ahead} slots ahead"))
        return
    if len(state.requests) >= config.limits.held_requests:
        metric(out, "signer_requests_refused", cause="too_many_held")
        reply(out, event.request_id, 503, error(503, "too many requests waiting for the co-validators"))
        return
    clock = config.chain.clock
    wait = config.limits.vc_request_wait_ms or clock.slot_ms * 9 // 10
    deadline = min(clock.duty_deadline_ms(target.duty), state.now_ms + wait)
    if deadline <= state.now_ms:
        metric(out, "signer_requests_refused", cause="too_old")
        reply(out, event.request_id, 412, error(412, f"{target.duty} is past its deadline"))
        return
    metric(out, "signer_requests", kind=target.kind.value)
    req = HeldRequest(
        event.request_id, VCRequestKind.SIGN, event.identifier, target.duty, deadline, sign=target
    )
    state.requests[req.request_id] = req
    timer(out, TimerPurpose.REQUEST, deadline, target.duty, request_id=req.request_id)
    answer(state, req, out)
    if req.request_id in state.requests:  # still waiting: peers may have missed our partial
        rebroadcast_own(state, target.duty, target.key, out)


def answer_held(state: NodeState, duty: DutyId, out: Out) -> None:
    for req in [r for r in state.requests.values() if r.sign is not None and r.duty == duty]:
        answer(state, req, out)


def answer_all(state: NodeState, out: Out) -> None:
    """Duties arrived: requests waiting to learn whether their validator has the duty may move."""
    for req in [r for r in state.requests.values() if r.sign is not None]:
        answer(state, req, out)


def _done(state: NodeState, req: HeldRequest, out: Out, status: int, body: Any, cause: str = "") -> None:
    state.requests.pop(req.request_id, None)
    if status != 200:
        metric(out, "signer_requests_refused", cause=cause)
    reply(out, req.request_id, status, body)


def answer(state: NodeState, req: HeldRequest, out: Out) -> None:
    """Move a held request on: contribute this node's partial when it may, answer with the group
    signature once it exists, refuse when it never can; otherwise keep waiting."""
    if req.request_id not in state.requests:
        return  # answered already, by a signal of the same step
    target: Target = req.sign
    if target.duty.kind in CONSENSUS_KINDS:
        _answer_decided(state, req, target, out)
        return
    if not _has_duty(state, target):
        return  # the duty may still be fetched; at the deadline the request is refused
    rec = record(state, target.duty, out)
    vd = validator(rec, target.key)
    signed = signed_roots(vd) | state.signing.get((target.duty, target.key), set())
    if target.root not in signed and signed and not many_roots(target.duty.kind):
        _refuse(
            state, req, out, f"this node already signed another message for {target.duty}", "other_message"
        )
        return
    if target.root not in signed and len(signed) >= state.config.limits.sync_roots:
        _refuse(
            state, req, out, f"this node already signed {len(signed)} block roots for {target.duty}", "roots"
        )
        return
    sign_own(state, rec, [(target.key, target.root, target.message)], out)
    _answer_if_combined(state, req, rec, target, out)


def _refuse(state: NodeState, req: HeldRequest, out: Out, reason: str, cause: str) -> None:
    _done(state, req, out, 412, error(412, reason), cause)


def _answer_if_combined(state: NodeState, req: HeldRequest, rec: Any, target: Target, out: Out) -> None:
    """Answer with the cluster's group signature over exactly the requested signing root, once combined."""
    combined = rec.group_signed.get(target.key, {}).get(target.root)
    if combined is not None:
        _done(state, req, out, 200, {"signature": combined})


def _has_duty(state: NodeState, target: Target) -> bool:
    """A duty without consensus must be one this validator has."""
    group = target.key.split("/", 1)[0]
    kind = target.duty.kind
    chain = state.config.chain
    if kind is DutyKind.PREPARE_AGGREGATOR:
        attester = state.duties.get(DutyId(target.duty.slot, DutyKind.ATTESTER))
        return attester is not None and group in on_duty(attester)
    if kind in (DutyKind.PREPARE_SYNC_CONTRIBUTION, DutyKind.SYNC_MESSAGE):
        period = chain.sync_period(chain.clock.epoch_of(target.duty.slot))
        info = state.sync_members.get(period, {}).get(group)
        if info is None:
            return False
        if kind is DutyKind.SYNC_MESSAGE:
            return True
        size = chain.sync_committee_size // chain.sync_committee_subnet_count
        subs = {
            int(i) // size
            for i in info.get("validator_sync_committee_indices", [])
            if str(i).isascii() and str(i).isdigit()
        }
        return int(target.key.split("/", 1)[1]) in subs
    return kind is DutyKind.RANDAO  # its slot was found from a known duty, or is the current slot


def _answer_decided(state: NodeState, req: HeldRequest, target: Target, out: Out) -> None:
    rec = state.duties.get(target.duty)
    if rec is None:
        return
    vd = rec.validators.get(target.key)
    if vd is not None and vd.reason is Reason.SLASHING_REFUSED:
        _done(
            state,
            req,
            out,
            412,
            error(412, "slashable: this node's slashing DB refused the decided value"),
            "slashable",
        )
        return
    guards = state.config.guards
    serves = guards.may_serve(rec.phase)
    decided = rec.roots.get(target.key)
    if guards.may_release(serves, target.root, decided):
        sign_own(state, rec, [(target.key, target.root, None)], out)
        _answer_if_combined(state, req, rec, target, out)
        return
    if serves and decided is not None:
        _done(
            state,
            req,
            out,
            412,
            error(412, f"not the value the cluster decided for {target.duty}: its signing root is {decided}"),
            "not_decided_value",
        )
    elif rec.phase is Phase.DONE:
        _done(
            state, req, out, 412, error(412, f"{target.duty} ended without a decided value to sign"), "ended"
        )


def on_deadline(state: NodeState, req: HeldRequest, out: Out) -> None:
    state.requests.pop(req.request_id, None)
    target: Target = req.sign
    rec = state.duties.get(target.duty)
    if target.duty.kind not in CONSENSUS_KINDS and not _has_duty(state, target):
        why = f"{target.key.split('/', 1)[0]} has no such duty at slot {target.duty.slot}"
    elif rec is None:
        why = "the cluster has no such duty (not fetched yet, or none for this slot)"
    elif target.duty.kind in CONSENSUS_KINDS and not state.config.guards.may_serve(rec.phase):
        why = f"the co-validators have not decided and persisted it (phase {rec.phase.value})"
    else:
        why = "fewer than the threshold of co-validators signed it"
    metric(out, "signer_requests_refused", cause="deadline")
    reply(
        out,
        req.request_id,
        412,
        error(412, f"no group signature for {target.duty} before its deadline: {why}"),
    )
