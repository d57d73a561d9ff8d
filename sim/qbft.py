"""The consensus simulator: many independent QBFT instances, each on its own seeded faulty network.

Decides the *scenario* of each simulated instance (which nodes are Byzantine and how, which crash and
when, when the network stabilises, how partitioned it is before) and gathers the figures; the network
itself is `simulation`, the attacks `qbft_byzantine`, the invariants `qbft_checker`.

Instance k of a run with seed S draws everything from `random.Random(f"qbft/{S}/{k}")` (scenario) and
`random.Random(f"net/{S}/{k}")` (network), so `run_instance(scenario, S, k)` replays it exactly, event
for event; a failure carries S, k, the violated invariant and the events up to the violation.

Honest inputs differ per node (each node's beacon node returns its own data), so agreement is not
trivially true. A value is valid iff its body starts with `VALID_PREFIX`; Byzantine nodes also hold
valid alternatives (to equivocate with) and an invalid value. A crashed node restarts with its
persisted decision only (memory lost: `qbft.restart`) and is fed its input again.

"Decided" for an instance means every non-Byzantine node decided before the instance's deadline,
which is set `LIVENESS_ROUNDS_AFTER_GST` rounds after the last fault heals: with B + C <= F every
instance must decide (after GST at most B + C leaders are faulty in a row, plus one round to resync).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import cast

from covalidator.model.duty import DutyId, DutyKind
from covalidator.model.qbft import instance as qbft
from covalidator.model.qbft.events import (
    Broadcast,
    Decide,
    InputValue,
    QbftAction,
    QbftEvent,
    Received,
    Send,
    StartTimer,
    TimerFired,
    TimerKind,
)
from covalidator.model.qbft.messages import Envelope, Message, Value, canonical_json, make_value
from covalidator.model.qbft.rules import RULES, Rules, fault_tolerance
from covalidator.sim.byzantine import BEHAVIOURS, INPUT, Behaviour, ByzantineNode, Coalition
from covalidator.sim.checker import INVARIANTS, ConsensusChecker
from covalidator.sim.network import (
    Crash,
    Effect,
    EventRecord,
    NetBroadcast,
    NetSend,
    NetTimer,
    NetworkConfig,
    Partition,
    SimNode,
    Simulator,
)

VALID_PREFIX = b'{"kind":"valid"'
LIVENESS_ROUNDS_AFTER_GST = 6  # + one round per possibly faulty leader (B + C) and per node
MIXED = "mixed"

StepFunction = Callable[
    [qbft.InstanceState, QbftEvent, Callable[[Value], bool], Rules],
    tuple[qbft.InstanceState, tuple[QbftAction, ...]],
]


def is_valid_sim_value(value: Value) -> bool:
    return bool(value.body.startswith(VALID_PREFIX))


def sim_value(label: str, slot: int, valid: bool = True) -> Value:
    return make_value(canonical_json({"kind": "valid" if valid else "invalid", "label": label, "slot": slot}))


@dataclass(frozen=True)
class ConsensusScenario:
    nodes: int = 4
    byzantine: int = 0
    crash: int = 0
    partition: bool = False
    behaviour: str = MIXED  # a Behaviour, or "mixed": each Byzantine node draws one per instance
    drop_rate: float = 0.15
    duplicate_rate: float = 0.05
    late_rate: float = 0.1
    max_gst_ms: int = 3_000
    round_duration_ms: int = 1_000
    rules: Rules = RULES  # tests plant bugs here

    def __post_init__(self) -> None:
        assert self.nodes >= 1 and self.byzantine >= 0 and self.crash >= 0
        assert self.byzantine + self.crash <= self.nodes
        assert self.behaviour == MIXED or self.behaviour in BEHAVIOURS

    @property
    def within_tolerance(self) -> bool:
        return bool(self.byzantine + self.crash <= fault_tolerance(self.nodes))


@dataclass(frozen=True)
class InstancePlan:
    instance: DutyId
    byzantine: dict[int, Behaviour]
    network: NetworkConfig
    input_delay_ms: dict[int, int]
    expiry_ms: int


def plan_instance(scenario: ConsensusScenario, seed: int, index: int) -> InstancePlan:
    rng = random.Random(f"qbft/{seed}/{index}")
    n, d = scenario.nodes, scenario.round_duration_ms
    ids = list(range(1, n + 1))
    byzantine = sorted(rng.sample(ids, scenario.byzantine))
    behaviours = {
        b: Behaviour(scenario.behaviour) if scenario.behaviour != MIXED else rng.choice(BEHAVIOURS)
        for b in byzantine
    }
    crashing = sorted(rng.sample([i for i in ids if i not in behaviours], scenario.crash))
    gst = rng.randint(0, scenario.max_gst_ms)
    partitions: tuple[Partition, ...] = ()
    if scenario.partition and n > 1:
        gst = max(gst, d)
        group = frozenset(rng.sample(ids, rng.randint(1, n // 2)))
        partitions = (Partition(rng.randint(0, gst // 2), gst, group),)
    crashes = []
    for node in crashing:
        at = rng.randint(0, gst + d)
        crashes.append(Crash(node, at, at + rng.randint(d // 10, 2 * d)))
    healed = max([gst, *(c.restart_ms for c in crashes)])
    last_round = healed // d + 1 + LIVENESS_ROUNDS_AFTER_GST + scenario.byzantine + scenario.crash
    network = NetworkConfig(
        n=n,
        drop_rate=scenario.drop_rate,
        duplicate_rate=scenario.duplicate_rate,
        late_rate=scenario.late_rate,
        late_max_ms=int(2.5 * d),
        gst_ms=gst,
        partitions=partitions,
        crashes=tuple(crashes),
    )
    return InstancePlan(
        instance=DutyId(index, DutyKind.ATTESTER),
        byzantine=behaviours,
        network=network,
        input_delay_ms={i: rng.randint(0, d // 5) for i in ids},
        expiry_ms=last_round * d,
    )


class _Run:
    """What the nodes of one simulated instance share: the checker, the signatures made, the decisions."""

    def __init__(self, scenario: ConsensusScenario, plan: InstancePlan, step: StepFunction) -> None:
        self.scenario = scenario
        self.plan = plan
        self.step = step
        self.byzantine = frozenset(plan.byzantine)
        self.checker = ConsensusChecker(
            scenario.nodes, plan.instance, self.byzantine, is_valid_sim_value, scenario.rules
        )
        self.signed: set[Message] = set()  # every message an honest node signed: all a forger can replay
        self.undecided = scenario.nodes - len(self.byzantine)
        self.decided_round = 0

    def authentic(self, sender: int, env: Envelope) -> bool:
        if sender not in self.byzantine:
            return True  # honest nodes only send what they signed or relay what others signed
        return all(m.sender in self.byzantine or m in self.signed for m in (env.message, *env.justification))


class HonestNode:
    """A `SimNode` running the real `qbft.step` (a node that follows the protocol)."""

    def __init__(self, run: _Run, config: qbft.InstanceConfig, value: Value, input_delay_ms: int) -> None:
        self.run = run
        self.cfg = config
        self.me = config.self_index
        self.value = value
        self.input_delay_ms = input_delay_ms
        self.state: qbft.InstanceState | None = None
        self.decision: qbft.Decision | None = None  # persisted: survives a crash

    def start(self, now_ms: int) -> Iterable[Effect[Envelope]]:
        self.state, actions = qbft.init(self.cfg)
        return [*self._effects(actions), NetTimer(now_ms + self.input_delay_ms, INPUT)]

    def deliver(self, now_ms: int, sender: int, payload: Envelope) -> Iterable[Effect[Envelope]]:
        return self._step(Received(payload))

    def timer(self, now_ms: int, tag: Hashable) -> Iterable[Effect[Envelope]]:
        if tag == INPUT:
            return self._step(InputValue(self.cfg.instance, self.value))
        kind, round, at_ms = cast(tuple[TimerKind, int, int], tag)
        return self._step(TimerFired(self.cfg.instance, kind, round, at_ms))

    def crash(self, now_ms: int) -> None:
        self.state = None

    def restart(self, now_ms: int) -> Iterable[Effect[Envelope]]:
        self.run.checker.observe_restart(self.me)
        self.state, actions = qbft.restart(self.cfg, now_ms, self.decision)
        effects = self._effects(actions)
        if self.decision is None:
            effects.append(NetTimer(now_ms + self.input_delay_ms, INPUT))
        return effects

    def _step(self, event: QbftEvent) -> list[Effect[Envelope]]:
        if self.state is None:
            return []
        self.state, actions = self.run.step(self.state, event, is_valid_sim_value, self.run.scenario.rules)
        return self._effects(actions)

    def _effects(self, actions: Iterable[QbftAction]) -> list[Effect[Envelope]]:
        effects: list[Effect[Envelope]] = []
        for action in actions:
            if isinstance(action, Broadcast | Send):
                self.run.signed.add(action.envelope.message)
                self.run.checker.observe_send(self.me, action.envelope)
                effects.append(
                    NetBroadcast(action.envelope)
                    if isinstance(action, Broadcast)
                    else NetSend(action.to, action.envelope)
                )
            elif isinstance(action, StartTimer):
                effects.append(NetTimer(action.at_ms, (action.kind, action.round, action.at_ms)))
            elif isinstance(action, Decide):
                self.run.checker.observe_decide(self.me, action)
                if self.decision is None:
                    self.decision = qbft.Decision(action.round, action.value, action.commits)
                    self.run.undecided -= 1
                    self.run.decided_round = max(self.run.decided_round, action.round)
        return effects


@dataclass
class InstanceResult:
    seed: int
    index: int
    decided: bool
    decided_round: int  # the highest round in which a non-Byzantine node decided (0: none decided)
    messages: int  # point-to-point messages sent by all nodes (a broadcast counts N - 1)
    events: int
    end_ms: int
    forged: int
    violation: str | None = None
    violations: dict[str, int] = field(default_factory=dict)
    prefix: list[str] = field(default_factory=list)
    behaviours: list[str] = field(default_factory=list)


def run_instance(
    scenario: ConsensusScenario,
    seed: int,
    index: int,
    *,
    step: StepFunction = qbft.step,
    keep_events: bool = True,
    max_events: int = 2_000_000,
) -> InstanceResult:
    """Simulate instance `index` of seed `seed`; deterministic. `max_events` stops it early (to show
    that a failing prefix is the shortest: one event fewer and the invariant still holds)."""
    plan = plan_instance(scenario, seed, index)
    run = _Run(scenario, plan, step)
    n = scenario.nodes
    honest = [i for i in range(1, n + 1) if i not in plan.byzantine]
    coalition = Coalition(run.byzantine, n, scenario.rules.quorum_size(n))
    scenario_rng = random.Random(f"byzantine/{seed}/{index}")
    alternatives = [sim_value(f"byzantine-{k}", index) for k in range(3)]
    invalid = sim_value("byzantine", index, valid=False)
    nodes: dict[int, SimNode[Envelope]] = {}
    for i in range(1, n + 1):
        config = qbft.InstanceConfig(
            plan.instance,
            n,
            i,
            start_ms=0,
            expiry_ms=plan.expiry_ms,
            round_duration_ms=scenario.round_duration_ms,
        )
        if i in plan.byzantine:
            nodes[i] = ByzantineNode(
                config,
                plan.byzantine[i],
                coalition,
                run.checker,
                scenario_rng,
                honest,
                alternatives,
                invalid,
                scenario.rules,
            )
        else:
            nodes[i] = HonestNode(run, config, sim_value(f"node-{i}", index), plan.input_delay_ms[i])

    def check(record: EventRecord[Envelope]) -> str | None:
        node = nodes[record.node]
        if isinstance(node, HonestNode) and node.state is not None:
            run.checker.observe_state(record.node, node.state)
        return run.checker.take_violation()

    simulator = Simulator(
        nodes,
        plan.network,
        random.Random(f"net/{seed}/{index}"),
        check=check,
        authentic=run.authentic,
        keep_events=keep_events,
        max_events=max_events,
    )
    outcome = simulator.run(plan.expiry_ms, done=lambda: run.undecided == 0)
    return InstanceResult(
        seed=seed,
        index=index,
        decided=run.undecided == 0,
        decided_round=run.decided_round,
        messages=outcome.stats.sent,
        events=len(outcome.events),
        end_ms=outcome.end_ms,
        forged=outcome.stats.forged,
        violation=outcome.violation,
        violations={k: v for k, v in run.checker.violations.items() if v},
        prefix=[e.describe() for e in outcome.failing_prefix],
        behaviours=sorted(str(b) for b in plan.byzantine.values()),
    )


@dataclass
class ConsensusSummary:
    scenario: ConsensusScenario
    seed: int
    instances: int = 0
    decided: int = 0
    messages: int = 0
    forged: int = 0
    round_histogram: dict[int, int] = field(default_factory=dict)
    violations: dict[str, int] = field(default_factory=lambda: dict.fromkeys(INVARIANTS, 0))
    failures: list[InstanceResult] = field(default_factory=list)
    undecided: list[int] = field(default_factory=list)
    behaviours: dict[str, int] = field(default_factory=dict)  # Byzantine node-instances per behaviour

    def add(self, result: InstanceResult, keep_failures: int = 5) -> None:
        self.instances += 1
        self.messages += result.messages
        self.forged += result.forged
        if result.decided:
            self.decided += 1
            self.round_histogram[result.decided_round] = self.round_histogram.get(result.decided_round, 0) + 1
        else:
            self.undecided.append(result.index)
        for invariant, count in result.violations.items():
            self.violations[invariant] += count
        for behaviour in result.behaviours:
            self.behaviours[behaviour] = self.behaviours.get(behaviour, 0) + 1
        if result.violation is not None and len(self.failures) < keep_failures:
            self.failures.append(result)

    @property
    def total_violations(self) -> int:
        return sum(self.violations.values())

    def rounds_percentile(self, p: float) -> int:
        """Nearest-rank percentile of the decided round over decided instances (0 if none)."""
        total = sum(self.round_histogram.values())
        if total == 0:
            return 0
        rank = max(1, math.ceil(p / 100 * total))
        seen = 0
        for round in sorted(self.round_histogram):
            seen += self.round_histogram[round]
            if seen >= rank:
                return round
        return max(self.round_histogram)

    @property
    def worst_round(self) -> int:
        return max(self.round_histogram, default=0)

    @property
    def messages_per_instance(self) -> float:
        return self.messages / self.instances if self.instances else 0.0

    def to_json_dict(self) -> dict[str, object]:
        s = self.scenario
        return {
            "nodes": s.nodes,
            "byzantine": s.byzantine,
            "crash": s.crash,
            "partition": s.partition,
            "behaviour": s.behaviour,
            "seed": self.seed,
            "within_tolerance": s.within_tolerance,
            "instances": self.instances,
            "decided": self.decided,
            "undecided_instances": self.undecided[:20],
            "agreement_violations": self.violations["agreement"],
            "validity_violations": self.violations["validity"],
            "integrity_violations": self.violations["integrity"],
            "conduct_violations": self.violations["conduct"],
            "memory_violations": self.violations["memory"],
            "rounds_p50": self.rounds_percentile(50),
            "rounds_p99": self.rounds_percentile(99),
            "rounds_max": self.worst_round,
            "round_histogram": {str(k): v for k, v in sorted(self.round_histogram.items())},
            "messages_per_instance": round(self.messages_per_instance, 1),
            "forgeries_refused": self.forged,
            "byzantine_behaviours": dict(sorted(self.behaviours.items())),
            "failures": [
                {"seed": f.seed, "instance": f.index, "violation": f.violation, "prefix": f.prefix}
                for f in self.failures
            ],
        }


def run_consensus(
    scenario: ConsensusScenario,
    instances: int,
    seed: int,
    *,
    first_index: int = 0,
    on_instance: Callable[[InstanceResult], None] | None = None,
    stop_on_violation: bool = False,
    step: StepFunction = qbft.step,
) -> ConsensusSummary:
    """Simulate instances first_index .. first_index + instances - 1 of `seed`."""
    summary = ConsensusSummary(scenario, seed)
    for index in range(first_index, first_index + instances):
        result = run_instance(scenario, seed, index, step=step)
        summary.add(result)
        if on_instance is not None:
            on_instance(result)
        if stop_on_violation and result.violation is not None:
            break
    return summary
