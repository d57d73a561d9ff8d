"""Theorems 4 (DV safety) and 5 (persist before serve) hold, and their broken variants are refuted."""

from __future__ import annotations

from covalidator.model import duty_state as ds
from covalidator.model.duty import DutyKind
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
    Z3 produces two slashable messages both signed by a threshold of nodes."""
    result = dv_safety.dv_safety(guards=(), n_max=4)
    assert result.status == REFUTED
    cex = result.counterexample
    assert any(k.startswith("signed_m1_") and v == "True" for k, v in cex.items())


def test_a_threshold_of_f_is_unsafe_even_with_both_guards() -> None:
    result = dv_safety.dv_safety(n_max=7, threshold=lambda n: (n - 1) // 3 + (n == 1))
    assert result.status == REFUTED


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


def test_advance_refuses_transitions_outside_the_kinds_table() -> None:
    from covalidator.model.duty import DutyId

    rec = ds.DutyRecord(DutyId(1, DutyKind.ATTESTER))
    try:
        rec.advance(ds.Trigger.OPEN)
    except ds.TransitionError:
        pass
    else:
        raise AssertionError("a consensus duty must not open without persisting")
    randao = ds.DutyRecord(DutyId(1, DutyKind.RANDAO))
    randao.advance(ds.Trigger.OPEN)
    assert randao.phase is ds.Phase.SIGNING
