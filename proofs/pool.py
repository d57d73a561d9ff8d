"""Exits and builder registrations (node/pool.py), proved on the node's own combination gate.

A message without a slot (a voluntary exit, a new builder registration) gets no consensus: what
protects the validator is that a group signature over it is made only from M operators' partials.
The node combines an entry only where `pool.may_combine(signed, M, Guards.is_threshold_met)` holds,
`signed[i]` saying operator i + 1's verified partial is held (one per operator: the entry's partials
are keyed by share index), and only a combined, verified signature is submitted or handed to a
signing request.

pool_safety: for every N = 1..16 and every threshold M the code accepts for N
  (`qbft_rules.threshold_refusal` is None, as the lock and the node config require), and every
  symbolic assignment of which operators signed and which are Byzantine (at most F), `may_combine`
  holds only if at least M operators signed, of which at least M - F >= 1 are honest: no group
  signature over an exit or registration that fewer than M operators (or no honest one) signed.

pool_broken_variants_refuted: the same statement is refuted (Z3 finds the operators) for the planted
  `below-threshold` guard, which combines from M - 1 partials (proofs/mutants.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import z3

from covalidator.model.node import guards as node_guards
from covalidator.model.node.pool import may_combine
from covalidator.model.qbft.rules import fault_tolerance, threshold_refusal
from covalidator.proofs.harness import (
    CARDINALITY_SOLVER,
    PROVED,
    REFUTED,
    ProofResult,
    Theorem,
    all_of,
    check_valid,
)
from covalidator.proofs.mutants import PLANTED_BUGS

MAX_N = 16


def combined_only_with_m_operators(
    is_threshold_met: Callable[[Any, Any], Any] = node_guards.is_threshold_met,
) -> ProofResult:
    parts = []
    for n in range(1, MAX_N + 1):
        f = fault_tolerance(n)
        for m in range(1, n + 1):
            if threshold_refusal(n, m) is not None:
                continue
            signed = [z3.Bool(f"signed_{i}") for i in range(1, n + 1)]
            byzantine = [z3.Bool(f"byzantine_{i}") for i in range(1, n + 1)]
            count = z3.Sum([z3.If(s, 1, 0) for s in signed])
            honest = z3.Sum(
                [z3.If(z3.And(s, z3.Not(b)), 1, 0) for s, b in zip(signed, byzantine, strict=True)]
            )
            result = check_valid(
                f"pool.combine.n{n}.m{m}",
                "combined only when M operators, at least one honest, signed",
                [z3.Sum([z3.If(b, 1, 0) for b in byzantine]) <= f],
                z3.Implies(
                    may_combine(signed, m, is_threshold_met), z3.And(count >= m, honest >= m - f, honest >= 1)
                ),
                make_solver=CARDINALITY_SOLVER,
            )
            if not result.ok:
                return ProofResult(
                    "pool.combined_only_with_m_operators",
                    "",
                    REFUTED,
                    counterexample={**(result.counterexample or {}), "n": str(n), "m": str(m)},
                )
            parts.append(result)
    return all_of("pool.combined_only_with_m_operators", "", parts)


def pool_safety() -> ProofResult:
    result = combined_only_with_m_operators()
    return ProofResult(
        "pool_safety",
        "a group signature over an exit or registration only from M operators' partials (N = 1..16)",
        result.status,
        result.seconds,
        result.counterexample,
        result.detail,
    )


def pool_broken_variants_refuted() -> ProofResult:
    result = combined_only_with_m_operators(PLANTED_BUGS["below-threshold"].guards.is_threshold_met)
    status = PROVED if result.status == REFUTED else REFUTED
    part = ProofResult("pool.variant.below-threshold", "refuted", status, detail=str(result.counterexample))
    return all_of("pool_broken_variants_refuted", "combining from M - 1 partials is refuted", [part])


THEOREMS = [
    Theorem(
        "pool_safety",
        "exits and registrations: a group signature only when M operators (one honest at least) signed",
        pool_safety,
    ),
    Theorem(
        "pool_broken_variants_refuted",
        "a pool that combines from M - 1 partials is refuted",
        pool_broken_variants_refuted,
    ),
]
