"""The proof harness: a theorem is a named function that returns a ProofResult.

A theorem states hypotheses and a goal over the model's own rule functions called with Z3 terms;
`check_valid` asks Z3 whether hypotheses AND NOT goal is satisfiable:
  unsat   -> proved (no counterexample exists);
  sat     -> refuted, with the counterexample Z3 found;
  unknown -> not proved (counts as a failure: a proof that times out proves nothing).

Every theorem function takes the model functions it reasons about as keyword arguments with the real
ones as defaults, so tests can hand it a deliberately broken variant and see it refuted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import z3

PROVED = "proved"
REFUTED = "refuted"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class ProofResult:
    name: str
    statement: str
    status: str
    seconds: float = 0.0
    counterexample: dict[str, str] = field(default_factory=dict)
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == PROVED


@dataclass(frozen=True)
class Theorem:
    name: str
    statement: str
    run: Callable[[], ProofResult]


def CARDINALITY_SOLVER() -> z3.Solver:
    """For problems of Booleans and counts of Booleans only (`Sum(*bools) >= k`): cardinality
    constraints to bit-vectors, then SAT. Complete for those problems, and orders of magnitude faster
    than the arithmetic solver once N passes ~12."""
    return z3.Then("simplify", "lia2card", "card2bv", "bit-blast", "sat").solver()


def check_valid(
    name: str,
    statement: str,
    hypotheses: Sequence[Any],
    goal: Any,
    *,
    timeout_ms: int = 120_000,
    detail: str = "",
    make_solver: Callable[[], z3.Solver] = z3.Solver,
) -> ProofResult:
    """Prove `hypotheses -> goal` valid by showing `hypotheses AND NOT goal` unsatisfiable
    (`make_solver` makes the solver: the default one, or e.g. CARDINALITY_SOLVER)."""
    start = time.perf_counter()
    solver = make_solver()
    solver.set("timeout", timeout_ms)
    solver.add(*hypotheses)
    solver.add(z3.Not(goal))
    verdict = solver.check()
    seconds = time.perf_counter() - start
    if verdict == z3.unsat:
        return ProofResult(name, statement, PROVED, seconds, detail=detail)
    if verdict == z3.sat:
        model = solver.model()
        cex = {str(d.name()): str(model[d]) for d in model.decls() if d.arity() == 0}
        return ProofResult(name, statement, REFUTED, seconds, dict(sorted(cex.items())), detail=detail)
    return ProofResult(name, statement, UNKNOWN, seconds, detail=f"{detail} z3: {solver.reason_unknown()}")


def all_of(name: str, statement: str, parts: Sequence[ProofResult]) -> ProofResult:
    """Combine sub-proofs (e.g. one per N) into one result: proved only if every part is."""
    seconds = sum(p.seconds for p in parts)
    for p in parts:
        if not p.ok:
            return ProofResult(
                name, statement, p.status, seconds, p.counterexample, f"{p.name}: {p.detail}".strip()
            )
    return ProofResult(name, statement, PROVED, seconds, detail=f"{len(parts)} parts")
