"""The most messages one QBFT instance can be made to store, and how many it stores now.

Decides nothing: this is the bound `instance.py`'s module doc argues, stated as a formula, so the
simulator (`sim/checker.py`) and the tests can check every state against it. It lives apart from
the instance so that what the instance does and what it is checked against are not the same code.
"""

from __future__ import annotations

from covalidator.model.qbft.instance import InstanceConfig, InstanceState, RoundMessages


def memory_bound(config: InstanceConfig) -> int:
    """Most messages an instance ever stores, whatever its peers send: in each live round (ours and
    the window ahead) one PRE-PREPARE and one PREPARE, COMMIT and ROUND-CHANGE per sender; in each
    round behind us only the PRE-PREPARE and one COMMIT per sender."""
    live_rounds = config.max_future_rounds + 1
    return live_rounds * (1 + 3 * config.n) + config.max_round * (1 + config.n)


def round_message_count(rm: RoundMessages) -> int:
    return (rm.pre_prepare is not None) + len(rm.prepares) + len(rm.commits) + len(rm.round_changes)


def stored_message_count(state: InstanceState) -> int:
    return sum(round_message_count(rm) for rm in state.rounds.values())
