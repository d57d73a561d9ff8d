"""Signer mode, proved on the node model's own guard: what this node's share key signs.

In signer mode (the node holds its share keys and serves the Remote Signing API) nothing waits for a
VC's partial: the node signs its own partial of a consensus duty, and hands the cluster's group
signature to a signing request, where `Guards.may_release(may_serve(phase), root, decided_root)`
allows (node/parsig.py `sign_decided`, node/signer.py). Two theorems:

signer_safety: for every consensus duty kind and every (phase, persisted?) its phase table reaches
  (the breadth-first search of persist_before_serve), and every pair of symbolic roots,
  `may_release` holds only if the duty was persisted and the root is the decided root. So a
  partial (and a group signature, combined only from M partials over the decided root: parsig's
  `_candidates`) leaves an honest node only for a value decided AND persisted; which is exactly the
  hypothesis of dv_safety's lemma B, so dv_safety's conclusion (no two slashable messages signed by
  the cluster) holds in signer mode too. The theorem is the conjunction of that release lemma and
  dv_safety itself.

signer_broken_variants_refuted: the release lemma is refuted, with a reachable phase and roots as the
  counterexample, for each planted variant of the guard (proofs/mutants.py): one that signs a request
  before anything is decided (`release-any-root`) and one that signs the decided value while the
  store is still writing it (`release-before-persist`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import z3

from covalidator.model.duty import CONSENSUS_KINDS
from covalidator.model.node import guards as node_guards
from covalidator.model.node import phases as duty_state
from covalidator.proofs.dv_safety import dv_safety, reachable
from covalidator.proofs.harness import PROVED, REFUTED, ProofResult, Theorem, all_of, check_valid
from covalidator.proofs.mutants import PLANTED_BUGS

RELEASE_VARIANTS = ("release-any-root", "release-before-persist")


def released_only_when_decided_and_persisted(
    may_release: Callable[[Any, Any, Any], Any] = node_guards.may_release,
    may_serve: Callable[[duty_state.Phase], bool] = duty_state.may_serve,
) -> ProofResult:
    """For each consensus kind's reachable (phase, persisted?): may_release => persisted and root = decided."""
    parts = []
    for kind in sorted(CONSENSUS_KINDS):
        for (phase, persisted), path in reachable(duty_state.transitions_for(kind)).items():
            root, decided = z3.Ints("root decided_root")
            result = check_valid(
                f"signer.release.{kind.name.lower()}.{phase.value}.{'persisted' if persisted else 'not_persisted'}",
                "released only for the decided root of a persisted duty",
                [],
                z3.Implies(
                    may_release(may_serve(phase), root, decided),
                    z3.And(z3.BoolVal(persisted), root == decided),
                ),
            )
            if not result.ok:
                return ProofResult(
                    "signer.released_only_when_decided_and_persisted",
                    "",
                    REFUTED,
                    counterexample={
                        **(result.counterexample or {}),
                        "kind": kind.name.lower(),
                        "path": " -> ".join([duty_state.INITIAL.value, *path]),
                    },
                )
            parts.append(result)
    return all_of("signer.released_only_when_decided_and_persisted", "", parts)


def signer_safety() -> ProofResult:
    return all_of(
        "signer_safety",
        "a partial or group signature leaves a node only for a decided, persisted value; "
        "never two slashable ones (dv_safety)",
        [released_only_when_decided_and_persisted(), dv_safety()],
    )


def signer_broken_variants_refuted() -> ProofResult:
    parts = []
    for name in RELEASE_VARIANTS:
        result = released_only_when_decided_and_persisted(PLANTED_BUGS[name].guards.may_release)
        status = PROVED if result.status == REFUTED else REFUTED
        parts.append(
            ProofResult(f"signer.variant.{name}", "refuted", status, detail=str(result.counterexample))
        )
    return all_of("signer_broken_variants_refuted", "each broken release guard is refuted", parts)


THEOREMS = [
    Theorem(
        "signer_safety",
        "signer mode: partials and group signatures only for decided, persisted values; no slashable pair",
        signer_safety,
    ),
    Theorem(
        "signer_broken_variants_refuted",
        "a release guard that signs before the decision, or before persisting, is refuted",
        signer_broken_variants_refuted,
    ),
]
