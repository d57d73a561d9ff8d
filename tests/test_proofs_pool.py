"""Theorem pool_safety on node/pool.py's own combination gate, and its broken variants refuted."""

from __future__ import annotations

from covalidator.proofs import pool
from covalidator.proofs.harness import REFUTED


def test_pool_safety_is_proved_for_every_accepted_threshold_up_to_16() -> None:
    result = pool.pool_safety()
    assert result.ok, result
    # every (N, M) with M > (N + F) / 2, F = floor((N - 1) / 3): the thresholds the lock accepts
    accepted = sum(1 for n in range(1, 17) for m in range(1, n + 1) if 2 * m - n >= (n - 1) // 3 + 1)
    assert result.detail == f"{accepted} parts"


def test_combining_from_m_minus_one_is_refuted_with_the_operators_as_counterexample() -> None:
    assert pool.pool_broken_variants_refuted().ok
    result = pool.combined_only_with_m_operators(lambda count, threshold: count >= threshold - 1)
    assert result.status == REFUTED and {"n", "m"} <= set(result.counterexample)


def test_a_gate_that_ignores_the_count_is_refuted() -> None:
    assert pool.combined_only_with_m_operators(lambda count, threshold: True).status == REFUTED
