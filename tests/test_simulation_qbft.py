"""QBFT under the seeded fault-injecting simulator.

- 10,000 instances in CI, N in {4, 7}, B + C <= F, every Byzantine behaviour, partitions, crashes:
  zero violations of agreement, validity, integrity, honest conduct and the memory bound, and every
  instance decided after the network stabilises. The figures are printed (run with -s to see them).
- Planted bugs: the simulator finds them, prints the seed and the shortest failing prefix, and the seed
  replays the failure exactly.
"""

from __future__ import annotations

import pytest

from covalidator.model.qbft.rules import fault_tolerance
from covalidator.proofs.qbft_mutants import PLANTED_BUGS
from covalidator.sim.byzantine import BEHAVIOURS
from covalidator.sim.qbft import ConsensusScenario, ConsensusSummary, run_consensus, run_instance

# (scenario, instances, seed): 7,000 instances at N = 4 (F = 1), 3,000 at N = 7 (F = 2)
CI_RUNS = [
    (ConsensusScenario(nodes=4, byzantine=1), 2000, 101),
    (ConsensusScenario(nodes=4, crash=1), 1500, 102),
    (ConsensusScenario(nodes=4, byzantine=1, partition=True), 1500, 103),
    (ConsensusScenario(nodes=4, crash=1, partition=True), 1000, 104),
    (ConsensusScenario(nodes=4, partition=True), 1000, 105),
    (ConsensusScenario(nodes=7, byzantine=2), 1000, 201),
    (ConsensusScenario(nodes=7, byzantine=1, crash=1), 800, 202),
    (ConsensusScenario(nodes=7, crash=2, partition=True), 600, 203),
    (ConsensusScenario(nodes=7, byzantine=2, partition=True), 600, 204),
]


def describe(s: ConsensusSummary) -> str:
    sc = s.scenario
    return (
        f"N={sc.nodes} B={sc.byzantine} C={sc.crash} partition={sc.partition} seed={s.seed}: "
        f"{s.decided}/{s.instances} decided, rounds p50={s.rounds_percentile(50)} p99={s.rounds_percentile(99)} "
        f"max={s.worst_round} histogram={dict(sorted(s.round_histogram.items()))}, "
        f"{s.messages_per_instance:.1f} messages/instance, {s.forged} forgeries refused, violations={s.violations}"
    )


@pytest.fixture(scope="module")
def ci_results() -> list[ConsensusSummary]:
    """The CI simulation, run once per test session (about 45 s on one core)."""
    results = []
    for scenario, instances, seed in CI_RUNS:
        assert scenario.byzantine + scenario.crash <= fault_tolerance(scenario.nodes)
        results.append(run_consensus(scenario, instances, seed))
        print("\n" + describe(results[-1]))
    return results


@pytest.mark.slow
@pytest.mark.parametrize(
    "index",
    range(len(CI_RUNS)),
    ids=[f"N{s.nodes}-B{s.byzantine}-C{s.crash}{'-partition' if s.partition else ''}" for s, _, _ in CI_RUNS],
)
def test_ci_simulation_has_no_violation_and_decides_everything(
    ci_results: list[ConsensusSummary], index: int
) -> None:
    summary = ci_results[index]
    failures = "\n".join(f"{f.violation} (seed {f.seed}, instance {f.index})" for f in summary.failures)
    assert summary.total_violations == 0, failures
    assert summary.decided == summary.instances == CI_RUNS[index][1], f"undecided: {summary.undecided[:10]}"
    if summary.scenario.byzantine:
        assert summary.forged > 0  # forgeries were attempted and refused by the signature model


@pytest.mark.slow
def test_ci_simulation_totals(ci_results: list[ConsensusSummary]) -> None:
    """10,000+ instances, and every Byzantine behaviour took part."""
    total = sum(s.instances for s in ci_results)
    worst = max(s.worst_round for s in ci_results)
    behaviours: dict[str, int] = {}
    for s in ci_results:
        for b, n in s.behaviours.items():
            behaviours[b] = behaviours.get(b, 0) + n
    messages = sum(s.messages for s in ci_results) / total
    print(
        f"\nCI simulation: {total} instances, worst decided round {worst}, {messages:.1f} messages/instance, "
        f"byzantine behaviours {behaviours}"
    )
    assert total >= 10_000
    assert set(behaviours) == {str(b) for b in BEHAVIOURS}


def test_the_simulator_finds_a_planted_quorum_bug_and_replays_it_from_the_seed() -> None:
    scenario = ConsensusScenario(nodes=4, byzantine=1, rules=PLANTED_BUGS["quorum-2f"])
    summary = run_consensus(scenario, 200, seed=6, stop_on_violation=True)
    [failure] = summary.failures
    assert failure.violation is not None and failure.violation.startswith("agreement:")
    print(f"\nplanted quorum-2f found: seed {failure.seed} instance {failure.index}: {failure.violation}")
    print("\n".join(failure.prefix))
    # the seed replays it exactly, event for event
    replay = run_instance(scenario, failure.seed, failure.index)
    assert (replay.violation, replay.prefix) == (failure.violation, failure.prefix)
    # and the prefix is the shortest one of that run: one event fewer and the invariants still hold
    shorter = run_instance(scenario, failure.seed, failure.index, max_events=len(failure.prefix) - 1)
    assert shorter.violation is None
    # the same run with the real rules is fine
    assert (
        run_instance(ConsensusScenario(nodes=4, byzantine=1), failure.seed, failure.index).violation is None
    )


def test_the_simulator_finds_a_justification_that_ignores_the_prepared_value() -> None:
    """The coalition's lock-break play: harmless against J2, fatal without it."""
    scenario = ConsensusScenario(nodes=7, byzantine=2, behaviour="lock-break", rules=PLANTED_BUGS["no-j2"])
    summary = run_consensus(scenario, 50, seed=0, stop_on_violation=True)
    [failure] = summary.failures
    assert failure.violation is not None and failure.violation.startswith("agreement:")
    assert run_instance(scenario, failure.seed, failure.index).prefix == failure.prefix
    honest = run_consensus(
        ConsensusScenario(nodes=7, byzantine=2, behaviour="lock-break"), failure.index + 1, seed=0
    )
    assert honest.total_violations == 0 and honest.decided == honest.instances


@pytest.mark.parametrize("behaviour", [str(b) for b in BEHAVIOURS])
def test_each_byzantine_behaviour_alone(behaviour: str) -> None:
    summary = run_consensus(ConsensusScenario(nodes=4, byzantine=1, behaviour=behaviour), 150, seed=7)
    assert summary.total_violations == 0 and summary.decided == 150, describe(summary)
    assert summary.behaviours == {behaviour: 150}


def test_more_faults_than_f_are_reported_not_hidden() -> None:
    """With B > F nothing can be promised: two silent nodes of four leave no quorum, nothing decides,
    and the summary says so instead of hiding it (the CLI exits 0 only for a clean run within F)."""
    scenario = ConsensusScenario(nodes=4, byzantine=2, behaviour="silent")
    assert not scenario.within_tolerance
    summary = run_consensus(scenario, 20, seed=3)
    assert summary.instances == 20 and summary.decided == 0 and summary.undecided == list(range(20))
    assert summary.total_violations == 0  # silence is not a safety violation
