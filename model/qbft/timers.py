"""QBFT round timing: absolute round deadlines measured from the duty's start.

Decides when each round ends; never reads a clock (the caller's `TimerFired` says a deadline passed).

Round r (r >= 1) ends at

    deadline(r) = start + r * duration + increase * r * (r - 1) / 2

i.e. round r lasts `duration + (r - 1) * increase`. The default `increase = 0` gives the issue's
`start + r * ROUND_DURATION`. Why absolute deadlines rather than a timer restarted on every round
change (the IBFT paper's t(r_i)): every honest node leaves round r at the same moment, whatever it saw,
so rounds stay aligned across the cluster without extra messages; a node that was partitioned, slow or
restarted is never more than one round behind; and a restarted node can tell from the time alone which
rounds it may already have voted in (see `qbft.restart`). A positive `increase` restores the paper's
growing timeouts, for networks whose delay bound after GST is unknown.
"""

from __future__ import annotations

ROUND_DURATION_MS = 1_000
ROUND_INCREASE_MS = 0


def round_deadline(start_ms: int, round: int, duration_ms: int, increase_ms: int = 0) -> int:
    """When `round` ends (absolute, in the caller's milliseconds)."""
    assert round >= 1 and duration_ms > 0 and increase_ms >= 0
    return start_ms + round * duration_ms + increase_ms * round * (round - 1) // 2


def round_at(start_ms: int, now_ms: int, duration_ms: int, increase_ms: int = 0) -> int:
    """The round whose window [deadline(r - 1), deadline(r)) holds `now_ms` (1 before the start)."""
    assert duration_ms > 0 and increase_ms >= 0
    if now_ms < start_ms:
        return 1
    if increase_ms == 0:
        return (now_ms - start_ms) // duration_ms + 1
    round = 1
    while round_deadline(start_ms, round, duration_ms, increase_ms) <= now_ms:
        round += 1
    return round
