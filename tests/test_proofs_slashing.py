"""The slashing theorems hold, and each one fails when a rule it protects is broken (the proofs can fail).

Mutations are applied to the model module itself (monkeypatch), so the proof runs over the mutated
code path exactly as the store would: `is_attestation_acceptable` looks its helpers up at call time.
Each mutation makes the check accept more, which is the direction that can be unsafe.
"""

from __future__ import annotations

import pytest

from covalidator.model.logic import And, Or
from covalidator.model.slashing import rules
from covalidator.proofs import slashing as proofs
from covalidator.proofs.harness import PROVED, REFUTED


@pytest.mark.parametrize("theorem", proofs.THEOREMS, ids=lambda t: t.name)
def test_theorem_is_proved(theorem: object) -> None:
    result = theorem.run()  # type: ignore[attr-defined]
    assert result.status == PROVED, (result.detail, result.counterexample)


MUTATIONS = {
    # surround check misses the vote that surrounds by exactly one epoch
    "surround_off_by_one": (
        "is_surround_vote",
        lambda s1, t1, s2, t2: And(s1 + 1 < s2, t2 < t1),
        [proofs.attestation_inductive_safety],
    ),
    # "same message" no longer needs known roots: two attestations without roots pass as a repeat
    "unknown_roots_match": (
        "is_same_root",
        lambda r1, r2: r1 == r2,
        [proofs.attestation_inductive_safety, proofs.block_inductive_safety],
    ),
    # double vote ignores the signing root entirely
    "double_vote_ignores_root": (
        "is_double_vote",
        lambda s1, t1, r1, s2, t2, r2: And(t1 == t2, s1 != s2),
        [proofs.attestation_inductive_safety],
    ),
    # a double proposal only counts when both roots are known and differ
    "double_proposal_needs_roots": (
        "is_slashable_block_pair",
        lambda a, ra, b, rb: And(a == b, ra >= 0, rb >= 0, ra != rb),
        [proofs.block_inductive_safety],
    ),
    # the minimal DB accepts a target equal to its watermark
    "minimal_target_not_strict": (
        "is_attestation_beyond_minimal",
        lambda s, t, ms, mt: And(s <= t, s >= ms, t >= mt),
        [proofs.minification_soundness],
    ),
    "minimal_slot_not_strict": (
        "is_block_beyond_minimal",
        lambda slot, ms: slot >= ms,
        [proofs.minification_soundness],
    ),
    # the target low watermark lets the epoch just below it through: after pruning, that target may
    # belong to a pruned record (a double vote nobody can see any more)
    "watermark_target_off_by_one": (
        "is_attestation_below_watermark",
        lambda s, t, ms, mt: Or(s < ms, t + 1 < mt),
        [proofs.pruning_soundness],
    ),
    # the block low watermark is ignored: a pruned slot can be proposed again
    "block_watermark_ignored": (
        "is_block_below_watermark",
        lambda slot, ms: slot != slot,
        [proofs.pruning_soundness],
    ),
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_broken_rule_is_refuted(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    attribute, broken, theorems = MUTATIONS[name]
    monkeypatch.setattr(rules, attribute, broken)
    for theorem in theorems:
        result = theorem()
        assert result.status == REFUTED, f"{name}: {theorem.__name__} still {result.status}"
        assert result.counterexample, "a refutation must come with a counterexample"


def test_neighbour_check_without_the_record_above_is_refuted() -> None:
    result = proofs.neighbour_check_sufficiency(neighbours=("same", "below"))
    assert result.status == REFUTED


def test_neighbour_check_without_the_record_below_is_refuted() -> None:
    result = proofs.neighbour_check_sufficiency(neighbours=("same", "above"))
    assert result.status == REFUTED


def test_the_root_encoding_the_theorems_quantify_over_is_not_vacuous() -> None:
    """In Z3 a signing root is an integer, known when `is_known_root` holds. The theorems are only as
    strong as that encoding: two DIFFERENT known roots, and an unknown one, must each be possible, or
    "double vote with other data" could never arise in a proof. Killed mutant: `root == 0`, under which
    every known root is the same and the theorems still prove, about less."""
    import z3

    a, b = z3.Ints("root_a root_b")
    solver = z3.Solver()
    solver.add(rules.is_known_root(a), rules.is_known_root(b), a != b)
    assert solver.check() == z3.sat
    solver = z3.Solver()
    solver.add(z3.Not(rules.is_known_root(a)))
    assert solver.check() == z3.sat
    assert rules.is_known_root(b"\x00" * 32) and not rules.is_known_root(None)
