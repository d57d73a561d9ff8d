"""QBFT safety, proved by Z3 on the rule functions `qbft.step` runs (model/qbft_rules.py).

Theorem 1, `qbft.quorum_intersection`, for every N >= 1 (N symbolic, unbounded), F = floor((N-1)/3),
Q = ceil((N+F+1)/2), M = ceil(2N/3):
  (a) two quorums of one N-node cluster share at least F + 1 nodes, hence an honest one;
  (b) an M-of-N signing set holds at least F + 1 shares, hence an honest one; and the N - F honest
      nodes alone reach both Q and M (what liveness needs);
  (c) Q = ceil(2N/3) = M (the formula Charon uses);
  (d) the same on actual sets for N = 1..MAX_N: membership Booleans, quorums counted by the model's own
      `is_quorum`, Byzantine sets of at most F members.
  (a)-(c) reason about cardinalities (|A ∩ B| >= |A| + |B| - N), so they hold for every N.

Theorem 2, `qbft.agreement`: no two non-Byzantine nodes decide different values. An inductive invariant
over rounds: suppose a commit quorum for (r, v) exists (some node may decide v in round r). Then

  Inv(k), for k > r:  every quorum of PREPAREs for a round in [r, k) is for v, every honest PREPARE for a
                      round in (r, k) is for v, and every honest node whose prepared round is in [r, k)
                      prepared v.

  base      Inv(r + 1): two prepare quorums of round r intersect in an honest node, which prepares once
            per round, so every prepare quorum of round r is for v;
  step      Inv(k) => every PRE-PREPARE for round k that `is_justified_proposal` accepts carries v: its
            ROUND-CHANGE quorum meets the commit quorum in an honest node whose prepared round is >= r,
            so J1 fails and J2 forces the value of the highest prepared round, whose prepare quorum is
            for v by Inv(k);
  preserve  Inv(k) => Inv(k + 1): honest nodes prepare in round k only a justified proposal (v, by the
            step), so a prepare quorum of round k, which holds an honest node, is for v, and so is a
            prepared value an honest node takes from it;
  decide    a commit certificate (`is_commit_certificate`) for (r2, y) with r2 >= r holds an honest node,
            which committed only after a prepare quorum for (r2, y); by Inv that quorum is for v: y = v.

Rounds r, k, r2, every prepared round and every value are unbounded symbolic integers. The number of
nodes is not: a justification reaches the model's predicates as one slot per sender (that is how
`round_change_slots`/`vote_slots` feed them at run time), and Z3 needs a fixed number of slots. So each
part is proved for every N = 1..MAX_N (13, which covers the cluster sizes used in practice: 4, 7, 10, 13);
the counting fact that makes the argument independent of N is theorem 1, proved for all N.
The hypotheses about honest nodes are the upon-rules of `qbft.step`: one PREPARE and one COMMIT per round,
PREPARE only for a justified proposal, COMMIT only after a prepare quorum, prepared round never
decreasing and reported truthfully in ROUND-CHANGE. The simulator checks exactly these after every event
(`qbft_checker`, "conduct"), so the proof's assumptions are tested against the code that runs.

Theorem 3, `qbft.broken_variants_refuted`: each deliberately broken rule makes theorem 1 or 2 fail with a
Z3 counterexample: a quorum of 2F, a signing threshold of F, a justification that ignores the prepared
value, one that accepts any prepared value rather than the highest, and a DECIDED certificate of F + 1
commits. (tests/test_proofs_qbft.py runs each one separately too.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import z3

from covalidator.model.logic import And, CeilDiv, Implies, Not, Or, Sum
from covalidator.model.qbft.rules import (
    RoundChangeSlot,
    VoteSlot,
    fault_tolerance,
    is_commit_certificate,
    is_justified_proposal,
    is_quorum,
    is_round_change_jump,
    is_vote_quorum,
    quorum_size,
    signing_threshold,
)
from covalidator.proofs.harness import PROVED, REFUTED, UNKNOWN, ProofResult, Theorem, all_of, check_valid
from covalidator.proofs.qbft_mutants import (
    broken_commit_certificate,
    broken_proposal_any_prepared,
    broken_proposal_ignores_prepared,
    broken_quorum_size,
    broken_round_change_jump,
    broken_signing_threshold,
)

MAX_N = 13
SIZES = tuple(range(1, MAX_N + 1))

Fn = Callable[..., Any]


# --- theorem 1 -----------------------------------------------------------------------------------------

QUORUM_STATEMENT = (
    "for all N >= 1: two quorums share >= F+1 nodes (an honest one); an M-of-N signing set holds an honest "
    "share; a round-change jump's F+1 senders hold an honest one; N-F honest nodes reach Q and M; "
    "Q = ceil(2N/3) = M"
)


def quorum_intersection(
    *,
    quorum_size: Fn = quorum_size,
    fault_tolerance: Fn = fault_tolerance,
    signing_threshold: Fn = signing_threshold,
    is_round_change_jump: Fn = is_round_change_jump,
    sizes: Sequence[int] = SIZES,
) -> ProofResult:
    name = "qbft.quorum_intersection"
    n, a, b, i, byz = z3.Ints("N |A| |B| |A_and_B| byzantine")
    f, q, m = fault_tolerance(n), quorum_size(n), signing_threshold(n)
    cardinalities = [n >= 1, a <= n, b <= n, i >= 0, i <= a, i <= b, i >= a + b - n, byz >= 0, byz <= f]
    parts = [
        check_valid(
            "intersection",
            "two quorums share >= F+1 nodes, more than the Byzantine ones",
            [*cardinalities, is_quorum(a, n, quorum_size), is_quorum(b, n, quorum_size)],
            And(i >= f + 1, i - byz >= 1),
        ),
        check_valid(
            "signing",
            "an M-of-N set of shares holds more than F shares, so an honest one",
            [n >= 1, a <= n, a >= m, byz >= 0, byz <= f],
            And(a >= f + 1, a - byz >= 1),
        ),
        check_valid(
            "round_change_jump",
            "the F+1 ROUND-CHANGEs that let a node jump ahead hold an honest sender's",
            [n >= 1, a <= n, byz >= 0, byz <= f, is_round_change_jump(a, n, fault_tolerance)],
            a - byz >= 1,
        ),
        check_valid(
            "availability",
            "the N-F honest nodes alone reach a quorum and the signing threshold",
            [n >= 1],
            And(n - f >= q, n - f >= m, q >= 1, m >= 1),
        ),
        check_valid(
            "ceil_2n_3",
            "Q = ceil(2N/3) = M",
            [n >= 1],
            And(q == CeilDiv(2 * n, 3), q == m),
        ),
    ]
    for size in sizes:
        parts.append(_sets_intersect(size, quorum_size, fault_tolerance, signing_threshold))
    return all_of(name, QUORUM_STATEMENT, parts)


def _sets_intersect(n: int, quorum_size: Fn, fault_tolerance: Fn, signing_threshold: Fn) -> ProofResult:
    """On sets: two quorums, and an M-set, each contain an honest node (N fixed, sets symbolic)."""
    in_a = [z3.Bool(f"a{j}") for j in range(1, n + 1)]
    in_b = [z3.Bool(f"b{j}") for j in range(1, n + 1)]
    signer = [z3.Bool(f"s{j}") for j in range(1, n + 1)]
    honest = [z3.Bool(f"honest{j}") for j in range(1, n + 1)]
    byzantine_bound = Sum(*[Not(h) for h in honest]) <= fault_tolerance(n)
    return check_valid(
        f"sets N={n}",
        "two quorums share an honest node; M signers include an honest one",
        [
            byzantine_bound,
            is_quorum(Sum(*in_a), n, quorum_size),
            is_quorum(Sum(*in_b), n, quorum_size),
            Sum(*signer) >= signing_threshold(n),
        ],
        And(
            Or(*[And(x, y, h) for x, y, h in zip(in_a, in_b, honest, strict=True)]),
            Or(*[And(s, h) for s, h in zip(signer, honest, strict=True)]),
        ),
    )


# --- theorem 2 -----------------------------------------------------------------------------------------

AGREEMENT_STATEMENT = (
    f"no two honest nodes decide different values: inductive invariant over rounds on the justification "
    f"and quorum predicates, rounds symbolic, N = 1..{MAX_N}"
)


def _vote_slots(prefix: str, n: int) -> list[VoteSlot]:
    return [
        VoteSlot(z3.Bool(f"{prefix}{j}.present"), z3.Int(f"{prefix}{j}.round"), z3.Int(f"{prefix}{j}.value"))
        for j in range(1, n + 1)
    ]


def _round_change_slots(prefix: str, n: int) -> list[RoundChangeSlot]:
    return [
        RoundChangeSlot(
            z3.Bool(f"{prefix}{j}.present"),
            z3.Int(f"{prefix}{j}.round"),
            z3.Int(f"{prefix}{j}.prepared_round"),
            z3.Int(f"{prefix}{j}.prepared_value"),
        )
        for j in range(1, n + 1)
    ]


class _Cluster:
    """Symbolic state of an N-node cluster after a commit quorum for (r, v), with Inv(k) assumed."""

    def __init__(self, n: int, quorum_size: Fn, fault_tolerance: Fn, is_commit_certificate: Fn) -> None:
        self.n = n
        self.r, self.k, self.v = z3.Ints("r k v")
        self.honest = [z3.Bool(f"honest{j}") for j in range(1, n + 1)]
        self.prepare_r = [
            z3.Int(f"prepare_in_r{j}") for j in range(1, n + 1)
        ]  # an honest node's one round-r PREPARE
        self.prepared_round = [z3.Int(f"prepared_round{j}") for j in range(1, n + 1)]
        self.prepared_value = [z3.Int(f"prepared_value{j}") for j in range(1, n + 1)]
        self.commits = _vote_slots("commit", n)  # the commit quorum for (r, v)
        self.prepares_v = _vote_slots("prepare_v", n)  # the prepare quorum an honest committer saw
        self.quorum_size = quorum_size
        r, v = self.r, self.v
        self.facts: list[Any] = [
            r >= 1,
            Sum(*[Not(h) for h in self.honest]) <= fault_tolerance(n),
            is_commit_certificate(n, r, v, self.commits, quorum_size=quorum_size),
            is_vote_quorum(n, r, v, self.prepares_v, quorum_size),
        ]
        for j in range(n):
            h = self.honest[j]
            self.facts += [
                # what an honest node signed is what it did: one PREPARE in round r
                Implies(And(h, self.prepares_v[j].present), self.prepares_v[j].value == self.prepare_r[j]),
                # upon-rule commit: committing in round r makes the prepared round r; it never decreases
                Implies(And(h, self.commits[j].present), self.prepared_round[j] >= r),
            ]

    def shares_honest(self, a: list[VoteSlot] | list[RoundChangeSlot], b: list[VoteSlot]) -> Any:
        """Lemma: two quorums share an honest node (proved for this N by `_quorum_lemmas`)."""
        return _shares_honest(
            self.n, [s.present for s in a], [s.present for s in b], self.honest, self.quorum_size
        )

    def holds_honest(self, a: list[VoteSlot]) -> Any:
        """Lemma: a quorum holds an honest node (proved for this N by `_quorum_lemmas`)."""
        return _holds_honest(self.n, [s.present for s in a], self.honest, self.quorum_size)

    def assume_invariant(self, k: Any) -> list[Any]:
        """Inv(k) for the honest nodes' prepared state (rounds in [r, k) prepared v)."""
        facts = [k > self.r]
        for j in range(self.n):
            pr, pv = self.prepared_round[j], self.prepared_value[j]
            facts += [
                Implies(self.honest[j], And(pr >= 0, pr < k)),
                Implies(And(self.honest[j], pr >= self.r), pv == self.v),
            ]
        return facts

    def honest_prepares(self, prepares: list[VoteSlot], k: Any) -> list[Any]:
        """Honest PREPAREs in a certificate: round r's is the node's one, rounds (r, k) are v (Inv)."""
        facts = []
        for j in range(self.n):
            s, h = prepares[j], self.honest[j]
            facts += [
                Implies(And(h, s.present, s.round == self.r), s.value == self.prepare_r[j]),
                Implies(And(h, s.present, s.round > self.r, s.round < k), s.value == self.v),
            ]
        return facts


def _shares_honest(n: int, a: list[Any], b: list[Any], honest: list[Any], quorum_size: Fn) -> Any:
    both_quorums = And(is_quorum(Sum(*a), n, quorum_size), is_quorum(Sum(*b), n, quorum_size))
    return Implies(both_quorums, Or(*[And(h, x, y) for h, x, y in zip(honest, a, b, strict=True)]))


def _holds_honest(n: int, a: list[Any], honest: list[Any], quorum_size: Fn) -> Any:
    return Implies(
        is_quorum(Sum(*a), n, quorum_size), Or(*[And(h, x) for h, x in zip(honest, a, strict=True)])
    )


def _quorum_lemmas(c: _Cluster, fault_tolerance: Fn) -> ProofResult:
    """The two counting facts the other parts use as hints, proved for this N and these rules: with at
    most F Byzantine nodes, any two quorums share an honest node and any quorum holds one. (Handing Z3
    the case split keeps N = 13 in seconds instead of minutes; proving it here keeps that sound.)"""
    a = [z3.Bool(f"lemma_a{j}") for j in range(1, c.n + 1)]
    b = [z3.Bool(f"lemma_b{j}") for j in range(1, c.n + 1)]
    return check_valid(
        f"quorum lemmas N={c.n}",
        "two quorums share an honest node; a quorum holds one",
        [Sum(*[Not(h) for h in c.honest]) <= fault_tolerance(c.n)],
        And(
            _shares_honest(c.n, a, b, c.honest, c.quorum_size), _holds_honest(c.n, a, c.honest, c.quorum_size)
        ),
    )


def agreement(
    *,
    quorum_size: Fn = quorum_size,
    fault_tolerance: Fn = fault_tolerance,
    is_justified_proposal: Fn = is_justified_proposal,
    is_commit_certificate: Fn = is_commit_certificate,
    sizes: Sequence[int] = SIZES,
) -> ProofResult:
    name = "qbft.agreement"
    parts: list[ProofResult] = []
    for n in sizes:
        cluster = _Cluster(n, quorum_size, fault_tolerance, is_commit_certificate)
        parts += [
            _quorum_lemmas(cluster, fault_tolerance),
            _base(cluster),
            _step(cluster, is_justified_proposal),
            _preserve(cluster),
            _decide(cluster, is_commit_certificate),
        ]
    return all_of(name, AGREEMENT_STATEMENT, parts)


def _base(c: _Cluster) -> ProofResult:
    """Inv(r + 1): every prepare quorum of round r is for v."""
    x = z3.Int("x")
    other = _vote_slots("prepare_x", c.n)
    facts = [
        *c.facts,
        is_vote_quorum(c.n, c.r, x, other, c.quorum_size),
        *c.honest_prepares(other, c.r + 1),
        c.shares_honest(other, c.prepares_v),
    ]
    return check_valid(f"base N={c.n}", "a prepare quorum in the commit round is for v", facts, x == c.v)


def _step(c: _Cluster, is_justified_proposal: Fn) -> ProofResult:
    """Inv(k) => a justified PRE-PREPARE for round k carries v."""
    x = z3.Int("x")
    rcs = _round_change_slots("round_change", c.n)
    prepares = _vote_slots("justification_prepare", c.n)
    facts = [*c.facts, *c.assume_invariant(c.k), *c.honest_prepares(prepares, c.k)]
    for j in range(c.n):  # an honest ROUND-CHANGE for round k reports the sender's real prepared state
        s, h = rcs[j], c.honest[j]
        facts.append(
            Implies(
                And(h, s.present),
                And(s.prepared_round == c.prepared_round[j], s.prepared_hash == c.prepared_value[j]),
            )
        )
    facts += [
        c.shares_honest(rcs, c.commits),
        c.shares_honest(prepares, c.prepares_v),
        c.holds_honest(prepares),
    ]
    facts.append(is_justified_proposal(c.n, c.k, x, rcs, prepares, quorum_size=c.quorum_size))
    return check_valid(
        f"step N={c.n}", "a justified proposal after the commit round carries v", facts, x == c.v
    )


def _preserve(c: _Cluster) -> ProofResult:
    """Inv(k) and honest PREPAREs of round k being v (the step) => a prepare quorum of round k is for v."""
    y = z3.Int("y")
    quorum_k = _vote_slots("prepare_k", c.n)
    facts = [
        *c.facts,
        *c.assume_invariant(c.k),
        is_vote_quorum(c.n, c.k, y, quorum_k, c.quorum_size),
        c.holds_honest(quorum_k),
    ]
    for j in range(c.n):
        facts.append(Implies(And(c.honest[j], quorum_k[j].present), quorum_k[j].value == c.v))
    return check_valid(f"preserve N={c.n}", "a prepare quorum of round k is for v", facts, y == c.v)


def _decide(c: _Cluster, is_commit_certificate: Fn) -> ProofResult:
    """A commit certificate for (r2, y), r2 >= r, whose honest members saw a prepare quorum: y = v."""
    y, r2 = z3.Ints("y r2")
    commits = _vote_slots("commit_y", c.n)
    seen = _vote_slots("prepare_y", c.n)  # the prepare quorum an honest committer of y saw
    facts = [
        *c.facts,
        *c.assume_invariant(r2 + 1),
        r2 >= c.r,
        is_commit_certificate(c.n, r2, y, commits, quorum_size=c.quorum_size),
        # a commit certificate holds an honest committer, which committed only after a prepare quorum
        Implies(
            Or(*[And(h, s.present) for h, s in zip(c.honest, commits, strict=True)]),
            is_vote_quorum(c.n, r2, y, seen, c.quorum_size),
        ),
        *c.honest_prepares(seen, r2 + 1),  # Inv(r2 + 1): honest PREPAREs of rounds (r, r2] are v
        c.holds_honest(commits),
        c.holds_honest(seen),
        c.shares_honest(seen, c.prepares_v),
    ]
    return check_valid(f"decide N={c.n}", "a commit certificate in a round >= r is for v", facts, y == c.v)


# --- theorem 3 -----------------------------------------------------------------------------------------


BROKEN_VARIANTS: dict[str, Callable[[Sequence[int]], ProofResult]] = {
    "quorum of 2F (intersection)": lambda sizes: quorum_intersection(
        quorum_size=broken_quorum_size, sizes=sizes
    ),
    "quorum of 2F (agreement)": lambda sizes: agreement(quorum_size=broken_quorum_size, sizes=sizes),
    "signing threshold of F": lambda sizes: quorum_intersection(
        signing_threshold=broken_signing_threshold, sizes=sizes
    ),
    "round-change jump on F messages": lambda sizes: quorum_intersection(
        is_round_change_jump=broken_round_change_jump, sizes=sizes
    ),
    "justification ignoring the prepared value": lambda sizes: agreement(
        is_justified_proposal=broken_proposal_ignores_prepared, sizes=sizes
    ),
    "justification accepting any prepared value": lambda sizes: agreement(
        is_justified_proposal=broken_proposal_any_prepared, sizes=sizes
    ),
    "DECIDED with F+1 commits": lambda sizes: agreement(
        is_commit_certificate=broken_commit_certificate, sizes=sizes
    ),
}

BROKEN_STATEMENT = (
    "every deliberately broken rule (quorum 2F, threshold F, no J2, any prepared, F+1 DECIDED) is refuted"
)


def broken_variants_refuted(*, sizes: Sequence[int] = tuple(range(1, 8))) -> ProofResult:
    """Proved iff Z3 refutes theorem 1 or 2 for every broken variant (a counterexample for each)."""
    name = "qbft.broken_variants_refuted"
    seconds = 0.0
    found: list[str] = []
    for label, run in BROKEN_VARIANTS.items():
        result = run(sizes)
        seconds += result.seconds
        if result.status != REFUTED:  # a broken rule Z3 cannot refute: the proofs would miss that bug
            status = REFUTED if result.status == PROVED else UNKNOWN
            return ProofResult(
                name, BROKEN_STATEMENT, status, seconds, detail=f"{label}: not refuted ({result.status})"
            )
        found.append(f"{label}: {result.detail}")
    return ProofResult(name, BROKEN_STATEMENT, PROVED, seconds, detail="; ".join(found))


THEOREMS = [
    Theorem("quorum_intersection", QUORUM_STATEMENT, quorum_intersection),
    Theorem("agreement", AGREEMENT_STATEMENT, agreement),
    Theorem("broken_variants_refuted", BROKEN_STATEMENT, broken_variants_refuted),
]
