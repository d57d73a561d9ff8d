"""Signer mode in the cluster simulator: keyless VCs ask their node's Remote Signing API for every
signature (sim/vc.py `signer=True`), nodes sign with their shares. Seeded runs with a Byzantine
co-validator, a crash and a partition keep 0 slashable pairs, 0 invalid submissions and every
invariant (sign after persist included); a planted guard that releases before persist is caught."""

from __future__ import annotations

import pytest

from covalidator.proofs.mutants import PLANTED_BUGS
from covalidator.runtime.cli.simulate_cluster import MIN_SUCCESS_PCT
from covalidator.sim.cluster import ClusterScenario, run_cluster

pytestmark = pytest.mark.usefixtures("blst_backend")  # (conftest: CI time)

RUNS = [  # (byzantine, crash, partition, seed)
    (0, 0, False, 0),
    (1, 0, False, 1),
    (0, 1, False, 2),
    (0, 0, True, 3),
]


@pytest.mark.parametrize(("byzantine", "crash", "partition", "seed"), RUNS)
def test_signer_mode_keeps_safety_under_faults(
    byzantine: int, crash: int, partition: bool, seed: int
) -> None:
    scenario = ClusterScenario(
        validators=16, epochs=3, byzantine=byzantine, crash=crash, partition=partition, seed=seed, signer=True
    )
    result = run_cluster(scenario)
    assert result.violation is None, result.prefix_tail
    assert result.slashable_pairs == [] and result.invalid_submissions == []
    assert result.double_submissions == 0 and result.served_before_persisted == 0
    assert result.duties > 200
    assert result.stable_success_pct >= MIN_SUCCESS_PCT, result.failed_by_reason
    # every kind reached the chain through group signatures the VCs got from their nodes
    assert {"attester", "proposer", "aggregator", "sync_message", "sync_contribution"} <= set(
        result.to_json_dict()["succeeded_by_kind"]
    )
    if byzantine == crash == 0 and not partition:
        assert result.success_pct == 100.0 and result.vc_errors == {}


def test_a_planted_release_before_persist_is_caught_in_signer_mode() -> None:
    bug = PLANTED_BUGS["release-before-persist"]
    scenario = ClusterScenario(
        validators=8,
        epochs=1,
        signer=True,
        store_ms=300,  # a slow store: the window between decided and persisted is wide
        guards=bug.guards,
        planted_bug="release-before-persist",
    )
    result = run_cluster(scenario)
    assert result.violation is not None and result.violation.startswith("signed_before_persisted")
