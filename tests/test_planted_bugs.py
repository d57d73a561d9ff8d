"""The fixed set of planted bugs (mutation/planted.py): each, applied to a copy of the package, must be
caught by every proof and test named for it. Exit code 1 is a caught bug: a failed test or a refuted
theorem; a crash, an import error or a test that cannot be found does not count."""

from __future__ import annotations

import pytest

from mutation.planted import PLANTED, Planted, catchers_of, run_catchers

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("bug", PLANTED, ids=[b.name for b in PLANTED])
def test_each_planted_bug_is_caught(bug: Planted) -> None:
    for outcome in run_catchers(bug, catchers_of(bug)):
        assert outcome.code == 1, (outcome.catcher, outcome.code, outcome.output)
        if outcome.catcher.startswith("pytest"):
            assert "1 failed" in outcome.output, outcome.output
        else:
            assert ": refuted" in outcome.output or ": unknown" in outcome.output, outcome.output


def test_the_catchers_pass_on_the_copy_without_a_bug() -> None:
    """The copy itself is sound: the same catchers pass on it unchanged (so a failure above is the bug's)."""
    catchers = [
        c for bug in PLANTED if bug.name in ("ordering-rule", "store-nearest-below") for c in catchers_of(bug)
    ]
    catchers += [("prove", "slashing.attestation_inductive_safety")]
    for outcome in run_catchers(None, catchers):
        assert outcome.code == 0, (outcome.catcher, outcome.output)


def test_every_planted_change_is_found_once_in_the_code() -> None:
    import tempfile
    from pathlib import Path

    from mutation.planted import copy_tree

    for bug in PLANTED:
        with tempfile.TemporaryDirectory() as tmp:
            copy_tree(Path(tmp), bug)  # raises unless `find` occurs exactly once
        assert bug.tests or bug.theorems, bug.name
