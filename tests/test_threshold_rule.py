"""The threshold rule's words (`qbft.rules.threshold_refusal`: the one line the lock, create-cluster and
the node refuse an unsafe M-of-N with), checked against arithmetic written here from the DV-safety
bound, not from the function: F = floor((N - 1) / 3), safe iff 1 <= M <= N and 2M - N >= F + 1.
Which (N, M) are safe is the theorem's business (tests/test_proofs_dv_safety.py compares the rule with
dv_safety on the same grid); this checks that every number the refusal gives an operator is right."""

from __future__ import annotations

import math

from covalidator.model.qbft import rules


def test_every_refusal_names_the_right_numbers_and_every_safe_threshold_is_accepted() -> None:
    for n in range(1, 17):
        f = (n - 1) // 3
        low = math.ceil((n + f + 1) / 2)  # the least M with 2M - N >= F + 1
        assert rules.smallest_safe_threshold(n) == low
        for m in range(-1, n + 3):
            refusal = rules.threshold_refusal(n, m)
            if 1 <= m <= n and 2 * m - n >= f + 1:
                assert refusal is None, (n, m, refusal)
                continue
            assert refusal is not None, (n, m)
            if not 1 <= m <= n:
                assert refusal == f"threshold {m} is outside [1, N] for N = {n} operators", refusal
                continue
            assert refusal.startswith(f"threshold {m} is unsafe for N = {n} operators: "), refusal
            half = f"{(n + f) / 2:g}"
            for words in (
                f"share only 2M - N = {2 * m - n} operator(s)",
                f"fewer than F + 1 = {f + 1} (F = {f} Byzantine tolerated)",
                f"M must exceed (N + F) / 2 = {half}: use {low}..{n} (theorem dv_safety)",
            ):
                assert words in refusal, (n, m, words, refusal)
