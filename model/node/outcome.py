"""How a duty ends for each of its validators: exactly one DutyOutcome, success or a named reason.

Decides the reason a validator's duty failed when its deadline comes (`failure_reason`: the sharpest
one the duty's phase shows, from `model.outcomes.Reason`) and records every ending once (`finish`),
with the peers whose partial signatures never came.

Must not: decide anything about serving or signing; it only names what happened.
"""

from __future__ import annotations

from covalidator.model.duty import DutyKind
from covalidator.model.node.events import DutyOutcome
from covalidator.model.node.ordering import blocking
from covalidator.model.node.phases import DutyRecord, Phase, Trigger
from covalidator.model.node.state import NodeState, Out, combined_randao, metric, take_buffered
from covalidator.model.outcomes import Reason


def finish(
    state: NodeState, rec: DutyRecord, key: str, ok: bool, out: Out, reason: Reason | None = None
) -> None:
    """Record the validator's outcome for this duty, exactly once (`reason` when it failed)."""
    vd = rec.validators[key]
    if vd.ended:
        return
    vd.ended, vd.reason = True, None if ok else reason
    if (rec.id, key) in state.finished:
        return
    state.finished.add((rec.id, key))
    expected = set(range(1, state.config.n + 1)) - {state.config.share_index}
    missing = () if ok else tuple(sorted(expected - set(vd.partials)))
    text = "" if ok or reason is None else reason.value
    out.append(DutyOutcome(rec.id, vd.pubkey, ok, text, missing))
    metric(out, "duty_outcome", kind=rec.id.kind.name.lower(), result="success" if ok else text)


def on_deadline(state: NodeState, rec: DutyRecord, out: Out) -> bool:
    """The duty's deadline: every open validator ends with its reason, the duty is DONE. False when it
    was over already."""
    if rec.phase is Phase.DONE:
        return False
    for key, vd in rec.validators.items():
        if not vd.ended and (vd.info is not None or vd.own is not None):
            finish(state, rec, key, False, out, failure_reason(state, rec, key))
    rec.advance(Trigger.DEADLINE)
    rec.qbft = None
    take_buffered(state, rec)
    return True


def failure_reason(state: NodeState, rec: DutyRecord, key: str) -> Reason:
    vd = rec.validators[key]
    if rec.phase is Phase.WAITING:
        if rec.id.kind is DutyKind.PROPOSER and not combined_randao(state, rec.id.slot):
            return Reason.NO_RANDAO
        return Reason.OUT_OF_ORDER if blocking(state, rec) else Reason.DEADLINE_EXCEEDED
    if rec.phase is Phase.CONSENSUS:
        return Reason.FETCH_BN_ERROR if rec.fetch_error and not rec.input_received else Reason.NO_CONSENSUS
    if rec.phase is Phase.SIGNING:
        if vd.submitted:
            return Reason.BROADCAST_BN_ERROR
        if vd.invalid_senders and len(vd.partials) + (vd.own is not None) < state.config.threshold:
            return Reason.INVALID_PEER_SIGNATURE
        if vd.own is None and rec.id.kind is not DutyKind.RANDAO:
            return Reason.NO_LOCAL_VC_SIGNATURE
        return Reason.INSUFFICIENT_PEER_SIGNATURES
    return Reason.DEADLINE_EXCEEDED
