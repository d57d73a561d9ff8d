"""Distributed-validator safety, proved on the node model's own rules.

Theorem 4, dv_safety: with at most F = floor((N-1)/3) Byzantine co-validators, the cluster never
produces two slashable signed messages for one validator (attestations: double or surround vote;
blocks: double proposal).

The argument (the Consensys Dafny result's, re-proved on our functions). A message is signed by the
cluster only if at least M co-validators released a partial for it (M is the lock's threshold, one of
those `qbft_rules.is_safe_threshold` accepts: the lock, create-cluster and the node refuse others). An honest
node releases a partial only for data it decided and PERSISTED (theorem 5 below: the VC gets data,
and its partial is accepted, only in the phase `may_serve` allows, which no path reaches without
PERSISTED). So for two messages m1, m2 signed by the cluster, the two signer sets share at least
2M - N >= F + 1 nodes, so an honest node i that persisted both (lemma A below). Whichever it decided second, say m2, passed two guards at i:
  G1 consensus validity with the ordering rule: when i validated m2 (is_attestation_acceptable
     against its slashing view), every earlier duty of the validator was finished at i, so its view
     held m1;
  G2 the store's check-and-record at persist: the store's history held m1.
Either guard alone refuses m2 when (m1, m2) is slashable: that is `is_attestation_acceptable`
(`is_block_acceptable`) applied to a history holding m1 (of any length), so the pair cannot exist.

The Z3 encoding, in two lemmas whose conjunction is the theorem:
  A `signers_share_an_honest_node(N, M)`: for every N in 1..N_MAX (16) and every M the code accepts
    for it, two symbolic signer sets of >= M nodes and a symbolic Byzantine set of <= F nodes share
    an honest node (counting only: bit-blasted, milliseconds per shape);
  B `honest_node_refuses_the_second(kind)`: one honest node that persisted both messages, in either
    order, each past its guards (the histories its guards saw are unbounded Z3 arrays holding the
    earlier message, as in proofs/slashing.py; the check is the model's `is_attestation_acceptable` /
    `is_block_acceptable`), holds no slashable pair. It does not depend on N or M.
The witness of A satisfies B's hypothesis, so no two slashable messages are both signed. `guards`
chooses which guards the node model has: the implementation has both; either alone is proved
sufficient; with neither (a node that validates against a stale view AND records without
re-checking) Z3 finds the slashable pair. A threshold below the bound, or F + 1 Byzantine nodes, make
lemma A fail; tests/test_proofs_dv_safety.py checks, for every N = 1..16 and M = 1..N, that the
theorem holds exactly where `is_safe_threshold` accepts.

Theorem 5, persist_before_serve: by exhaustive enumeration of the duty phase table
(`duty_state.transitions_for` each consensus kind) from its initial phase: every reachable phase in which `may_serve` holds
was entered through a PERSISTED (or RESTORED-from-the-store) transition. `DutyRecord.advance` is the
only way a phase changes, and it follows the table; `node_vc` serves and accepts partials only where
`may_serve` holds. A table that goes from CONSENSUS to SIGNING on DECIDED (serve before persist) is
refuted with its path.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from typing import Any

import z3

from covalidator.model.duty import CONSENSUS_KINDS
from covalidator.model.logic import Sum
from covalidator.model.node import guards as node_guards
from covalidator.model.node import phases as duty_state
from covalidator.model.qbft import rules as qbft_rules
from covalidator.model.slashing import rules
from covalidator.proofs.harness import (
    CARDINALITY_SOLVER,
    PROVED,
    REFUTED,
    ProofResult,
    Theorem,
    all_of,
    check_valid,
)
from covalidator.proofs.slashing import (
    SymbolicHistory,
    spec_is_slashable_block_pair,
    spec_slashable_either_order,
)

N_MAX = 16
GUARDS_OF_THE_IMPLEMENTATION = ("ordering_rule", "store_recheck")


def _history_holding(name: str, record: tuple[Any, ...]) -> tuple[SymbolicHistory, list[Any]]:
    """A history of any length that holds `record` (at index 0: position does not matter to a check
    that looks at every record)."""
    h = SymbolicHistory.fresh(name, len(record))
    facts = [h.n >= 1, *[a[0] == v for a, v in zip(h.arrays, record, strict=True)]]
    return h, facts


def signers_share_an_honest_node(
    n: int,
    m: int,
    faults: Callable[[Any], Any],
    is_threshold_met: Callable[[Any, Any], Any] = node_guards.is_threshold_met,
) -> ProofResult:
    """Lemma A (per N and M): two signing sets of at least M nodes, with at most `faults(N)`
    Byzantine nodes, share an honest node. Pure counting (a pseudo-Boolean problem): solved by
    bit-blasting the cardinality constraints, which takes milliseconds where the arithmetic solver
    takes minutes at N = 16."""
    byz = [z3.Bool(f"byzantine_{i}") for i in range(n)]
    signed1 = [z3.Bool(f"signed_m1_{i}") for i in range(n)]
    signed2 = [z3.Bool(f"signed_m2_{i}") for i in range(n)]
    return check_valid(
        f"dv_safety.signers_share_an_honest_node.N={n}.M={m}",
        "two M-signer sets share an honest node",
        [Sum(*byz) <= faults(n), is_threshold_met(Sum(*signed1), m), is_threshold_met(Sum(*signed2), m)],
        z3.Or(*[z3.And(z3.Not(byz[i]), signed1[i], signed2[i]) for i in range(n)]),
        timeout_ms=60_000,
        make_solver=CARDINALITY_SOLVER,
    )


def honest_node_refuses_the_second(kind: str, guards: tuple[str, ...]) -> ProofResult:
    """Lemma B (per message kind): an honest node that released partials for both m1 and m2 persisted
    both, each past its guards, in some order; then (m1, m2) is not slashable."""
    first = z3.Bool("m1_first")  # the node persisted m1 before m2
    if kind == "attestation":
        m1, m2 = z3.Ints("s1 t1 r1"), z3.Ints("s2 t2 r2")
        slashable = spec_slashable_either_order(m1, m2)
    else:
        m1, m2 = z3.Ints("slot1 r1"), z3.Ints("slot2 r2")
        slashable = spec_is_slashable_block_pair(m1, m2)

    def accepted(later: tuple[Any, ...], history: Any, wm: tuple[Any, ...]) -> Any:
        if kind == "attestation":
            (s, t, root), (min_source, min_target) = later, wm
            return rules.is_attestation_acceptable(s, t, root, history, True, min_source, min_target)
        (slot, block_root), (min_slot,) = later, wm
        return rules.is_block_acceptable(slot, block_root, history, True, min_slot)

    conditions = []
    for order, (earlier, later) in ((True, (m1, m2)), (False, (m2, m1))):
        checks = []
        for guard in guards:  # ordering_rule: its slashing view held the earlier message (G1);
            # store_recheck: the store's history held it (G2)
            history, facts = _history_holding(f"{guard}_{int(order)}", earlier)
            wm = z3.Ints(f"{guard}_min_{int(order)}_0 {guard}_min_{int(order)}_1")[: len(earlier) - 1]
            checks.append(z3.And(*facts, accepted(later, history, tuple(wm))))
        conditions.append(z3.Implies(first == order, z3.And(*checks) if checks else z3.BoolVal(True)))
    return check_valid(
        f"dv_safety.honest_node_refuses_the_second.{kind}",
        "an honest node that persisted both past its guards holds no slashable pair",
        conditions,
        z3.Not(slashable),
        timeout_ms=60_000,
    )


def safe_thresholds(n: int) -> list[int]:
    """Every M the code accepts for N (`qbft_rules.is_safe_threshold`: the lock, create-cluster and
    the node's configuration refuse the others): the thresholds the theorem is proved for."""
    return [m for m in range(1, n + 1) if qbft_rules.is_safe_threshold(n, m)]


def dv_safety_at(
    n: int,
    m: int,
    guards: tuple[str, ...] = GUARDS_OF_THE_IMPLEMENTATION,
    faults: Callable[[Any], Any] = qbft_rules.fault_tolerance,
) -> ProofResult:
    """The theorem for one cluster shape M-of-N (attestations and blocks): lemma A for (N, M) and
    lemma B for each kind (which does not depend on N or M)."""
    return all_of(
        f"dv_safety.N={n}.M={m}",
        f"{m}-of-{n}: no two slashable cluster signatures",
        [signers_share_an_honest_node(n, m, faults), *_refusals(guards)],
    )


@cache
def _refusals(guards: tuple[str, ...]) -> tuple[ProofResult, ...]:
    return tuple(honest_node_refuses_the_second(kind, guards) for kind in ("attestation", "block"))


def dv_safety(
    guards: tuple[str, ...] = GUARDS_OF_THE_IMPLEMENTATION,
    n_max: int = N_MAX,
    thresholds: Callable[[int], Iterable[int]] = safe_thresholds,
    faults: Callable[[Any], Any] = qbft_rules.fault_tolerance,
) -> ProofResult:
    """For every N = 1..n_max and every threshold M in `thresholds(N)` (by default every M the code
    accepts), with at most `faults(N)` Byzantine nodes."""
    parts = [dv_safety_at(n, m, guards, faults) for n in range(1, n_max + 1) for m in thresholds(n)]
    return all_of(
        "dv_safety",
        f"<= F Byzantine, guards {'+'.join(guards) or 'none'}: no two slashable cluster signatures "
        f"(N=1..{n_max}, every accepted M)",
        parts,
    )


def dv_safety_each_guard_alone() -> ProofResult:
    """The ordering rule alone suffices, and so does the store's re-check alone (defence in depth)."""
    return all_of(
        "dv_safety_each_guard_alone",
        "either guard alone keeps the cluster safe",
        [dv_safety(("ordering_rule",)), dv_safety(("store_recheck",))],
    )


def persist_before_serve(
    transitions: Mapping[tuple[duty_state.Phase, duty_state.Trigger], duty_state.Phase] | None = None,
    may_serve: Callable[[duty_state.Phase], bool] = duty_state.may_serve,
) -> ProofResult:
    """For every consensus duty kind: breadth-first over (phase, persisted?) from the initial phase of
    the table that kind follows; a serving phase reached with persisted? false is a counterexample,
    reported with its path of triggers."""
    if transitions is None:
        results = [
            persist_before_serve(duty_state.transitions_for(kind), may_serve)
            for kind in sorted(CONSENSUS_KINDS)
        ]
        return all_of("persist_before_serve", "", results)
    paths = reachable(transitions)
    for (phase, persisted), path in paths.items():
        if may_serve(phase) and not persisted:
            return ProofResult(
                "persist_before_serve",
                "",
                REFUTED,
                counterexample={"path": " -> ".join([duty_state.INITIAL.value, *path])},
            )
    return ProofResult(
        "persist_before_serve", "", PROVED, detail=f"{len(paths)} reachable (phase, persisted) states"
    )


def reachable(
    transitions: Mapping[tuple[duty_state.Phase, duty_state.Trigger], duty_state.Phase],
) -> dict[tuple[duty_state.Phase, bool], list[str]]:
    """Every (phase, persisted?) a phase table reaches from its initial phase, with a shortest path of
    triggers to it (breadth-first; persisted? turns true on PERSISTED or RESTORED-from-the-store)."""
    persisting = {duty_state.Trigger.PERSISTED, duty_state.Trigger.RESTORED}
    start = (duty_state.INITIAL, False)
    paths: dict[tuple[duty_state.Phase, bool], list[str]] = {start: []}
    queue = deque([start])
    while queue:
        phase, persisted = queue.popleft()
        for (source, trigger), target in transitions.items():
            if source is phase:
                nxt = (target, persisted or trigger in persisting)
                if nxt not in paths:
                    paths[nxt] = [*paths[(phase, persisted)], f"{trigger.value}:{target.value}"]
                    queue.append(nxt)
    return paths


THEOREMS = [
    Theorem(
        "dv_safety",
        "<= F Byzantine co-validators: no two slashable messages signed by the cluster (N=1..16, every accepted M)",
        dv_safety,
    ),
    Theorem(
        "dv_safety_each_guard_alone",
        "the ordering rule alone, or the store re-check alone, suffices",
        dv_safety_each_guard_alone,
    ),
    Theorem(
        "persist_before_serve",
        "no phase that serves the VC is reachable without PERSISTED",
        persist_before_serve,
    ),
]
