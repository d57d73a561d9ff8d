"""Whole-cluster simulation (model/cluster_sim.py): every duty kind end to end with real BLS, judged
by the simulated chain; faults tolerated; deliberately broken node models caught."""

from __future__ import annotations

from functools import cache

import pytest

from covalidator.proofs.mutants import PLANTED_BUGS
from covalidator.sim.cluster import (
    ByzantineBehaviour,
    ClusterResult,
    ClusterScenario,
    run_cluster,
)
from covalidator.sim.network import Partition
from covalidator.sim.vc import VCBehaviour

pytestmark = pytest.mark.usefixtures("blst_backend")  # (conftest: CI time)

ALL_KINDS = {"attester", "aggregator", "proposer", "sync_message", "sync_contribution"}


@cache
def run(**kwargs: object) -> ClusterResult:
    return run_cluster(ClusterScenario(**kwargs))  # type: ignore[arg-type]


def assert_safe(result: ClusterResult) -> None:
    assert result.violation is None, result.prefix_tail
    assert result.slashable_pairs == []
    assert result.invalid_submissions == []
    assert result.double_submissions == 0
    assert result.served_before_persisted == 0
    assert result.errors == []


def test_every_duty_kind_succeeds_on_chain_with_real_threshold_signatures() -> None:
    result = run(validators=8, epochs=2, seed=3)
    assert_safe(result)
    assert set(result.succeeded_by_kind) == ALL_KINDS
    assert result.succeeded == result.duties > 100
    assert result.failed_by_reason == {}
    assert 0 < result.percentile(50) < 1_000 <= result.percentile(99)  # p99: the drops before GST


def test_a_seed_names_the_run_exactly() -> None:
    first = run_cluster(ClusterScenario(validators=4, epochs=1, seed=11, byzantine=1)).to_json_dict()
    again = run_cluster(ClusterScenario(validators=4, epochs=1, seed=11, byzantine=1)).to_json_dict()
    first.pop("wall_s"), again.pop("wall_s")
    assert first == again


@pytest.mark.parametrize("behaviour", [b for b in ByzantineBehaviour if b is not ByzantineBehaviour.MIXED])
def test_one_byzantine_node_of_four_breaks_nothing(behaviour: ByzantineBehaviour) -> None:
    result = run(validators=8, epochs=4, seed=5, byzantine=1, byzantine_behaviour=behaviour)
    assert_safe(result)
    assert result.stable_success_pct >= 99.0, result.failed_by_reason


def test_a_node_that_crashes_and_restarts_from_its_store_stays_safe() -> None:
    result = run(validators=8, epochs=3, seed=2, crash=1)
    assert_safe(result)
    assert len(result.plan.crashes) == 1
    assert result.stable_success_pct >= 99.0, result.failed_by_reason


def test_a_partition_before_gst_heals() -> None:
    result = run(validators=8, epochs=3, seed=4, partition=True)
    assert_safe(result)
    assert result.stable_success_pct >= 99.0, result.failed_by_reason


@pytest.mark.parametrize("behaviour", [VCBehaviour.OTHER_DATA, VCBehaviour.MISSING, VCBehaviour.SLOW])
def test_one_faulty_validator_client_is_tolerated(behaviour: VCBehaviour) -> None:
    result = run(validators=8, epochs=2, seed=6, faulty_vcs=((0, behaviour),))
    assert_safe(result)
    assert result.stable_success_pct >= 99.0, result.failed_by_reason


def test_beyond_the_fault_tolerance_duties_fail_but_nothing_is_slashable() -> None:
    result = run(validators=8, epochs=2, seed=7, byzantine=2, byzantine_behaviour=ByzantineBehaviour.SILENT)
    assert_safe(result)
    # 2 honest nodes never reach a QBFT quorum of 3: no duty with consensus succeeds (a silent
    # Byzantine node that still listens may combine sync messages with the honest partials)
    assert not set(result.succeeded_by_kind) & {"attester", "aggregator", "proposer", "sync_contribution"}
    assert result.failed_by_kind["attester"] == 8 * 2
    reasons = result.failed_by_reason
    assert set(reasons) <= {"no_consensus", "insufficient_peer_signatures", "no_randao", "no_outcome"}
    # no outcome only where no node could know of the duty: an aggregator or sync contribution whose
    # selection proof was never combined
    kinds = result.failed_by_kind
    assert reasons.get("no_outcome", 0) <= kinds.get("aggregator", 0) + kinds.get("sync_contribution", 0)


def planted(name: str, **kwargs: object) -> ClusterResult:
    bug = PLANTED_BUGS[name]
    return run_cluster(
        ClusterScenario(guards=bug.guards, store_recheck=bug.store_recheck, planted_bug=name, **kwargs)  # type: ignore[arg-type]
    )


# A slow disk (300 ms to commit) and VCs that ask up to 400 ms late: some requests arrive while a
# decided value is still being written.
SLOW_STORE = {"validators": 8, "epochs": 1, "store_ms": 300, "vc_jitter_ms": 400}


def test_serving_while_persisting_is_caught() -> None:
    result = planted("serve-while-persisting", **SLOW_STORE)
    assert result.violation is not None and result.violation.startswith("served_before_persisted")
    assert result.prefix_tail  # the events that led to it
    assert_safe(planted("none", **SLOW_STORE))


# Validator 0 (seed 102) attests at slot 23 (epoch 2) and slot 24 (epoch 3). Nodes 1 and 2 are cut off
# from 3 (Byzantine) and 4 from slot 23 until 300 ms before the slot-24 duty starts, so the slot-23
# attestation is decided only as the slot-24 one begins; node 3 leads slot 24's first round and
# proposes a vote surrounding validator 0's latest one wherever its own view cannot see it yet
# (`surround_unseen`). The store takes 300 ms to commit and the honest VCs are slow (1.4 s late),
# so they still ask for slot 23's data after it is decided.
UNSEEN = {
    "validators": 1,
    "epochs": 4,
    "seed": 102,
    "sync_members": 0,
    "reorg_rate": 0.0,
    "drop_rate": 0.0,
    "duplicate_rate": 0.0,
    "late_rate": 0.0,
    "byzantine": 1,
    "byzantine_nodes": (3,),
    "byzantine_behaviour": ByzantineBehaviour.SURROUND_UNSEEN,
    "partitions": (Partition(144_000, 151_700, frozenset({1, 2})),),
    "store_ms": 300,
    "faulty_vcs": ((1, VCBehaviour.SLOW), (2, VCBehaviour.SLOW), (4, VCBehaviour.SLOW)),
}


def test_without_the_ordering_rule_and_the_store_recheck_a_surround_is_signed() -> None:
    """Removing both guards of the DV-safety theorem gets a slashable pair on chain; either guard alone
    keeps the cluster safe (theorem dv_safety_each_guard_alone), as do both."""
    both_removed = planted("no-guards", **UNSEEN)
    assert both_removed.violation is not None, both_removed.failed_by_reason
    assert both_removed.violation.startswith("slashable_pair: validator 0: attestation (source 0, target 3")
    for name in ("none", "no-ordering-rule", "ignore-store-refusals"):
        result = planted(name, **UNSEEN)
        assert result.violation is None and result.slashable_pairs == [], (name, result.violation)


def test_without_slashing_checks_a_byzantine_leader_gets_a_slashable_pair_signed() -> None:
    bug = planted(
        "no-slashing-checks",
        validators=4,
        epochs=5,
        byzantine=1,
        byzantine_behaviour=ByzantineBehaviour.SLASHABLE,
    )
    assert bug.violation is not None and bug.violation.startswith("slashable_pair"), bug.violation
    fixed = run(validators=4, epochs=5, byzantine=1, byzantine_behaviour=ByzantineBehaviour.SLASHABLE)
    assert_safe(fixed)


def test_a_bn_without_data_yet_is_asked_again_while_consensus_runs() -> None:
    from covalidator.model.node.events import BeaconDataFailed, FetchBeaconData, StartTimer, TimerFired

    result = run_cluster(ClusterScenario(validators=4, epochs=2, seed=12, bn_error_rate=0.2), trace_node=1)
    assert_safe(result)
    failed = {e.duty for e, _ in result.trace if isinstance(e, BeaconDataFailed)}
    refetch_armed = {
        a.key.duty
        for _, acts in result.trace
        for a in acts
        if isinstance(a, StartTimer) and a.key.purpose == "refetch"
    }
    refetched = {
        e.key.duty
        for e, acts in result.trace
        if isinstance(e, TimerFired)
        and e.key.purpose == "refetch"
        and any(isinstance(a, FetchBeaconData) and a.duty == e.key.duty for a in acts)
    }
    assert failed and refetch_armed <= failed and refetched
    assert result.stable_success_pct >= 99.0, result.failed_by_reason
