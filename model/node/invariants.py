"""The node's own invariants, watched on its event and action stream (by trace replay and the simulator).

- persist before serve: decided data reaches the VC (a 200 ReplyToVC to a data request) only for a
  duty whose Persisted event (or restore from the store at Started) came earlier in this life, and,
  where the driver knows the store (the simulator), only data the store holds for the duty;
- sign after persist (signer mode): this node's own partial of a consensus duty is asked of the
  runtime (`SignWithShare`) only for a duty whose Persisted came earlier in this life;
- one submission per (duty, validator) per life, and after a restart never a different message for
  a (duty, validator) submitted before.

Each violation is one line naming the invariant (`served_before_persisted: ...`,
`signed_before_persisted: ...`, `double_submission: ...`), the step and the duty.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from covalidator.model.duty import CONSENSUS_KINDS, POOL_KINDS, REQUEST_DUTY, DutyId, DutyKind, VCRequestKind
from covalidator.model.node.codec import to_json
from covalidator.model.node.events import Persisted, ReplyToVC, SignWithShare, Started, SubmitToBN, VCRequest

DATA_REQUESTS = frozenset(
    {
        VCRequestKind.ATTESTATION_DATA,
        VCRequestKind.BLOCK,
        VCRequestKind.AGGREGATE_ATTESTATION,
        VCRequestKind.SYNC_CONTRIBUTION,
    }
)


def request_duty(event: VCRequest) -> DutyId | None:
    """The duty a VC data request is for (as the node files it)."""
    params = event.params if isinstance(event.params, dict) else {}
    if (
        event.kind in DATA_REQUESTS
        and str(params.get("slot", "")).isascii()
        and str(params.get("slot", "")).isdigit()
    ):
        return DutyId(int(params["slot"]), REQUEST_DUTY[event.kind])
    return None


@dataclass
class InvariantMonitor:
    """Watches one node, life after life. `stored(duty)`, when given, is what its store holds for the
    duty: the decided values (a served proposal is compared by its block)."""

    stored: Callable[[DutyId], list[Any]] | None = None
    persisted: set[DutyId] = field(default_factory=set)
    data_requests: dict[int, DutyId] = field(default_factory=dict)
    submitted: set[tuple[DutyId, str]] = field(default_factory=set)
    bodies: dict[tuple[DutyId, str], Any] = field(default_factory=dict)  # across lives
    violations: list[str] = field(default_factory=list)

    def observe(self, index: int, event: Any, actions: Sequence[Any]) -> None:
        if isinstance(event, Started):
            self.persisted = {d.duty for d in event.decided}
            self.data_requests.clear()
            self.submitted.clear()
        elif isinstance(event, Persisted):
            self.persisted.add(event.duty)
        elif isinstance(event, VCRequest):
            duty = request_duty(event)
            if duty is not None:
                self.data_requests[event.request_id] = duty
        for action in actions:
            if isinstance(action, ReplyToVC):
                duty = self.data_requests.pop(action.request_id, None)
                if duty is not None and action.status == 200:
                    self._served(index, duty, action.body)
            elif isinstance(action, SubmitToBN):
                self._submitted(index, action)
            elif isinstance(action, SignWithShare):
                for item in action.items:
                    if item.duty.kind in CONSENSUS_KINDS and item.duty not in self.persisted:
                        self.violations.append(
                            f"signed_before_persisted: step {index} signed {item.duty} before Persisted"
                        )

    def _served(self, index: int, duty: DutyId, body: Any) -> None:
        if duty not in self.persisted:
            self.violations.append(
                f"served_before_persisted: step {index} served data of {duty} before Persisted"
            )
            return
        if self.stored is None:
            return
        served = body.get("data") if isinstance(body, dict) else None
        values = self.stored(duty)
        if duty.kind is DutyKind.PROPOSER:
            values = [v.get("block") for v in values if isinstance(v, dict)]
        if served not in values:
            self.violations.append(
                f"served_before_persisted: step {index} served data of {duty} its store does not hold"
            )

    def _submitted(self, index: int, action: SubmitToBN) -> None:
        if action.duty.kind in POOL_KINDS:
            return  # no slot: registrations go to the BN each epoch, an exit until it is on chain (by design)
        objects = action.body if isinstance(action.body, list) else [action.body]
        for pubkey, obj in zip(action.pubkeys, objects, strict=False):
            key = (action.duty, pubkey)
            if key in self.submitted:
                self.violations.append(
                    f"double_submission: step {index} submitted {action.duty} for {pubkey} twice"
                )
            self.submitted.add(key)
            body = to_json(obj)
            if self.bodies.setdefault(key, body) != body:
                self.violations.append(
                    f"double_submission: step {index} submitted another message for {action.duty} {pubkey} "
                    "than before a restart"
                )
