"""Trace replay, model side: rebuild a node from its recorded events alone and compare actions.

Decides what "the run is reproduced" means: feeding the recorded events, in order, to a fresh
`NodeState` built from the same configuration yields, step by step, exactly the recorded actions. The
first step where they differ is named (its index, the event, the expected and the replayed actions).
Along the way it checks the node's own invariants on the action stream (node/invariants.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from covalidator.model.cluster.config import NodeConfig
from covalidator.model.node.codec import encode
from covalidator.model.node.invariants import InvariantMonitor
from covalidator.model.node.state import NodeState
from covalidator.model.node.step import step


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
        monitor.observe(index, event, actions)
        if tuple(encode(a) for a in actions) != tuple(encode(a) for a in recorded):
            return ReplayResult(steps, Divergence(index, event, tuple(recorded), actions), monitor.violations)
    return ReplayResult(steps, None, monitor.violations)
