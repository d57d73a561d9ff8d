"""Trace replay, model side: a simulated node's every step round-trips through dataclasses-json and
replays to exactly the recorded actions; a tampered record is named at its first divergence."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from covalidator.model.node.codec import decode, encode
from covalidator.model.node.events import Persisted, ReplyToVC, Started
from covalidator.model.node.replay import replay
from covalidator.sim.cluster import ClusterResult, ClusterScenario, NodeRuntime, run_cluster

TRACED = 2
SCENARIO_OF_THE_FIXTURE = ClusterScenario(validators=4, epochs=2, seed=9, crash=1)  # tests/fixtures/traces


@cache
def traced_run() -> ClusterResult:
    return run_cluster(SCENARIO_OF_THE_FIXTURE, trace_node=TRACED)


def lives(trace: list[tuple[Any, list[Any]]]) -> list[list[tuple[Any, list[Any]]]]:
    out: list[list[tuple[Any, list[Any]]]] = []
    for event, actions in trace:
        if isinstance(event, Started):
            out.append([])
        out[-1].append((event, actions))
    return out


def through_json(trace: list[tuple[Any, list[Any]]]) -> list[tuple[Any, list[Any]]]:
    text = [json.dumps({"event": encode(e), "actions": [encode(a) for a in acts]}) for e, acts in trace]
    back = [json.loads(line) for line in text]
    return [(decode(r["event"]), [decode(a) for a in r["actions"]]) for r in back]


def node_config(scenario: ClusterScenario, node: int) -> Any:
    """The NodeConfig the simulator gives `node` in `scenario` (what replaying its trace needs)."""
    from covalidator.sim.cluster import ClusterRun
    from covalidator.sim.vc import SimVC

    run = ClusterRun(scenario)
    return NodeRuntime(run, node, SimVC(run.chain, node)).config


def config_of(result: ClusterResult) -> Any:
    return node_config(result.scenario, TRACED)


def test_every_step_round_trips_and_replays_exactly() -> None:
    result = traced_run()
    assert result.violation is None
    trace = result.trace
    assert len(trace) > 1_000
    assert any(isinstance(a, ReplyToVC) for _, acts in trace for a in acts)
    assert any(isinstance(e, Persisted) for e, _ in trace)
    decoded = through_json(trace)
    assert [encode(e) for e, _ in decoded] == [encode(e) for e, _ in trace]
    config = config_of(result)
    assert [c.node for c in result.plan.crashes] == [TRACED]  # the traced node crashes: two lives
    assert len(lives(decoded)) == 2
    for life in lives(decoded):
        outcome = replay(config, life)
        assert outcome.ok, (outcome.divergence and outcome.divergence.describe(), outcome.violations)
        assert outcome.steps == len(life)


def test_a_tampered_action_is_named_at_its_step() -> None:
    result = traced_run()
    life = lives(through_json(result.trace))[0]
    index = next(i for i, (_, acts) in enumerate(life) if any(isinstance(a, ReplyToVC) for a in acts))
    event, actions = life[index]
    k = next(j for j, a in enumerate(actions) if isinstance(a, ReplyToVC))
    forged = ReplyToVC(actions[k].request_id, 500, {"forged": True}, actions[k].version)
    life[index] = (event, [*actions[:k], forged, *actions[k + 1 :]])
    outcome = replay(config_of(result), life)
    assert outcome.divergence is not None and outcome.divergence.index == index
    assert f"step {index}" in outcome.divergence.describe() and "forged" in outcome.divergence.describe()
    assert outcome.steps == index + 1
