"""Partial signatures: from this node's VC and from peers, to one combined signature per validator.

Decides which partials count (one per sender per validator; for consensus duties only partials over
the signing root of the DECIDED data, and only once it is persisted: `may_serve`), when to combine
(M partials over one root: `is_threshold_met`), what is submitted (the Beacon-API body for the duty
kind), and what a combined RANDAO reveal, selection proof or sync message unlocks (a signal to the
dispatcher). Verification: this node's own partial is verified when its VC hands it over (node/vc.py);
peers' partials are verified together with the combined signature in one random-linear-combination
check (`bls.verify_and_combine_many`), whose slow path names the invalid ones.

Signer mode (`NodeConfig.signs_own_partials`: the node holds its share keys): this node's own partial
is signed by the runtime on request (`SignWithShare` -> `SharesSigned`), for a consensus duty as soon
as its decided value is persisted (`Guards.may_release`), for a selection or RANDAO duty as soon as
the duty is known, and for a sync committee message when the VC asks (node/signer.py). Every
combined signature is kept (`DutyRecord.combined`) and signalled (`GroupSigned`): the Remote Signing
API answers with it.
"""

from __future__ import annotations

from typing import Any

from covalidator.model.cluster.config import unhex
from covalidator.model.crypto import bls
from covalidator.model.duty import CONSENSUS_KINDS, KINDS, SLASHABLE_KINDS, DutyId, DutyKind, SubmissionKind
from covalidator.model.eth.beacon_data import (
    DataProblem,
    bitlist_single,
    fork_at_least,
    is_aggregator,
    is_root,
    is_signature,
    is_sync_committee_aggregator,
    root_of,
)
from covalidator.model.node.events import (
    Broadcast,
    PartialSignature,
    PartialSignatures,
    PeerPayload,
    Send,
    SharesSigned,
    ShareToSign,
    SignWithShare,
    SubmitToBN,
)
from covalidator.model.node.outcome import finish
from covalidator.model.node.phases import DutyRecord, Phase, ValidatorDuty
from covalidator.model.node.signals import (
    AggregationSelected,
    GroupSigned,
    RandaoCombined,
    SelectionCombined,
    SyncMessageCombined,
)
from covalidator.model.node.state import (
    NodeState,
    Out,
    in_window,
    log,
    metric,
    pubkey_of,
    record,
    schedule,
    validator,
)
from covalidator.model.outcomes import Reason
from covalidator.model.qbft.rules import fault_tolerance


def broadcast_own(state: NodeState, duty: DutyId, items: list[PartialSignature], out: Out) -> None:
    if items:
        out.append(Broadcast(PeerPayload(partials=PartialSignatures(duty, tuple(items)))))


# ---- signer mode: this node signs its own partials ------------------------------------------------------


def rebroadcast_own(state: NodeState, duty: DutyId, key: str, out: Out) -> None:
    """Signer mode: a VC asks for a signature the cluster has not combined yet: send this node's own
    partials again (peers ignore a partial they hold). Partials signed ahead of time (selection proofs,
    RANDAO) go out once, possibly before a peer is connected; the simulator's lossy start showed a
    peer then missing two of them until the duty's deadline."""
    rec = state.duties.get(duty)
    vd = rec.validators.get(key) if rec is not None else None
    if rec is None or vd is None:
        return
    combined = rec.group_signed.get(key, {})
    items = [p for p in _own_partials(rec, key, vd) if p.signing_root not in combined]
    if items:
        metric(out, "own_partials_rebroadcast", kind=duty.kind.name.lower())
        out.append(Broadcast(PeerPayload(partials=PartialSignatures(duty, tuple(items), waiting=True))))


def _own_partials(rec: DutyRecord, key: str, vd: ValidatorDuty) -> list[PartialSignature]:
    """This node's own partials of a validator (its first, then co-signed sync roots) as peers get them:
    with the message for duties without consensus."""
    if vd.own is None:
        return []
    carry = rec.id.kind not in CONSENSUS_KINDS
    mine = [(vd.own[0], vd.own[1], vd.own_message), *((r, sig, m) for r, (sig, m) in vd.cosigned.items())]
    return [PartialSignature(key, r, sig, m if carry else None) for r, sig, m in mine]


def _answer_waiting(state: NodeState, sender: int, rec: DutyRecord, keys: list[str], out: Out) -> None:
    """A peer is still waiting to combine: send it this node's own partials of those validators (once
    per such message; the answer itself asks nothing back, so two nodes never loop)."""
    items = []
    for key in dict.fromkeys(keys):
        vd = rec.validators.get(key)
        if vd is not None:
            items += _own_partials(rec, key, vd)
    if items:
        out.append(Send(sender, PeerPayload(partials=PartialSignatures(rec.id, tuple(items)))))


def many_roots(kind: DutyKind) -> bool:
    """A kind whose partials may cover several messages per validator and slot: sync committee
    messages (their block root is each VC's view of the head, and no slashing condition covers them)."""
    return kind is DutyKind.SYNC_MESSAGE


def signed_roots(vd: ValidatorDuty) -> set[str]:
    """The signing roots this node has its own partial over."""
    return ({vd.own[0]} if vd.own is not None else set()) | set(vd.cosigned)


def sign_own(state: NodeState, rec: DutyRecord, items: list[tuple[str, str, Any]], out: Out) -> None:
    """Ask the runtime for this node's partials: (key, signing root, message) of validators that have
    none yet and none on the way (a sync committee message: none over that root, and fewer than
    `Limits.sync_roots` roots). Only in signer mode; the caller decides what may be signed."""
    if not state.config.signs_own_partials:
        return
    asks = []
    for key, root, message in items:
        vd = validator(rec, key)
        pending = state.signing.get((rec.id, key), set())
        done = signed_roots(vd)
        if many_roots(rec.id.kind):
            if root in done or root in pending or len(done | pending) >= state.config.limits.sync_roots:
                continue
        elif done or pending:
            continue
        state.signing.setdefault((rec.id, key), set()).add(root)
        asks.append(ShareToSign(rec.id, key, root, message))
    if asks:
        out.append(SignWithShare(tuple(asks)))


def cosign(state: NodeState, rec: DutyRecord, keys: list[str], out: Out) -> None:
    """Signer mode: add this node's partial over a sync committee message root that more peers than may
    be Byzantine signed (`Guards.may_cosign`). The co-validators' VCs may see different heads when
    they sign (a block arriving at that moment); each root any honest VC asked for then still gets M
    partials, so every VC gets its group signature, even this node's VC when it is down."""
    if not state.config.signs_own_partials or not many_roots(rec.id.kind):
        return
    faulty = fault_tolerance(state.config.n)
    slashable = rec.id.kind in SLASHABLE_KINDS
    items = []
    for key in keys:
        vd = rec.validators.get(key)
        if vd is None:
            continue
        by_root, messages = _by_root(state, vd)
        for root, partials in sorted(by_root.items()):
            peers = set(partials) - {state.config.share_index} - vd.invalid_senders
            if not state.config.guards.may_cosign(slashable, len(peers), faulty):
                continue
            message = expected_message(state, rec.id, key, messages[root])
            if message is not None:
                items.append((key, root, message))
    sign_own(state, rec, items, out)


def sign_decided(state: NodeState, rec: DutyRecord, keys: list[str], out: Out) -> None:
    """Signer mode: this node's partial over each listed validator's decided value, once it may be
    released (`Guards.may_release`: decided, persisted, and over the decided root)."""
    if not state.config.signs_own_partials or rec.id.kind not in CONSENSUS_KINDS:
        return
    guards = state.config.guards
    serves = guards.may_serve(rec.phase)
    items = []
    for key in keys:
        vd = rec.validators.get(key)
        root = rec.roots.get(key)
        if vd is None or vd.info is None or vd.ended or root is None:
            continue
        if guards.may_release(serves, root, rec.roots.get(key)):
            items.append((key, root, None))
    sign_own(state, rec, items, out)


def sign_duty_message(state: NodeState, rec: DutyRecord, keys: list[str], out: Out) -> None:
    """Signer mode: this node's partial of a duty without consensus whose message the duty fixes
    (RANDAO reveal, selection proofs), as soon as the duty is known."""
    if not state.config.signs_own_partials:
        return
    kind = KINDS[rec.id.kind].partial_message
    items = []
    for key in keys:
        message = expected_message(state, rec.id, key, {})
        if kind is None or message is None:
            continue
        try:
            items.append((key, root_of(state.config.chain, kind, message), message))
        except DataProblem as problem:
            log(out, "error", "cannot sign a duty message", duty=str(rec.id), error=str(problem))
    sign_own(state, rec, items, out)


def on_shares_signed(state: NodeState, event: SharesSigned, out: Out) -> None:
    """The runtime signed our partials: they count as this node's own, go to the peers, and combine."""
    by_duty: dict[DutyId, list[PartialSignature]] = {}
    for signed in event.signed:
        item = signed.item
        pending = state.signing.get((item.duty, item.key))
        if pending is not None:
            pending.discard(item.signing_root)
            if not pending:
                del state.signing[(item.duty, item.key)]
        rec = state.duties.get(item.duty)
        if rec is None or rec.phase is Phase.DONE:
            continue
        vd = validator(rec, item.key)
        if vd.own is None:
            vd.own, vd.own_message = (item.signing_root, signed.signature), item.message
        elif many_roots(item.duty.kind) and item.signing_root not in signed_roots(vd):
            vd.cosigned[item.signing_root] = (signed.signature, item.message)
        else:
            continue
        message = item.message if item.duty.kind not in CONSENSUS_KINDS else None
        by_duty.setdefault(item.duty, []).append(
            PartialSignature(item.key, item.signing_root, signed.signature, message)
        )
        metric(out, "own_partials_signed", kind=item.duty.kind.name.lower())
    for duty, partials in by_duty.items():
        broadcast_own(state, duty, partials, out)
        try_combine(state, state.duties[duty], [p.pubkey for p in partials], out)


def on_peer_partials(state: NodeState, sender: int, batch: PartialSignatures, out: Out) -> None:
    config = state.config
    if not in_window(state, batch.duty.slot):
        metric(out, "peer_message_dropped", cause="stale_or_future_slot", peer=sender)
        return
    if len(batch.partials) > max_batch(state, batch.duty.kind):
        metric(out, "peer_message_dropped", cause="too_many_partials", peer=sender)
        return
    rec = record(state, batch.duty, out)
    if rec.phase is Phase.DONE:
        return
    touched = []
    for item in batch.partials:
        group = pubkey_of(item.pubkey)
        if group not in config.by_group:
            metric(out, "peer_message_dropped", cause="unknown_validator", peer=sender)
            continue
        if not is_key_of(state, batch.duty.kind, item.pubkey):
            metric(out, "peer_message_dropped", cause="bad_subcommittee", peer=sender)
            continue
        if not (is_root(item.signing_root) and is_signature(item.signature)):
            # not 0x-hex of 32 / 96 bytes: combining would raise on it (the model must not)
            metric(out, "peer_message_dropped", cause="malformed", peer=sender)
            continue
        vd = validator(rec, item.pubkey)
        if sender in vd.invalid_senders:
            continue
        previous = vd.partials.get(sender)
        another = previous is not None and previous[0] != item.signing_root and many_roots(rec.id.kind)
        if previous is not None and not another:
            if previous[:2] != (item.signing_root, item.signature):
                metric(out, "peer_message_dropped", cause="equivocating_partial", peer=sender)
            continue
        if another:
            extra = vd.peer_cosigned.get((sender, item.signing_root))
            if extra is not None:
                if extra[0] != item.signature:
                    metric(out, "peer_message_dropped", cause="equivocating_partial", peer=sender)
                continue
            if 1 + sum(s == sender for s, _ in vd.peer_cosigned) >= config.limits.sync_roots:
                metric(out, "peer_message_dropped", cause="too_many_roots", peer=sender)
                continue
        if batch.duty.kind not in CONSENSUS_KINDS and not _message_matches(state, rec, item):
            vd.invalid_senders.add(sender)
            metric(out, "peer_message_dropped", cause="partial_message_mismatch", peer=sender)
            continue
        if another:
            vd.peer_cosigned[(sender, item.signing_root)] = (item.signature, item.message)
        else:
            vd.partials[sender] = (item.signing_root, item.signature, item.message)
        metric(out, "partial_signatures_received", peer=sender, kind=batch.duty.kind.name.lower())
        touched.append(item.pubkey)
    if batch.waiting:
        _answer_waiting(state, sender, rec, [item.pubkey for item in batch.partials], out)
    cosign(state, rec, touched, out)
    try_combine(state, rec, touched, out)


SUBCOMMITTEE_KINDS = frozenset({DutyKind.SYNC_CONTRIBUTION, DutyKind.PREPARE_SYNC_CONTRIBUTION})


def is_key_of(state: NodeState, kind: DutyKind, key: str) -> bool:
    """Whether a peer's partial names a duty-record key this kind has: "pubkey" alone, or for sync
    contributions and their selections "pubkey/i" with i a subcommittee (ASCII decimal, in range).
    Any other suffix would make a new validator entry per string a Byzantine peer invents."""
    _, slash, suffix = key.partition("/")
    if kind not in SUBCOMMITTEE_KINDS:
        return not slash
    return (
        suffix.isascii()
        and suffix.isdigit()
        and str(int(suffix)) == suffix
        and int(suffix) < state.config.chain.sync_committee_subnet_count
    )


def max_batch(state: NodeState, kind: DutyKind) -> int:
    """The most partials one peer message of a duty can carry honestly: one per validator key (a sync
    committee message per block root a sender may cover). A larger batch is dropped whole, unread."""
    validators = len(state.config.validators)
    if kind in SUBCOMMITTEE_KINDS:
        return validators * state.config.chain.sync_committee_subnet_count
    if kind is DutyKind.SYNC_MESSAGE:
        return validators * state.config.limits.sync_roots
    return validators


def _message_matches(state: NodeState, rec: DutyRecord, item: PartialSignature) -> bool:
    """For duties without consensus the partial carries its message: it must be the one this duty
    signs, and its signing root the one claimed."""
    kind = KINDS[rec.id.kind].partial_message
    if kind is None or not isinstance(item.message, dict):
        return False
    expected = expected_message(state, rec.id, item.pubkey, item.message)
    if expected is None:
        return False
    try:
        return root_of(state.config.chain, kind, expected) == item.signing_root
    except DataProblem:
        return False


def expected_message(
    state: NodeState, duty: DutyId, key: str, message: dict[str, Any]
) -> dict[str, Any] | None:
    """The message a duty without consensus signs, rebuilt from what the duty fixes (a peer may only
    choose the block root of a sync committee message)."""
    clock = state.config.chain.clock
    if duty.kind is DutyKind.RANDAO:
        return {"epoch": str(clock.epoch_of(duty.slot))}
    if duty.kind is DutyKind.PREPARE_AGGREGATOR:
        return {"slot": str(duty.slot)}
    if duty.kind is DutyKind.PREPARE_SYNC_CONTRIBUTION:
        sub = key.split("/", 1)[1] if "/" in key else None
        return None if sub is None else {"slot": str(duty.slot), "subcommittee_index": sub}
    if duty.kind is DutyKind.SYNC_MESSAGE:
        index = state.indices.get(pubkey_of(key))
        root = message.get("beacon_block_root")
        if index is None or not isinstance(root, str):
            return None
        return {"slot": str(duty.slot), "beacon_block_root": root, "validator_index": str(index)}
    return None


def _by_root(state: NodeState, vd: ValidatorDuty) -> tuple[dict[str, dict[int, str]], dict[str, Any]]:
    """Every partial of a validator, this node's and its peers', grouped by signing root (with a
    message per root, for duties without consensus). Signatures stay hex: only a combined root's
    are decoded (`_candidates`)."""
    by_root: dict[str, dict[int, str]] = {}
    messages: dict[str, Any] = {}
    me = state.config.share_index
    if vd.own is not None:
        by_root.setdefault(vd.own[0], {})[me] = vd.own[1]
        if vd.own_message is not None:
            messages[vd.own[0]] = vd.own_message
    for root, (sig, message) in vd.cosigned.items():
        by_root.setdefault(root, {})[me] = sig
        messages.setdefault(root, message)
    for sender, (root, sig, message) in vd.partials.items():
        by_root.setdefault(root, {})[sender] = sig
        messages.setdefault(root, message)
    for (sender, root), (sig, message) in vd.peer_cosigned.items():
        if sender not in vd.invalid_senders:
            by_root.setdefault(root, {})[sender] = sig
            messages.setdefault(root, message)
    return by_root, messages


def _candidates(
    state: NodeState, rec: DutyRecord, key: str, vd: ValidatorDuty
) -> tuple[str, dict[int, bytes], Any] | None:
    """(root, {share: partial}, message) with the most partials for this validator among the roots not
    combined yet, if one has M."""
    by_root, messages = _by_root(state, vd)
    done = rec.group_signed.get(key, {})
    if rec.id.kind in CONSENSUS_KINDS:
        if not state.config.guards.may_serve(rec.phase) or key not in rec.roots:
            return None  # wait until the decided data is persisted
        root = rec.roots[key]
        chosen = by_root.get(root, {})
    else:
        open_roots = [(len(p), r) for r, p in by_root.items() if r not in done]
        if not open_roots:
            return None
        root = max(open_roots)[1]
        chosen = by_root[root]
    if root in done or not state.config.guards.is_threshold_met(len(chosen), state.config.threshold):
        return None
    return root, {share: unhex(sig) for share, sig in chosen.items()}, messages.get(root)


def try_combine(state: NodeState, rec: DutyRecord, keys: list[str], out: Out) -> None:
    """Combine every listed validator that has M partials over one root; submit what combined (a
    second root of a sync committee message is combined for the signer API, not submitted)."""
    config = state.config
    sign_decided(state, rec, keys, out)  # signer mode: our own partial first, once it may be released
    submissions: list[tuple[str, Any]] = []
    ready: list[tuple[str, ValidatorDuty, str, Any]] = []
    jobs: list[bls.CombineJob] = []
    for key in dict.fromkeys(keys):
        vd = rec.validators.get(key)
        if vd is None or ((vd.submitted or vd.ended) and not many_roots(rec.id.kind)):
            continue
        if rec.id.kind in CONSENSUS_KINDS and vd.info is None:
            continue  # restored before its duty is known again: the submission needs the duty
        found = _candidates(state, rec, key, vd)
        if found is None:
            continue
        root, partials, message = found
        group = vd.pubkey
        shares = config.by_group[group].share_bytes
        verified = {config.share_index} if config.share_index in partials else set()
        jobs.append(bls.CombineJob(unhex(group), shares, unhex(root), partials, config.threshold, verified))
        ready.append((key, vd, root, message))
    # every validator's partials of this duty in one batch check (one pairing per distinct root)
    combinations = bls.verify_and_combine_many(jobs) if jobs else []
    again = []
    for (key, vd, root, message), combination in zip(ready, combinations, strict=True):
        for bad in combination.invalid:
            if vd.partials.get(bad, ("",))[0] == root:
                vd.partials.pop(bad)
            vd.peer_cosigned.pop((bad, root), None)
            vd.invalid_senders.add(bad)
            metric(out, "peer_message_dropped", cause="invalid_partial_signature", peer=bad)
        if combination.signature is None:
            continue
        signature = "0x" + combination.signature.hex()
        rec.group_signed.setdefault(key, {})[root] = signature
        again.append(key)
        if vd.submitted or vd.ended:
            continue  # another block root of a sync committee message: for the signer API only
        vd.submitted = True
        rec.combined[key] = signature
        metric(out, "signatures_combined", kind=rec.id.kind.name.lower())
        body = _combined(state, rec, key, vd, signature, message, out)
        if body is not None:
            submissions.append((key, body))
    if combinations and any(c.signature is not None for c in combinations):
        out.signal(state, GroupSigned(rec.id))
    if submissions:
        kind = KINDS[rec.id.kind].submission
        assert kind is not None
        fork = config.chain.fork_name(rec.id.slot)
        if kind is SubmissionKind.BLOCK:
            for key, body in submissions:
                out.append(SubmitToBN(rec.id, kind, body, fork, (pubkey_of(key),)))
        else:
            out.append(
                SubmitToBN(
                    rec.id,
                    kind,
                    [b for _, b in submissions],
                    fork,
                    tuple(pubkey_of(k) for k, _ in submissions),
                )
            )
    if again and many_roots(rec.id.kind):
        try_combine(state, rec, again, out)  # a further root of the same validators may have M too


def _combined(
    state: NodeState, rec: DutyRecord, key: str, vd: ValidatorDuty, signature: str, message: Any, out: Out
) -> Any:
    """What a combined signature becomes: a BN submission body, or an input to another duty."""
    kind = rec.id.kind
    config = state.config
    if kind is DutyKind.RANDAO:
        finish(state, rec, key, True, out)
        out.signal(state, RandaoCombined(rec.id.slot))
        return None
    if kind in (DutyKind.PREPARE_AGGREGATOR, DutyKind.PREPARE_SYNC_CONTRIBUTION):
        finish(state, rec, key, True, out)
        _selection_combined(state, rec, key, signature, out)
        out.signal(state, SelectionCombined(rec.id))
        return None
    index = str(state.indices.get(vd.pubkey, ""))
    if kind is DutyKind.ATTESTER:
        info = vd.info or {}
        if fork_at_least(config.chain, rec.id.slot, "electra"):
            return {
                "committee_index": info.get("committee_index", "0"),
                "attester_index": index,
                "data": vd.data,
                "signature": signature,
            }
        bits = bitlist_single(int(info["committee_length"]), int(info["validator_committee_index"]))
        return {"aggregation_bits": bits, "data": vd.data, "signature": signature}
    if kind is DutyKind.PROPOSER:
        proposal = vd.data
        block = proposal["block"]
        if "slot" not in block:  # deneb+ block contents
            return {
                "signed_block": {"message": block["block"], "signature": signature},
                "kzg_proofs": block.get("kzg_proofs", []),
                "blobs": block.get("blobs", []),
            }
        return {"message": block, "signature": signature}
    if kind is DutyKind.SYNC_MESSAGE:
        rec.combined_roots[key] = message["beacon_block_root"]
        out.signal(state, SyncMessageCombined(rec.id.slot))
        return {**message, "signature": signature}
    if kind in (DutyKind.AGGREGATOR, DutyKind.SYNC_CONTRIBUTION):
        return {"message": rec.signed[key], "signature": signature}
    log(out, "error", "combined a partial of a duty kind without submission", duty=str(rec.id))
    return None


def _selection_combined(state: NodeState, rec: DutyRecord, key: str, proof: str, out: Out) -> None:
    """A combined selection proof: if it selects the validator, it holds an aggregation duty."""
    chain = state.config.chain
    slot = rec.id.slot
    if rec.id.kind is DutyKind.PREPARE_AGGREGATOR:
        attester = state.duties.get(DutyId(slot, DutyKind.ATTESTER))
        info = attester.validators[key].info if attester and key in attester.validators else None
        if info is None or not is_aggregator(chain, int(info["committee_length"]), proof):
            return
        aggregation = record(state, DutyId(slot, DutyKind.AGGREGATOR), out)
        schedule(aggregation, key, {**info, "selection_proof": proof}, out)
    else:
        if not is_sync_committee_aggregator(chain, proof):
            return
        pubkey, sub = key.split("/", 1)
        aggregation = record(state, DutyId(slot, DutyKind.SYNC_CONTRIBUTION), out)
        schedule(
            aggregation,
            key,
            {
                "subcommittee_index": sub,
                "selection_proof": proof,
                "validator_index": str(state.indices.get(pubkey, "")),
            },
            out,
        )
    if state.config.guards.may_serve(aggregation.phase):  # restored at a restart: it can be signed now
        out.signal(state, AggregationSelected(aggregation.id, key))


def on_submitted(
    state: NodeState, duty: DutyId, pubkeys: tuple[str, ...], ok: bool, error: str, out: Out
) -> None:
    rec = state.duties.get(duty)
    if rec is None:
        return
    wanted = set(pubkeys)
    for key, vd in rec.validators.items():
        if vd.pubkey in wanted and vd.submitted:
            finish(state, rec, key, ok, out, None if ok else Reason.BROADCAST_BN_ERROR)
    if not ok:
        log(out, "warn", "beacon node refused a submission", duty=str(duty), error=error)
