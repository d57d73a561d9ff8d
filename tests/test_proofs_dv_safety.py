"""Theorems 4 (DV safety) and 5 (persist before serve) hold, and their broken variants are refuted."""

from __future__ import annotations

from covalidator.model.duty import DutyKind
from covalidator.model.node import phases as ds
from covalidator.model.qbft import rules as qbft_rules
from covalidator.proofs import dv_safety
from covalidator.proofs.harness import PROVED, REFUTED


def test_dv_safety_with_the_implementations_guards() -> None:
    result = dv_safety.dv_safety()
    assert result.status == PROVED, (result.detail, result.counterexample)


def test_each_guard_alone_suffices() -> None:
    result = dv_safety.dv_safety_each_guard_alone()
    assert result.status == PROVED, (result.detail, result.counterexample)


def test_skipping_the_ordering_rule_without_the_store_recheck_is_unsafe() -> None:
    """A node validating against a stale view (no ordering rule) that records without re-checking:
    Z3 produces two slashable attestations the honest node persisted both of."""
    result = dv_safety.dv_safety(guards=(), n_max=4)
    assert result.status == REFUTED
    cex = {k: int(v) for k, v in result.counterexample.items() if k in ("s1", "t1", "r1", "s2", "t2", "r2")}
    (s1, t1, r1), (s2, t2, r2) = (cex["s1"], cex["t1"], cex["r1"]), (cex["s2"], cex["t2"], cex["r2"])
    same = s1 == s2 and t1 == t2 and r1 >= 0 and r1 == r2
    assert (t1 == t2 and not same) or (s1 < s2 and t2 < t1) or (s2 < s1 and t1 < t2), cex


def test_a_threshold_of_f_is_unsafe_even_with_both_guards() -> None:
    result = dv_safety.dv_safety(n_max=7, thresholds=lambda n: [(n - 1) // 3 + (n == 1)])
    assert result.status == REFUTED


def test_the_theorem_holds_exactly_for_the_thresholds_the_code_accepts() -> None:
    """The lock validator (`threshold_refusal`, which the lock, create-cluster and NodeConfig call)
    and the theorem, fed the same (N, M) grid, agree: proved where accepted, refuted elsewhere."""
    disagreements = []
    for n in range(1, 17):
        for m in range(1, n + 1):
            proved = dv_safety.dv_safety_at(n, m).status == PROVED
            accepted = qbft_rules.threshold_refusal(n, m) is None
            if proved != accepted:
                disagreements.append((n, m, proved, accepted))
    assert disagreements == []
    # the thresholds the review found accepted before: refuted and refused
    for n, m in ((7, 4), (5, 3)):
        assert dv_safety.dv_safety_at(n, m).status == REFUTED
        refusal = qbft_rules.threshold_refusal(n, m)
        assert refusal is not None and "unsafe" in refusal and "dv_safety" in refusal


def test_more_than_f_byzantine_is_unsafe() -> None:
    result = dv_safety.dv_safety(n_max=7, faults=lambda n: (n - 1) // 3 + 2)
    assert result.status == REFUTED


def test_persist_before_serve_holds_on_the_real_table() -> None:
    result = dv_safety.persist_before_serve()
    assert result.status == PROVED


def test_serving_before_persisting_is_refuted_with_its_path() -> None:
    broken = dict(ds.transitions_for(DutyKind.ATTESTER))
    broken[(ds.Phase.CONSENSUS, ds.Trigger.DECIDED)] = ds.Phase.SIGNING
    result = dv_safety.persist_before_serve(broken)
    assert result.status == REFUTED
    assert result.counterexample["path"].endswith("decided:signing")


def test_serving_while_persisting_is_refuted() -> None:
    result = dv_safety.persist_before_serve(
        ds.transitions_for(DutyKind.PROPOSER),
        may_serve=lambda p: p in (ds.Phase.PERSISTING, ds.Phase.SIGNING),
    )
    assert result.status == REFUTED
