"""The duty tracker: what became of this node's duties, per epoch and per duty kind, and why.

Fed the model's `DutyOutcome` actions (one per validator and duty; the model guarantees exactly one,
success or a named reason from `model/outcomes.py`, with the peers whose partials never arrived).
The node runner logs each failed duty as it ends ("duty failed" with validator, duty, reason,
missing_peers); this module adds one summary line per epoch and duty kind once the epoch's duties
are over ("duties" epoch=E kind=K expected=.. succeeded=.. failed=.. plus one field per reason),
and keeps the recent outcomes for the status endpoint and `covalidator status`.

Decides nothing: it only counts what the model reported.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

from covalidator.model.node.events import DutyOutcome, Metric

log = logging.getLogger("covalidator.duties")

RECENT = 64


class DutyTracker:
    def __init__(self, slots_per_epoch: int) -> None:
        self.slots_per_epoch = slots_per_epoch
        self.epochs: dict[int, dict[str, dict[str, int]]] = {}  # epoch -> kind -> result -> count
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT)
        self.recent_failures: deque[dict[str, Any]] = deque(maxlen=RECENT)
        self.summaries: deque[dict[str, Any]] = deque(maxlen=RECENT)
        self.totals: dict[str, dict[str, int]] = {}  # kind -> result -> count, since start
        self.by_epoch: dict[int, dict[str, dict[str, int]]] = {}  # as `epochs`, kept for RECENT epochs

    # -- MetricsSink --------------------------------------------------------------------------------

    def observe(self, metric: Metric) -> None:
        pass

    def outcome(self, outcome: DutyOutcome) -> None:
        kind = outcome.duty.kind.name.lower()
        result = "success" if outcome.ok else (outcome.reason or "unknown")
        epoch = outcome.duty.slot // self.slots_per_epoch
        tables = (
            self.epochs.setdefault(epoch, {}).setdefault(kind, {}),
            self.by_epoch.setdefault(epoch, {}).setdefault(kind, {}),
            self.totals.setdefault(kind, {}),
        )
        for table in tables:
            table[result] = table.get(result, 0) + 1
        while len(self.by_epoch) > RECENT:
            del self.by_epoch[min(self.by_epoch)]
        entry = {
            "slot": outcome.duty.slot,
            "kind": kind,
            "validator": outcome.pubkey,
            "result": result,
            "missing_peers": list(outcome.missing_peers),
        }
        self.recent.append(entry)
        if not outcome.ok:
            self.recent_failures.append(entry)

    # -- summaries ----------------------------------------------------------------------------------

    def flush(self, up_to_epoch: int) -> list[dict[str, Any]]:
        """Log (and return) the summary of every epoch <= `up_to_epoch` not yet summarized."""
        lines = []
        for epoch in sorted(e for e in self.epochs if e <= up_to_epoch):
            for kind, results in sorted(self.epochs.pop(epoch).items()):
                line = summary(epoch, kind, results)
                lines.append(line)
                self.summaries.append(line)
                level = logging.INFO if line["failed"] == 0 else logging.WARNING
                log.log(level, "duties", extra={"fields": line})
        return lines

    def as_json(self) -> dict[str, Any]:
        return {
            "totals": {k: dict(v) for k, v in self.totals.items()},
            "by_epoch": {
                e: {k: dict(v) for k, v in kinds.items()} for e, kinds in sorted(self.by_epoch.items())
            },
            "summaries": list(self.summaries),
            "recent": list(self.recent)[-16:],
            "recent_failures": list(self.recent_failures),
        }


def summary(epoch: int, kind: str, results: dict[str, int]) -> dict[str, Any]:
    succeeded = results.get("success", 0)
    reasons = {r: n for r, n in sorted(results.items()) if r != "success"}
    return {
        "epoch": epoch,
        "kind": kind,
        "expected": succeeded + sum(reasons.values()),
        "succeeded": succeeded,
        "failed": sum(reasons.values()),
        **{f"failed_{r}": n for r, n in reasons.items()},
    }
