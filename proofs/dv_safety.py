"""Distributed-validator safety, proved on the node model's own rules.

Theorem 4, dv_safety: with at most F = floor((N-1)/3) Byzantine co-validators, the cluster never
produces two slashable signed messages for one validator (attestations: double or surround vote;
blocks: double proposal).

The argument (the Consensys Dafny result's, re-proved on our functions). A message is signed by the
cluster only if at least M = signing_threshold(N) co-validators released a partial for it. An honest
node releases a partial only for data it decided and PERSISTED (theorem 5 below: the VC gets data,
and its partial is accepted, only in the phase `may_serve` allows, which no path reaches without
PERSISTED). So for two messages m1, m2 signed by the cluster, the two signer sets share at least
2M - N >= F + 1 nodes (the quorum lemma, for the model's `signing_threshold` and `fault_tolerance`), so
an honest node i that persisted both. Whichever it decided second, say m2, passed two guards at i:
  G1 consensus validity with the ordering rule: when i validated m2 (is_attestation_acceptable
     against its slashing view), every earlier duty of the validator was finished at i, so its view
     held m1;
  G2 the store's check-and-record at persist: the store's history held m1.
Either guard alone refuses m2 when (m1, m2) is slashable: that is `is_attestation_acceptable`
(`is_block_acceptable`) applied to a history holding m1 (of any length), so the pair cannot exist.

The Z3 encoding: for each N in 1..N_MAX, symbolic Byzantine set, signer sets, messages, and for each
node the order in which it persisted the two and the histories its guards saw (unbounded Z3 arrays,
as in proofs/slashing.py). `guards` chooses which guards the node model has: the implementation has
both; either alone is proved sufficient; with neither (a node that validates against a stale view
AND records without re-checking: "skip the ordering rule" in a design without G2) Z3 finds the
slashable pair. N_MAX = 10 keeps the run to seconds; the quorum lemma it relies on is proved for
every N in proofs/qbft.py (quorum_intersection).

Theorem 5, persist_before_serve: by exhaustive enumeration of the duty phase table
(`duty_state.transitions_for` each consensus kind) from its initial phase: every reachable phase in which `may_serve` holds
was entered through a PERSISTED (or RESTORED-from-the-store) transition. `DutyRecord.advance` is the
only way a phase changes, and it follows the table; `node_vc` serves and accepts partials only where
`may_serve` holds. A table that goes from CONSENSUS to SIGNING on DECIDED (serve before persist) is
refuted with its path.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import z3

from covalidator.model import duty_state, qbft_rules
from covalidator.model import slashing as rules
from covalidator.model.logic import Sum
from covalidator.proofs.harness import PROVED, REFUTED, ProofResult, Theorem, all_of, check_valid
from covalidator.proofs.slashing import (
    SymbolicHistory,
    spec_is_slashable_block_pair,
    spec_slashable_either_order,
)

N_MAX = 10
GUARDS_OF_THE_IMPLEMENTATION = ("ordering_rule", "store_recheck")


def _history_holding(name: str, record: tuple[Any, ...]) -> tuple[SymbolicHistory, list[Any]]:
    """A history of any length that holds `record` (at index 0: position does not matter to a check
    that looks at every record)."""
    h = SymbolicHistory.fresh(name, len(record))
    facts = [h.n >= 1, *[a[0] == v for a, v in zip(h.arrays, record, strict=True)]]
    return h, facts


def _dv_safety_for(
    n: int, kind: str, guards: tuple[str, ...], threshold: Callable[[Any], Any], faults: Callable[[Any], Any]
) -> ProofResult:
    byz = [z3.Bool(f"byzantine_{i}") for i in range(n)]
    signed1 = [z3.Bool(f"signed_m1_{i}") for i in range(n)]
    signed2 = [z3.Bool(f"signed_m2_{i}") for i in range(n)]
    first = [z3.Bool(f"m1_first_at_{i}") for i in range(n)]  # node i persisted m1 before m2
    if kind == "attestation":
        m1, m2 = z3.Ints("s1 t1 r1"), z3.Ints("s2 t2 r2")
        slashable = spec_slashable_either_order(m1, m2)
    else:
        m1, m2 = z3.Ints("slot1 r1"), z3.Ints("slot2 r2")
        slashable = spec_is_slashable_block_pair(m1, m2)

    def accepted(later: tuple[Any, ...], history: Any, wm: tuple[Any, ...]) -> Any:
        if kind == "attestation":
            return rules.is_attestation_acceptable(*later, history, True, *wm)
        return rules.is_block_acceptable(*later, history, True, *wm)

    hypotheses: list[Any] = [
        Sum(*byz) <= faults(n),
        Sum(*signed1) >= threshold(n),
        Sum(*signed2) >= threshold(n),
    ]
    for i in range(n):
        conditions = []
        for order, (earlier, later) in ((True, (m1, m2)), (False, (m2, m1))):
            checks = []
            if "ordering_rule" in guards:  # G1: its slashing view held the earlier message
                view, facts = _history_holding(f"view_{i}_{int(order)}", earlier)
                wm = z3.Ints(f"view_min_{i}_{int(order)}_0 view_min_{i}_{int(order)}_1")[: len(earlier) - 1]
                checks.append(z3.And(*facts, accepted(later, view, tuple(wm))))
            if "store_recheck" in guards:  # G2: the store's history held the earlier message
                store, facts = _history_holding(f"store_{i}_{int(order)}", earlier)
                wm = z3.Ints(f"store_min_{i}_{int(order)}_0 store_min_{i}_{int(order)}_1")[: len(earlier) - 1]
                checks.append(z3.And(*facts, accepted(later, store, tuple(wm))))
            conditions.append(z3.Implies(first[i] == order, z3.And(*checks) if checks else z3.BoolVal(True)))
        # an honest node released partials for both only if it persisted both, each past its guards
        hypotheses.append(z3.Implies(z3.And(z3.Not(byz[i]), signed1[i], signed2[i]), z3.And(*conditions)))
    return check_valid(
        f"dv_safety.{kind}.N={n}",
        "no two slashable messages signed by the cluster",
        hypotheses,
        z3.Not(slashable),
        timeout_ms=60_000,
    )


def dv_safety(
    guards: tuple[str, ...] = GUARDS_OF_THE_IMPLEMENTATION,
    n_max: int = N_MAX,
    threshold: Callable[[Any], Any] = qbft_rules.signing_threshold,
    faults: Callable[[Any], Any] = qbft_rules.fault_tolerance,
) -> ProofResult:
    parts = [
        _dv_safety_for(n, kind, guards, threshold, faults)
        for n in range(1, n_max + 1)
        for kind in ("attestation", "block")
    ]
    return all_of(
        "dv_safety",
        f"<= F Byzantine, guards {'+'.join(guards) or 'none'}: no two slashable cluster signatures (N=1..{n_max})",
        parts,
    )


def dv_safety_each_guard_alone() -> ProofResult:
    """The ordering rule alone suffices, and so does the store's re-check alone (defence in depth)."""
    return all_of(
        "dv_safety_each_guard_alone",
        "either guard alone keeps the cluster safe",
        [dv_safety(("ordering_rule",), n_max=7), dv_safety(("store_recheck",), n_max=7)],
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
            for kind in sorted(duty_state.CONSENSUS_KINDS)
        ]
        return all_of("persist_before_serve", "", results)
    persisting = {duty_state.Trigger.PERSISTED, duty_state.Trigger.RESTORED}
    start = (duty_state.INITIAL, False)
    paths: dict[tuple[duty_state.Phase, bool], list[str]] = {start: []}
    queue = deque([start])
    while queue:
        phase, persisted = queue.popleft()
        if may_serve(phase) and not persisted:
            return ProofResult(
                "persist_before_serve",
                "",
                REFUTED,
                counterexample={"path": " -> ".join([duty_state.INITIAL.value, *paths[(phase, persisted)]])},
            )
        for (source, trigger), target in transitions.items():
            if source is phase:
                nxt = (target, persisted or trigger in persisting)
                if nxt not in paths:
                    paths[nxt] = [*paths[(phase, persisted)], f"{trigger.value}:{target.value}"]
                    queue.append(nxt)
    return ProofResult(
        "persist_before_serve", "", PROVED, detail=f"{len(paths)} reachable (phase, persisted) states"
    )


THEOREMS = [
    Theorem(
        "dv_safety",
        "<= F Byzantine co-validators: no two slashable messages signed by the cluster (N=1..10)",
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
