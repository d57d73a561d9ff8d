"""Messages without a slot: voluntary exits and builder registrations, signed by M operators.

An exit or a new registration is proposed by an operator (its VC's share-signed exit, the
`covalidator exit sign` / `registration sign` CLI, or, in signer mode, a VC's signing request). No
consensus decides it: the message is fixed by whoever proposes it, so partials are grouped by signing
root (node/pool_state.py: one entry per root). Decides:
- which partials count: over a well-formed message of a cluster validator (an exit's validator index
  must be the validator's, a registration's pubkey the group key), each verified against the share
  key of the operator that signed it (a node may relay partials it holds; each is checked whoever
  sends it), one per operator and root, at most `Limits.pool_messages` open messages per operator,
  validator and kind (a Byzantine operator cannot crowd out an honest exit);
- that each is durable before anything else happens (`PersistPool`: the VC's 200, the broadcast):
  gathering M operators may take days and restarts;
- when to combine: M partials over one root (`Guards.is_threshold_met`; theorem pool_safety), then
  the group signature is verified before it is kept; what it becomes: an exit is submitted to the BN
  (again each epoch until the BN shows the validator exiting), a registration becomes the validator's
  current one if it is newer than the current one (the lock's at first);
- what the BN and the VC get: the current registrations at start and each epoch; a VC's own
  (share-signed) registrations replaced by the cluster's, never forwarded; `prepare_beacon_proposer`
  with the cluster's fee recipient; in signer mode, a registration signed only when it is exactly the
  current one, and an exit's group signature only once M operators signed it.
At start the node rebroadcasts every partial it holds of exits not yet seen on chain (a node killed
between its partial and the combination still gets the exit out), and each epoch those of messages
still collecting.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from covalidator.model.cluster.config import hex0x, unhex
from covalidator.model.crypto import bls
from covalidator.model.duty import KINDS, POOL_KINDS, DutyId, DutyKind, SubmissionKind
from covalidator.model.eth.beacon_data import DataProblem, root_of
from covalidator.model.eth.signing import Kind, SigningError, signing_root
from covalidator.model.logic import If, Sum
from covalidator.model.node.events import (
    BNSubmitted,
    Broadcast,
    DutyOutcome,
    FetchValidators,
    PassToBN,
    PeerPayload,
    PersistPool,
    PoolPartial,
    SharesSigned,
    ShareToSign,
    SignRequest,
    SignWithShare,
    SubmitToBN,
    ValidatorsResolved,
    VCSubmission,
)
from covalidator.model.node.pool_state import PoolEntry, PoolPhase
from covalidator.model.node.signer import Refused, check_fork_info
from covalidator.model.node.state import NodeState, Out, error, log, metric, reply

_UINT = re.compile(r"[0-9]{1,20}")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_SIGNATURE = re.compile(r"0x[0-9a-fA-F]{192}")
EXITING = frozenset(
    {
        "active_exiting",
        "active_slashed",
        "exited_unslashed",
        "exited_slashed",
        "withdrawal_possible",
        "withdrawal_done",
    }
)
SIGN_TYPES = {
    "VOLUNTARY_EXIT": DutyKind.VOLUNTARY_EXIT,
    "VALIDATOR_REGISTRATION": DutyKind.BUILDER_REGISTRATION,
}


# ---- messages ---------------------------------------------------------------------------------------------


def _uint(message: dict[str, Any], name: str) -> str:
    value = message.get(name)
    if not isinstance(value, str) or not _UINT.fullmatch(value) or int(value) >= 2**64:
        raise DataProblem(f"{name} must be a decimal uint64 string, got {value!r}")
    return value


def check_message(state: NodeState, kind: DutyKind, pubkey: str, message: Any) -> dict[str, Any]:
    """The message, normalised, if it is one this validator's operators may sign; DataProblem if not."""
    if not isinstance(message, dict):
        raise DataProblem("the message must be a JSON object")
    if kind is DutyKind.VOLUNTARY_EXIT:
        epoch, index = _uint(message, "epoch"), _uint(message, "validator_index")
        known = state.indices.get(pubkey)
        if known is not None and known != int(index):
            raise DataProblem(f"validator_index {index} is not {pubkey}'s index ({known})")
        return {"epoch": epoch, "validator_index": index}
    fee = message.get("fee_recipient")
    if not isinstance(fee, str) or not _ADDRESS.fullmatch(fee):
        raise DataProblem(f"fee_recipient must be a 20-byte 0x address, got {fee!r}")
    key = message.get("pubkey")
    if not isinstance(key, str) or key.lower() != pubkey:
        raise DataProblem(f"the registration's pubkey {key!r} is not the validator's group key {pubkey}")
    return {
        "fee_recipient": fee.lower(),
        "gas_limit": _uint(message, "gas_limit"),
        "timestamp": _uint(message, "timestamp"),
        "pubkey": pubkey,
    }


def pool_root(state: NodeState, kind: DutyKind, message: dict[str, Any]) -> str:
    """0x signing root: an exit's domain per EIP-7044 (Capella's version once the chain is at Deneb),
    a registration's the builder domain."""
    chain = state.config.chain
    if kind is DutyKind.BUILDER_REGISTRATION:
        return root_of(chain, Kind.VALIDATOR_REGISTRATION, message)
    try:
        epoch = chain.clock.epoch_at(state.now_ms)
        return hex0x(signing_root(chain.schedule, Kind.VOLUNTARY_EXIT, message, epoch))
    except (SigningError, ValueError) as problem:
        raise DataProblem(f"cannot compute the voluntary_exit signing root: {problem}") from None


def current_registration(state: NodeState, pubkey: str) -> tuple[dict[str, Any], str] | None:
    return state.registrations.get(pubkey)


def _group(state: NodeState, pubkey: Any) -> str | None:
    """A cluster validator's group pubkey from its group or this node's share pubkey."""
    if not isinstance(pubkey, str):
        return None
    key = pubkey.lower()
    if key in state.config.by_group:
        return key
    return state.config.group_of_my_share.get(key)


# ---- holding partials --------------------------------------------------------------------------------------


def _open_by(state: NodeState, kind: DutyKind, pubkey: str, share: int) -> int:
    return sum(
        1
        for e in state.pool.values()
        if e.kind is kind and e.pubkey == pubkey and e.phase is PoolPhase.COLLECTING and share in e.partials
    )


def _hold(state: NodeState, partial: PoolPartial, out: Out, bounded: bool = True) -> bool:
    """Keep a verified partial; False when it adds nothing (held already) or is over the bounds (not
    `bounded`: the store's own partials at a restart, accepted before)."""
    entry = state.pool.get(partial.signing_root)
    if entry is None:
        if (
            bounded
            and _open_by(state, partial.kind, partial.pubkey, partial.share)
            >= state.config.limits.pool_messages
        ):
            metric(out, "pool_partial_dropped", cause="too_many_open_messages", share=partial.share)
            return False
        entry = state.pool[partial.signing_root] = PoolEntry(
            partial.kind, partial.pubkey, partial.message, partial.signing_root
        )
    held = entry.partials.get(partial.share)
    if held is not None:
        if held != partial.signature:  # BLS signatures are unique: a second valid one cannot exist
            metric(out, "pool_partial_dropped", cause="equivocating_partial", share=partial.share)
        return False
    entry.partials[partial.share] = partial.signature
    metric(out, "pool_partials_held", kind=partial.kind.name.lower())
    return True


def _verified(state: NodeState, partial: PoolPartial) -> bool:
    config = state.config
    if not 1 <= partial.share <= config.n or not _SIGNATURE.fullmatch(partial.signature):
        return False
    share_key = unhex(config.share_pubkey(partial.pubkey, partial.share))
    try:
        return bls.verify_partial(share_key, unhex(partial.signing_root), unhex(partial.signature))
    except (bls.BlsError, ValueError):
        return False


def _partials_of(entry: PoolEntry) -> tuple[PoolPartial, ...]:
    return tuple(
        PoolPartial(entry.kind, entry.pubkey, entry.message, entry.signing_root, share, sig)
        for share, sig in sorted(entry.partials.items())
    )


def _accept(state: NodeState, partials: list[PoolPartial], out: Out, broadcast: bool) -> list[PoolEntry]:
    """Hold the new ones, persist them (durable before anything later in the step), broadcast them if
    asked, and combine what reached M. The entries they touched."""
    new = [p for p in partials if _hold(state, p, out)]
    if new:
        out.append(PersistPool(tuple(new)))
        if broadcast:
            out.append(Broadcast(PeerPayload(pool=tuple(new))))
    touched = list(
        {
            p.signing_root: state.pool[p.signing_root] for p in partials if p.signing_root in state.pool
        }.values()
    )
    for entry in touched:
        _combine(state, entry, out)
    return touched


# ---- combining ----------------------------------------------------------------------------------------------


def may_combine(signed: Sequence[Any], threshold: Any, is_threshold_met: Callable[[Any, Any], Any]) -> Any:
    """`signed[i]`: operator i + 1's verified partial over the message is held. A group signature is
    made (and so can leave the node) only when M operators signed (dual-executable: theorem
    pool.pool_safety evaluates this function with Z3 values)."""
    return is_threshold_met(Sum(*[If(s, 1, 0) for s in signed]), threshold)


def _combine(state: NodeState, entry: PoolEntry, out: Out) -> None:
    config = state.config
    signed = [share in entry.partials for share in range(1, config.n + 1)]
    if entry.signature is not None or not may_combine(
        signed, config.threshold, config.guards.is_threshold_met
    ):
        return
    shares = {i + 1: unhex(s) for i, s in enumerate(config.by_group[entry.pubkey].shares)}
    partials = {share: unhex(sig) for share, sig in entry.partials.items()}
    job = bls.CombineJob(unhex(entry.pubkey), shares, unhex(entry.signing_root), partials, config.threshold)
    combination = bls.verify_and_combine_many([job])[0]
    for bad in combination.invalid:  # verified when received: only a corrupt store gets here
        entry.partials.pop(bad, None)
        metric(out, "pool_partial_dropped", cause="invalid_partial_signature", share=bad)
    if combination.signature is None:
        return
    entry.signature = "0x" + combination.signature.hex()
    entry.advance(PoolPhase.COMBINED)
    metric(out, "pool_combined", kind=entry.kind.name.lower())
    log(
        out,
        "info",
        "group signature combined",
        kind=entry.kind.name.lower(),
        validator=entry.pubkey,
        operators=",".join(map(str, sorted(entry.partials))),
    )
    if entry.kind is DutyKind.VOLUNTARY_EXIT:
        _submit_exit(state, entry, out)
    else:
        _adopt_registration(state, entry, out)


def _duty(state: NodeState, kind: DutyKind) -> DutyId:
    return DutyId(max(0, state.config.chain.clock.slot_at(state.now_ms)), kind)


def _submit_exit(state: NodeState, entry: PoolEntry, out: Out) -> None:
    body = {"message": entry.message, "signature": entry.signature}
    out.append(
        SubmitToBN(
            _duty(state, DutyKind.VOLUNTARY_EXIT), SubmissionKind.VOLUNTARY_EXIT, body, "", (entry.pubkey,)
        )
    )


def _adopt_registration(state: NodeState, entry: PoolEntry, out: Out) -> None:
    """A combined registration newer than the validator's current one replaces it, everywhere."""
    assert entry.signature is not None
    current = state.registrations.get(entry.pubkey)
    if current is not None and int(current[0]["timestamp"]) >= int(entry.message["timestamp"]):
        log(out, "info", "combined registration is not newer than the current one", validator=entry.pubkey)
        return
    state.registrations[entry.pubkey] = (entry.message, entry.signature)
    entry.advance(PoolPhase.SUBMITTED)
    # superseded entries still collecting are moot: a newer registration is current
    out.append(DutyOutcome(_duty(state, DutyKind.BUILDER_REGISTRATION), entry.pubkey, True))
    metric(out, "registrations_changed")
    submit_registrations(state, [entry.pubkey], out)


def submit_registrations(state: NodeState, pubkeys: list[str] | None, out: Out) -> None:
    """The current registrations of these validators (all when None) to the BN, in one call."""
    keys = (
        sorted(state.registrations) if pubkeys is None else [k for k in pubkeys if k in state.registrations]
    )
    body = [{"message": state.registrations[k][0], "signature": state.registrations[k][1]} for k in keys]
    if body:
        duty = _duty(state, DutyKind.BUILDER_REGISTRATION)
        out.append(SubmitToBN(duty, SubmissionKind.REGISTRATIONS, body, "", tuple(keys)))


# ---- events ---------------------------------------------------------------------------------------------------


def on_started(state: NodeState, partials: tuple[PoolPartial, ...], out: Out) -> None:
    """A (re)start: the lock's registrations, then every partial the store kept, combined again; the
    partials of exits (and registrations still collecting) go to the peers again."""
    for v in state.config.validators:
        reg = v.registration
        if isinstance(reg, dict) and isinstance(reg.get("message"), dict):
            state.registrations[v.group] = (reg["message"], str(reg["signature"]))
    for p in partials:
        if p.kind in POOL_KINDS and p.pubkey in state.config.by_group:
            _hold(state, p, out, bounded=False)  # some may have combined long ago: none is dropped
    for entry in list(state.pool.values()):
        _combine(state, entry, out)
    again = [p for e in state.pool.values() if _resend(e) for p in _partials_of(e)]
    if again:
        out.append(Broadcast(PeerPayload(pool=tuple(again[: state.config.limits.pool_items]))))
    submit_registrations(state, None, out)


def _resend(entry: PoolEntry) -> bool:
    if entry.kind is DutyKind.VOLUNTARY_EXIT:
        return entry.phase is not PoolPhase.ON_CHAIN
    return entry.phase is PoolPhase.COLLECTING


def on_epoch(state: NodeState, out: Out) -> None:
    """Each epoch: the registrations again (builders expect them each epoch), combined exits not yet
    seen on chain again, the partials of messages still collecting again, and the validators'
    statuses when an exit is under way."""
    submit_registrations(state, None, out)
    waiting = [
        e
        for e in state.pool.values()
        if e.kind is DutyKind.VOLUNTARY_EXIT and e.phase is not PoolPhase.ON_CHAIN
    ]
    for entry in waiting:
        if entry.phase is PoolPhase.COMBINED:
            _submit_exit(state, entry, out)
    collecting = [p for e in state.pool.values() if e.phase is PoolPhase.COLLECTING for p in _partials_of(e)]
    if collecting:
        out.append(Broadcast(PeerPayload(pool=tuple(collecting[: state.config.limits.pool_items]))))
    if waiting:
        out.append(FetchValidators(tuple(sorted({e.pubkey for e in waiting}))))


def on_validators(state: NodeState, event: ValidatorsResolved, out: Out) -> None:
    exiting = {v.pubkey for v in event.validators if v.status in EXITING}
    for entry in state.pool.values():
        if (
            entry.kind is DutyKind.VOLUNTARY_EXIT
            and entry.pubkey in exiting
            and entry.phase is not PoolPhase.ON_CHAIN
        ):
            if entry.phase is PoolPhase.COLLECTING:
                continue  # another exit message made it: this one never combined
            entry.advance(PoolPhase.ON_CHAIN)
            metric(out, "exits_on_chain")
            log(out, "info", "the validator is exiting on chain", validator=entry.pubkey)


def on_submitted(state: NodeState, event: BNSubmitted, out: Out) -> None:
    if event.duty.kind is DutyKind.BUILDER_REGISTRATION:
        metric(out, "registrations_submitted", result="ok" if event.ok else "error")
        if not event.ok:
            log(out, "warn", "beacon node refused the registrations", error=event.error)
        return
    for entry in state.pool.values():
        if entry.kind is not DutyKind.VOLUNTARY_EXIT or entry.pubkey not in event.pubkeys:
            continue
        if entry.phase is not PoolPhase.COMBINED:
            continue
        if event.ok:
            entry.advance(PoolPhase.SUBMITTED)
            out.append(DutyOutcome(event.duty, entry.pubkey, True))
            metric(out, "exits_submitted", result="ok")
        else:
            metric(out, "exits_submitted", result="error")
            log(
                out,
                "warn",
                "beacon node refused the exit (sent again next epoch)",
                validator=entry.pubkey,
                error=event.error,
            )


def on_peer(state: NodeState, sender: int, items: tuple[PoolPartial, ...], out: Out) -> None:
    """Peers' partials (theirs or relayed): each verified against its own share key before it counts."""
    if len(items) > state.config.limits.pool_items:
        metric(out, "peer_message_dropped", cause="too_many_pool_partials", peer=sender)
        return
    good = []
    for item in items:
        held = state.pool.get(item.signing_root) if isinstance(item, PoolPartial) else None
        if held is not None and held.partials.get(item.share) == item.signature:
            continue  # a resend or a relay of what this node holds
        problem = _peer_problem(state, item)
        if problem is not None:
            metric(out, "peer_message_dropped", cause=problem, peer=sender)
            continue
        good.append(item)
    _accept(state, good, out, broadcast=False)


def _peer_problem(state: NodeState, item: PoolPartial) -> str | None:
    if not isinstance(item, PoolPartial) or item.kind not in POOL_KINDS:
        return "bad_pool_kind"
    if not isinstance(item.pubkey, str) or item.pubkey not in state.config.by_group:
        return "unknown_validator"
    try:
        message = check_message(state, item.kind, item.pubkey, item.message)
        if pool_root(state, item.kind, message) != item.signing_root or message != item.message:
            return "pool_root_mismatch"
    except DataProblem:
        return "bad_pool_message"
    if not _verified(state, item):
        return "invalid_pool_partial"
    return None


# ---- the VC and the operator -----------------------------------------------------------------------------------


SUBMISSIONS = frozenset(
    {
        SubmissionKind.VOLUNTARY_EXIT,
        SubmissionKind.OPERATOR_REGISTRATION,
        SubmissionKind.REGISTRATIONS,
        SubmissionKind.PREPARE_PROPOSER,
    }
)


def on_vc_submission(state: NodeState, event: VCSubmission, out: Out) -> None:
    match event.kind:
        case SubmissionKind.VOLUNTARY_EXIT:
            _vc_exit(state, event, out)
        case SubmissionKind.OPERATOR_REGISTRATION:
            _operator_registration(state, event, out)
        case SubmissionKind.REGISTRATIONS:
            _vc_registrations(state, event, out)
        case SubmissionKind.PREPARE_PROPOSER:
            _prepare_proposer(state, event, out)


def _signed_object(obj: Any) -> tuple[Any, str]:
    if not isinstance(obj, dict) or not isinstance(obj.get("signature"), str):
        raise DataProblem("expected {message, signature}")
    if not _SIGNATURE.fullmatch(obj["signature"]):
        raise DataProblem("signature must be 96 bytes of 0x hex")
    return obj.get("message"), obj["signature"].lower()


def _vc_exit(state: NodeState, event: VCSubmission, out: Out) -> None:
    """A SignedVoluntaryExit from the VC: its partial over this node's share (middleware mode), or a
    group signature (a signer-mode VC posting what the signer API gave it)."""
    config = state.config
    try:
        if len(event.objects) != 1:
            raise DataProblem("expected one SignedVoluntaryExit")
        message, signature = _signed_object(event.objects[0])
        index = _uint(message if isinstance(message, dict) else {}, "validator_index")
        pubkey = state.by_index.get(int(index))
        if pubkey is None:
            if not state.indices:
                reply(out, event.request_id, 503, error(503, "the validators' indices are not resolved yet"))
                return
            out.append(PassToBN(event.request_id))  # not a cluster validator: the BN's business
            return
        message = check_message(state, DutyKind.VOLUNTARY_EXIT, pubkey, message)
        root = pool_root(state, DutyKind.VOLUNTARY_EXIT, message)
    except DataProblem as problem:
        reply(out, event.request_id, 400, error(400, f"invalid voluntary exit: {problem}"))
        return
    mine = PoolPartial(DutyKind.VOLUNTARY_EXIT, pubkey, message, root, config.share_index, signature)
    if _verified(state, mine):
        _accept(state, [mine], out, broadcast=True)
        metric(out, "exits_requested", source="vc")
        reply(out, event.request_id, 200, None)
        return
    if bls.verify(unhex(pubkey), unhex(root), unhex(signature)):  # already the group's: an exit
        entry = state.pool.get(root)
        if entry is None or entry.signature is None:
            entry = state.pool.setdefault(root, PoolEntry(DutyKind.VOLUNTARY_EXIT, pubkey, message, root))
            entry.signature = signature
            entry.advance(PoolPhase.COMBINED)
            _submit_exit(state, entry, out)
        reply(out, event.request_id, 200, None)
        return
    reply(
        out,
        event.request_id,
        400,
        error(
            400,
            "invalid voluntary exit: the signature is neither this node's "
            "share signature nor the validator's group signature over it",
        ),
    )


def _operator_registration(state: NodeState, event: VCSubmission, out: Out) -> None:
    """`covalidator registration sign`: this operator's partials over NEW registrations."""
    accepted = []
    try:
        for obj in event.objects:
            message, signature = _signed_object(obj)
            pubkey = _group(state, message.get("pubkey") if isinstance(message, dict) else None)
            if pubkey is None:
                raise DataProblem(f"{message!r} names no validator of this cluster")
            message = check_message(state, DutyKind.BUILDER_REGISTRATION, pubkey, message)
            root = pool_root(state, DutyKind.BUILDER_REGISTRATION, message)
            partial = PoolPartial(
                DutyKind.BUILDER_REGISTRATION, pubkey, message, root, state.config.share_index, signature
            )
            if not _verified(state, partial):
                raise DataProblem(
                    f"the signature over {pubkey}'s registration is not this node's share signature"
                )
            accepted.append(partial)
    except DataProblem as problem:
        reply(out, event.request_id, 400, error(400, f"invalid registration: {problem}"))
        return
    _accept(state, accepted, out, broadcast=True)
    metric(out, "registration_changes_requested", value=float(len(accepted)))
    reply(out, event.request_id, 200, None)


def _vc_registrations(state: NodeState, event: VCSubmission, out: Out) -> None:
    """The VC's own registrations: a cluster validator's are replaced by the cluster's (share-signed,
    they would be refused), others go to the BN unchanged."""
    theirs: list[Any] = []
    ours: list[str] = []
    for obj in event.objects:
        message = obj.get("message") if isinstance(obj, dict) else None
        pubkey = _group(state, message.get("pubkey") if isinstance(message, dict) else None)
        if pubkey is None:
            theirs.append(obj)
        elif pubkey in state.registrations:
            ours.append(pubkey)
        else:
            metric(out, "registrations_dropped", cause="no_cluster_registration")
            log(
                out,
                "warn",
                "the VC's registration dropped: the cluster has none for this validator "
                "(create the lock with --fee-recipient)",
                validator=pubkey,
            )
    metric(out, "registrations_replaced", value=float(len(ours)))
    submit_registrations(state, ours, out)
    if theirs:
        out.append(
            SubmitToBN(_duty(state, DutyKind.BUILDER_REGISTRATION), SubmissionKind.REGISTRATIONS, theirs)
        )
    reply(out, event.request_id, 200, None)


def _prepare_proposer(state: NodeState, event: VCSubmission, out: Out) -> None:
    """prepare_beacon_proposer: the cluster's fee recipient for its validators, others unchanged."""
    body = []
    for obj in event.objects:
        if not isinstance(obj, dict):
            reply(out, event.request_id, 400, error(400, "expected [{validator_index, fee_recipient}]"))
            return
        index = obj.get("validator_index")
        pubkey = (
            state.by_index.get(int(index))
            if isinstance(index, str) and index.isascii() and index.isdigit()
            else None
        )
        current = state.registrations.get(pubkey) if pubkey is not None else None
        body.append({**obj, "fee_recipient": current[0]["fee_recipient"]} if current else obj)
    if body:
        out.append(
            SubmitToBN(_duty(state, DutyKind.BUILDER_REGISTRATION), SubmissionKind.PREPARE_PROPOSER, body)
        )
    reply(out, event.request_id, 200, None)


# ---- signer mode ------------------------------------------------------------------------------------------------


def is_sign_request(event: SignRequest) -> bool:
    kind = event.body.get("type") if isinstance(event.body, dict) else None
    return isinstance(kind, str) and kind in SIGN_TYPES  # a str first: a dict or list is unhashable


def on_sign_request(state: NodeState, event: SignRequest, out: Out) -> None:
    """VOLUNTARY_EXIT: this node's partial is signed, kept and broadcast; the group signature once M
    operators signed, before that a named 412. VALIDATOR_REGISTRATION: the current registration's
    group signature, for exactly that message."""
    try:
        status, body = _sign(state, event, out)
    except Refused as refused:
        metric(out, "signer_requests_refused", cause=refused.cause)
        reply(out, event.request_id, refused.status, error(refused.status, refused.reason))
        return
    reply(out, event.request_id, status, body)


def parse_sign(
    state: NodeState, identifier: Any, body: dict[str, Any]
) -> tuple[DutyKind, str, dict[str, Any], str]:
    """(kind, group pubkey, message, our signing root) of an exit or registration signing request, or
    `Refused` (the API's status and a named reason)."""
    kind = SIGN_TYPES[body["type"]]
    pubkey = identifier.lower() if isinstance(identifier, str) else ""
    if pubkey not in state.config.by_group:
        raise Refused(404, "unknown_key", f"{identifier} is not a validator of this cluster")
    field = "voluntary_exit" if kind is DutyKind.VOLUNTARY_EXIT else "validator_registration"
    try:
        message = check_message(state, kind, pubkey, body.get(field))
        root = pool_root(state, kind, message)
    except DataProblem as problem:
        raise Refused(400, "malformed", str(problem)) from None
    if kind is DutyKind.VOLUNTARY_EXIT:
        check_fork_info(state, body.get("fork_info"), int(message["epoch"]))
    claimed = body.get("signingRoot", body.get("signing_root"))
    if claimed is not None and (not isinstance(claimed, str) or claimed.lower() != root):
        raise Refused(
            400, "signing_root_mismatch", f"signingRoot {claimed} is not the object's signing root {root}"
        )
    return kind, pubkey, message, root


def _sign(state: NodeState, event: SignRequest, out: Out) -> tuple[int, Any]:
    config = state.config
    kind, pubkey, message, root = parse_sign(state, event.identifier, event.body)
    if not config.signs_own_partials:
        raise Refused(412, "no_share_keys", "this node holds no share keys (start it with --signer-api)")
    metric(out, "signer_requests", kind=str(KINDS[kind].partial_message))
    if kind is DutyKind.BUILDER_REGISTRATION:
        current = state.registrations.get(pubkey)
        if current is None or current[0] != message:
            shown = (
                "none"
                if current is None
                else ", ".join(f"{k} {v}" for k, v in current[0].items() if k != "pubkey")
            )
            raise Refused(
                412,
                "not_cluster_registration",
                "only the cluster's current registration is signed "
                f"({shown}); change it with `covalidator registration sign`",
            )
        return 200, {"signature": current[1]}
    entry = state.pool.get(root)
    if entry is not None and entry.signature is not None:
        return 200, {"signature": entry.signature}
    entry = _ask_own(state, pubkey, message, root, out)
    have = len(entry.partials) + (config.share_index not in entry.partials and entry.signing_own)
    missing = config.threshold - have
    metric(out, "exits_requested", source="signer")
    raise Refused(
        412,
        "waiting_for_operators",
        f"waiting for {missing} more operator(s) to sign this exit "
        f"({have} of {config.threshold}: shares {sorted(set(entry.partials) | {config.share_index})})",
    )


def _ask_own(state: NodeState, pubkey: str, message: dict[str, Any], root: str, out: Out) -> PoolEntry:
    me = state.config.share_index
    entry = state.pool.get(root)
    if entry is None:
        if _open_by(state, DutyKind.VOLUNTARY_EXIT, pubkey, me) >= state.config.limits.pool_messages:
            raise Refused(
                412,
                "too_many_open_messages",
                "this operator already has "
                f"{state.config.limits.pool_messages} exits of {pubkey} waiting for the others",
            )
        entry = state.pool[root] = PoolEntry(DutyKind.VOLUNTARY_EXIT, pubkey, message, root)
    if me not in entry.partials and not entry.signing_own:
        entry.signing_own = True
        out.append(
            SignWithShare((ShareToSign(_duty(state, DutyKind.VOLUNTARY_EXIT), pubkey, root, message),))
        )
    return entry


def on_shares_signed(state: NodeState, event: SharesSigned, out: Out) -> None:
    """This node's own partials over exits (signer mode), signed by the runtime."""
    mine = []
    for signed in event.signed:
        item = signed.item
        if item.duty.kind not in POOL_KINDS:
            continue
        entry = state.pool.get(item.signing_root)
        if entry is not None:
            entry.signing_own = False
        mine.append(
            PoolPartial(
                item.duty.kind,
                item.key,
                item.message,
                item.signing_root,
                state.config.share_index,
                signed.signature,
            )
        )
    if mine:
        _accept(state, mine, out, broadcast=True)


# ---- what the operator sees -----------------------------------------------------------------------------------


def summary(state: NodeState) -> list[dict[str, Any]]:
    """Every entry: kind, validator, message, the operators whose partials this node holds, phase."""
    return [
        {
            "kind": e.kind.name.lower(),
            "validator": e.pubkey,
            "message": e.message,
            "signing_root": e.signing_root,
            "operators": sorted(e.partials),
            "threshold": state.config.threshold,
            "phase": e.phase.value,
            "current": e.kind is DutyKind.BUILDER_REGISTRATION
            and state.registrations.get(e.pubkey, ({}, ""))[1] == e.signature,
        }
        for e in sorted(state.pool.values(), key=lambda e: (e.kind, e.pubkey, e.signing_root))
    ]


def registrations_summary(state: NodeState) -> dict[str, dict[str, Any]]:
    """Each validator's current registration (message and group signature)."""
    return {k: {"message": m, "signature": s} for k, (m, s) in sorted(state.registrations.items())}
