"""The QBFT theorems hold on the real rules, and Z3 refutes every deliberately broken variant."""

from __future__ import annotations

import pytest

from covalidator.model.qbft.rules import quorum_size
from covalidator.proofs import qbft
from covalidator.proofs.harness import PROVED, REFUTED
from covalidator.proofs.qbft_mutants import (
    broken_commit_certificate,
    broken_proposal_any_prepared,
    broken_proposal_ignores_prepared,
    broken_quorum_size,
    broken_round_change_jump,
    broken_signing_threshold,
)
from covalidator.proofs.registry import all_theorems


def test_the_three_theorems_are_registered() -> None:
    names = {t.name for t in all_theorems()}
    assert {"qbft.quorum_intersection", "qbft.agreement", "qbft.broken_variants_refuted"} <= names


def test_quorum_intersection_is_proved_for_every_n() -> None:
    result = qbft.quorum_intersection()
    assert result.status == PROVED, result.detail


def test_agreement_is_proved() -> None:
    result = qbft.agreement(sizes=range(1, 11))
    assert result.status == PROVED, result.detail
    assert result.detail == "50 parts"  # lemmas, base, step, preserve and decide, for each N = 1..10


def test_broken_variants_theorem_is_proved() -> None:
    assert qbft.broken_variants_refuted().status == PROVED


def test_a_quorum_of_2f_breaks_intersection_and_agreement() -> None:
    intersection = qbft.quorum_intersection(quorum_size=broken_quorum_size)
    assert intersection.status == REFUTED and intersection.counterexample
    agreement = qbft.agreement(quorum_size=broken_quorum_size, sizes=[4])
    assert agreement.status == REFUTED and "N=4" in agreement.detail


def test_a_signing_threshold_of_f_is_refuted() -> None:
    result = qbft.quorum_intersection(signing_threshold=broken_signing_threshold)
    assert result.status == REFUTED and result.detail.startswith("signing")


def test_a_round_change_jump_on_f_messages_is_refuted() -> None:
    result = qbft.quorum_intersection(is_round_change_jump=broken_round_change_jump)
    assert result.status == REFUTED and result.detail.startswith("round_change_jump")


@pytest.mark.parametrize(
    "broken",
    [broken_proposal_ignores_prepared, broken_proposal_any_prepared],
    ids=["ignores-the-prepared-value", "accepts-any-prepared-value"],
)
def test_a_weaker_proposal_justification_breaks_agreement(broken: object) -> None:
    result = qbft.agreement(is_justified_proposal=broken, sizes=[4, 7])
    assert result.status == REFUTED
    assert result.detail.startswith("step N=4")
    cex = result.counterexample
    assert cex["x"] != cex["v"], "Z3's counterexample proposes a value other than the committed one"
    assert int(cex["k"]) > int(cex["r"]) >= 1


def test_a_decided_certificate_of_f_plus_one_commits_breaks_agreement() -> None:
    result = qbft.agreement(is_commit_certificate=broken_commit_certificate, sizes=[4])
    assert result.status == REFUTED


def test_theorem_3_fails_if_a_variant_is_not_actually_broken(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        qbft.BROKEN_VARIANTS,
        "the real quorum",
        lambda sizes: qbft.agreement(quorum_size=quorum_size, sizes=sizes),
    )
    result = qbft.broken_variants_refuted(sizes=[4])
    assert result.status != PROVED and "the real quorum" in result.detail
