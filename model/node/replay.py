"""Trace replay, model side: rebuild a node from its recorded events alone and compare actions.

Decides what "the run is reproduced" means: feeding the recorded events, in order, to a fresh
`NodeState` built from the same configuration yields, step by step, exactly the recorded actions. The
first step where they differ is named (its index, the event, the expected and the replayed actions).
Along the way it checks the node's own invariants on the action stream:
  - persist before serve: decided data reaches the VC (a 200 ReplyToVC to a data request) only for a
    duty whose Persisted event (or restore from the store at Started) came earlier;
  - one submission per (duty, validator) per incarnation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from covalidator.model.cluster.config import NodeConfig
from covalidator.model.duty import DutyId
from covalidator.model.node.events import (
    Persisted,
    ReplyToVC,
    Started,
    SubmitToBN,
    VCRequest,
    VCRequestKind,
    encode,
)
from covalidator.model.node.state import NodeState
from covalidator.model.node.step import step

DATA_REQUESTS = {
    VCRequestKind.ATTESTATION_DATA,
    VCRequestKind.BLOCK,
    VCRequestKind.AGGREGATE_ATTESTATION,
    VCRequestKind.SYNC_CONTRIBUTION,
}


@dataclass(frozen=True)
class Divergence:
    index: int
    event: Any
    expected: tuple[Any, ...]
    replayed: tuple[Any, ...]

    def describe(self) -> str:
        exp = [encode(a) for a in self.expected]
        got = [encode(a) for a in self.replayed]
        first = next(
            (i for i, (a, b) in enumerate(zip(exp, got, strict=False)) if a != b), min(len(exp), len(got))
        )
        return (
            f"step {self.index} ({type(self.event).__name__}): action {first} differs; "
            f"recorded {exp[first] if first < len(exp) else 'nothing'}, "
            f"replayed {got[first] if first < len(got) else 'nothing'}"
        )


@dataclass
class InvariantMonitor:
    """Watches one node's events and actions for the invariants above."""

    persisted: set[DutyId] = field(default_factory=set)
    data_requests: dict[int, DutyId] = field(default_factory=dict)
    submitted: set[tuple[DutyId, str]] = field(default_factory=set)
    violations: list[str] = field(default_factory=list)

    def observe(self, index: int, event: Any, actions: Sequence[Any], request_duty: Any = None) -> None:
        if isinstance(event, Started):
            self.persisted = {d.duty for d in event.decided}
            self.submitted.clear()
        elif isinstance(event, Persisted):
            self.persisted.add(event.duty)
        elif isinstance(event, VCRequest) and event.kind in DATA_REQUESTS and request_duty is not None:
            self.data_requests[event.request_id] = request_duty
        for action in actions:
            if isinstance(action, ReplyToVC) and action.status == 200:
                duty = self.data_requests.pop(action.request_id, None)
                if duty is not None and duty not in self.persisted:
                    self.violations.append(f"step {index}: served data of {duty} before it was persisted")
            elif isinstance(action, SubmitToBN):
                for pubkey in action.pubkeys:
                    if (action.duty, pubkey) in self.submitted:
                        self.violations.append(f"step {index}: second submission for {action.duty} {pubkey}")
                    self.submitted.add((action.duty, pubkey))


def request_duty(event: Any) -> DutyId | None:
    """The duty a VC data request is for (as the node files it)."""
    from covalidator.model.node.vc import REQUEST_DUTY

    if (
        isinstance(event, VCRequest)
        and isinstance(event.params, dict)
        and str(event.params.get("slot", "")).isdigit()
    ):
        return DutyId(int(event.params["slot"]), REQUEST_DUTY[event.kind])
    return None


@dataclass
class ReplayResult:
    steps: int
    divergence: Divergence | None
    violations: list[str]

    @property
    def ok(self) -> bool:
        return self.divergence is None and not self.violations


def replay(config: NodeConfig, records: Iterable[tuple[Any, Sequence[Any]]]) -> ReplayResult:
    """Feed each recorded event to a fresh node; compare its actions with the recorded ones."""
    state = NodeState(config)
    monitor = InvariantMonitor()
    steps = 0
    for index, (event, recorded) in enumerate(records):
        state, actions = step(state, event)
        steps += 1
        monitor.observe(index, event, actions, request_duty(event))
        if tuple(encode(a) for a in actions) != tuple(encode(a) for a in recorded):
            return ReplayResult(steps, Divergence(index, event, tuple(recorded), actions), monitor.violations)
    return ReplayResult(steps, None, monitor.violations)
