"""The ordering rule (dv_safety's guard G1 with the view check): which earlier duties hold one back.

A node joins the consensus of a slashable duty (attester, proposer) only when every earlier duty of
the same kind of each of its validators is finished here: decided and persisted, or ended at its
deadline. The predicate itself is the guard `is_blocked_by` (node/guards.py); this is where the node
asks it.
"""

from __future__ import annotations

from covalidator.model.duty import SLASHABLE_KINDS, DutyId
from covalidator.model.node.phases import DutyRecord
from covalidator.model.node.state import NodeState, on_duty


def blocking(state: NodeState, rec: DutyRecord) -> list[DutyId]:
    """Earlier duties of the same slashable kind, for a validator of `rec`, not finished here."""
    if rec.id.kind not in SLASHABLE_KINDS:
        return []
    keys = set(on_duty(rec))
    blocked_by = state.config.guards.is_blocked_by
    return [other.id for other in state.duties.values() if blocked_by(other, rec, on_duty(other), keys)]
