"""Deliberately broken variants of the QBFT rules: the bugs the proofs and the simulator must catch.

Decides nothing for a running node (`qbft.step` uses `qbft_rules.RULES`); exists so that theorem 3
(proofs/qbft.py), the tests and `covalidator simulate consensus --plant-bug` can hand a broken rule to
the same code and watch Z3 find a counterexample or the simulator find a violating run. Each variant is
a plausible mistake, written with `model.logic` like the real rule it replaces.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from covalidator.model.logic import And, Implies, Or
from covalidator.model.qbft.rules import (
    RULES,
    RoundChangeSlot,
    Rules,
    VoteSlot,
    count_present,
    fault_tolerance,
    highest_prepared_round,
    is_quorum,
    is_vote_quorum,
    quorum_size,
)

Fn = Callable[..., Any]


def broken_quorum_size(n: Any) -> Any:
    """A quorum of 2F: what an off-by-one in the quorum formula gives (and N=4 -> 2)."""
    return 2 * fault_tolerance(n)


def broken_signing_threshold(n: Any) -> Any:
    """M = F: the Byzantine shares alone could sign."""
    return fault_tolerance(n)


def broken_round_change_jump(count: Any, n: Any, fault_tolerance: Fn = fault_tolerance) -> Any:
    """Jump ahead on F ROUND-CHANGEs: the Byzantine nodes alone could drag an honest node ahead."""
    return count >= fault_tolerance(n)


def broken_proposal_ignores_prepared(
    n: Any,
    round: Any,
    value: Any,
    rcs: list[RoundChangeSlot],
    prepares: list[VoteSlot],
    quorum_size: Fn = quorum_size,
) -> Any:
    """A justification that checks the ROUND-CHANGE quorum but ignores the prepared value (no J2)."""
    return Or(
        round == 1,
        And(
            is_quorum(count_present(rcs), n, quorum_size),
            *[Implies(s.present, s.round == round) for s in rcs],
        ),
    )


def broken_proposal_any_prepared(
    n: Any,
    round: Any,
    value: Any,
    rcs: list[RoundChangeSlot],
    prepares: list[VoteSlot],
    quorum_size: Fn = quorum_size,
) -> Any:
    """A justification accepting any prepared value of the quorum, not the highest prepared round's."""
    rc_quorum = And(
        is_quorum(count_present(rcs), n, quorum_size), *[Implies(s.present, s.round == round) for s in rcs]
    )
    j1 = highest_prepared_round(rcs) == 0
    j2 = Or(
        *[
            And(
                s.present,
                s.prepared_round >= 1,
                s.prepared_hash == value,
                s.prepared_round < round,
                is_vote_quorum(n, s.prepared_round, value, prepares, quorum_size),
            )
            for s in rcs
        ]
    )
    return Or(round == 1, And(rc_quorum, Or(j1, j2)))


def broken_commit_certificate(
    n: Any, round: Any, value: Any, commits: list[VoteSlot], quorum_size: Fn = quorum_size
) -> Any:
    """A DECIDED accepted with F + 1 commits ("at least one honest") instead of a quorum."""
    return is_vote_quorum(n, round, value, commits, lambda size: fault_tolerance(size) + 1)


PLANTED_BUGS: dict[str, Rules] = {
    "quorum-2f": RULES._replace(quorum_size=broken_quorum_size),
    "no-j2": RULES._replace(is_justified_proposal=broken_proposal_ignores_prepared),
    "any-prepared": RULES._replace(is_justified_proposal=broken_proposal_any_prepared),
    "decided-f+1": RULES._replace(is_commit_certificate=broken_commit_certificate),
    "jump-on-f": RULES._replace(is_round_change_jump=broken_round_change_jump),
}
