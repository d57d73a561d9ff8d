"""Hypothesis drives a 4-node cluster (every duty kind, real BLS, the simulated chain as judge) through
schedules it chooses: it advances time event by event, delivers in-flight peer messages early (out
of order), drops and duplicates them, and crashes and restarts co-validators (a restart keeps only
the durable store: slashing DB, decided values, outcomes; memory, timers and pending I/O are lost).

After every step: no slashable pair on chain, no invalid submission, no double submission, and no
decided data served to a VC before it was persisted (the cluster simulator's own invariant checks).
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from covalidator.sim.cluster import ClusterRun, ClusterScenario, build_nodes
from covalidator.sim.network import NetworkConfig, Simulator

NODES = 4
SCENARIO = ClusterScenario(
    nodes=NODES, validators=4, epochs=2, sync_members=2, seed=21, late_block_rate=0.2, reorg_rate=0.5
)


class ClusterMachine(RuleBasedStateMachine):
    scenario = SCENARIO

    def __init__(self) -> None:
        super().__init__()
        self.run = ClusterRun(self.scenario)
        self.runtimes = build_nodes(self.run)
        network = NetworkConfig(n=NODES, max_delay_after_gst_ms=0)  # no faults of its own
        self.sim = Simulator(dict(self.runtimes), network, random.Random(0), keep_events=False)
        genesis = self.run.chain.params.genesis_ms
        self.sim.begin([genesis - 500 - 100 * i for i in range(NODES)])
        self.steps = 0

    @rule(count=st.integers(1, 400))
    def advance(self, count: int) -> None:
        for _ in range(count):
            self.sim.step_next()
            self.steps += 1

    @precondition(lambda self: bool(self.sim.pending_deliveries()))
    @rule(pick=st.integers(0, 10**6))
    def deliver_early(self, pick: int) -> None:
        pending = self.sim.pending_deliveries()
        self.sim.deliver_now(pending[pick % len(pending)])

    @precondition(lambda self: bool(self.sim.pending_deliveries()))
    @rule(pick=st.integers(0, 10**6))
    def drop(self, pick: int) -> None:
        pending = self.sim.pending_deliveries()
        self.sim.drop(pending[pick % len(pending)])

    @precondition(lambda self: bool(self.sim.pending_deliveries()))
    @rule(pick=st.integers(0, 10**6))
    def duplicate(self, pick: int) -> None:
        pending = self.sim.pending_deliveries()
        self.sim.duplicate(pending[pick % len(pending)])

    @rule(node=st.integers(1, NODES))
    def crash(self, node: int) -> None:
        self.sim.crash_now(node)

    @rule(node=st.integers(1, NODES))
    def restart(self, node: int) -> None:
        self.sim.restart_now(node)

    @invariant()
    def nothing_unsafe(self) -> None:
        judge = self.run.chain.judge
        assert judge.slashable_pairs == [], judge.slashable_pairs
        honest_invalid = [v for v in judge.invalid if v.node in self.runtimes]
        assert honest_invalid == [], honest_invalid
        assert self.run.figures.double_submissions == 0
        assert self.run.figures.served_before_persisted == 0
        assert self.run.violations == [], self.run.violations


def test_the_machine_reaches_signed_duties() -> None:
    """The machine's schedule reaches the chain (so its invariants are not vacuous)."""
    machine = ClusterMachine()
    machine.advance(20_000)
    machine.nothing_unsafe()
    assert len(machine.run.chain.judge.done) > 20


TestCluster = ClusterMachine.TestCase
TestCluster.settings = settings(
    max_examples=12,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def test_the_machine_catches_serving_while_persisting() -> None:
    """With the planted bug, a slow store and VCs that ask late, the machine finds decided data
    served before the store said it was durable."""
    import dataclasses

    from hypothesis.stateful import run_state_machine_as_test

    from covalidator.proofs.mutants import PLANTED_BUGS

    class Planted(ClusterMachine):
        scenario = dataclasses.replace(
            SCENARIO, guards=PLANTED_BUGS["serve-while-persisting"].guards, store_ms=300, vc_jitter_ms=400
        )

    with pytest.raises(AssertionError, match=r"served_before_persisted|before Persisted"):
        run_state_machine_as_test(
            Planted,
            settings=settings(
                max_examples=30,
                stateful_step_count=30,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            ),
        )
