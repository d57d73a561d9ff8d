"""A local run's figures: the devnet BN's report joined with what each node's trace says.

The BN's judge decides what succeeded (a duty counts once a valid signed object reached the chain)
and the end-to-end latency (first valid arrival minus the duty's start). The nodes' traces add why a
duty failed (their `DutyOutcome` records: the reason most nodes gave for that validator) and how long
consensus took (their `consensus_duration_ms` metrics). A duty the chain missed that no node gave a
reason for is "missed at BN". Reads only; decides nothing about the protocol.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from covalidator.model.duty import DutyKind
from covalidator.runtime.devnet.report import quantiles
from covalidator.runtime.trace import segments

MISSED_AT_BN = "missed at BN"


@dataclass
class NodeFigures:
    consensus_ms: list[float] = field(default_factory=list)
    # (slot, kind, validator key) -> the reason this node's DutyOutcome gave for not succeeding
    failures: dict[tuple[int, str, str], str] = field(default_factory=dict)
    outcomes: int = 0


def read_node_trace(trace_dir: Path) -> NodeFigures:
    """Outcomes and consensus durations from a node's trace segments (only those action lines are
    parsed: a trace of a few epochs holds many thousand steps)."""
    figures = NodeFigures()
    for _, path in segments(trace_dir) if trace_dir.is_dir() else []:
        for raw in path.read_bytes().split(b"\n"):
            if not raw.startswith(b'{"i"') or b'"actions"' not in raw:
                continue
            if b"consensus_duration_ms" not in raw and b"DutyOutcome" not in raw:
                continue
            try:
                actions = json.loads(raw)["actions"]
            except (ValueError, KeyError):
                continue  # a torn last line
            for action in actions:
                _take(figures, action)
    return figures


def _take(figures: NodeFigures, action: dict[str, Any]) -> None:
    if action.get("type") == "Metric" and action.get("name") == "consensus_duration_ms":
        figures.consensus_ms.append(float(action["value"]))
    elif action.get("type") == "DutyOutcome":
        figures.outcomes += 1
        if not action.get("ok"):
            duty = action["duty"]
            kind = DutyKind(int(duty["kind"])).name.lower()  # encoded as the enum's value
            figures.failures[(int(duty["slot"]), kind, str(action["pubkey"]))] = (
                action.get("reason") or "failed"
            )


def failed_by_reason(report: dict[str, Any], nodes: list[NodeFigures]) -> dict[str, int]:
    """Per slot and duty kind, the chain's missed count, named by the reasons the nodes gave there
    (the most widely given first); what no node explains is MISSED_AT_BN."""
    votes: dict[tuple[int, str], Counter[str]] = {}
    by_validator: dict[tuple[int, str, str], Counter[str]] = {}
    for node in nodes:
        for key, reason in node.failures.items():
            by_validator.setdefault(key, Counter())[reason] += 1
    for (slot, kind, _), reasons in by_validator.items():
        votes.setdefault((slot, kind), Counter())[reasons.most_common(1)[0][0]] += 1
    out: Counter[str] = Counter()
    for slot_text, kinds in (report.get("slots") or {}).items():
        for kind, (expected, done) in kinds.items():
            missed = expected - done
            for reason, count in (votes.get((int(slot_text), kind)) or Counter()).most_common():
                take = min(count, missed)
                if take > 0:
                    out[reason] += take
                    missed -= take
            if missed > 0:
                out[MISSED_AT_BN] += missed
    return dict(out.most_common())


def summarize(report: dict[str, Any], nodes: list[NodeFigures]) -> dict[str, Any]:
    duties = report["duties"]
    consensus = quantiles([ms for node in nodes for ms in node.consensus_ms])
    e2e = report["latency_ms"]["all"]
    return {
        "validators": report["validators"],
        "epochs": report["epochs"],
        "seconds_per_slot": int(report["seconds_per_slot"]),
        "duties": duties["expected"],
        "succeeded": duties["succeeded"],
        "failed": duties["expected"] - duties["succeeded"],
        "failed_by_reason": failed_by_reason(report, nodes),
        "by_kind": {
            k: {"duties": v["expected"], "succeeded": v["succeeded"]} for k, v in duties["by_kind"].items()
        },
        "slashable_pairs": report["slashable_pairs"],
        "invalid_signatures": report["invalid_submissions"],
        "submissions": report["submissions"],
        "consensus_instances": consensus["count"],
        "consensus_ms_p50": consensus["p50"],
        "consensus_ms_p99": consensus["p99"],
        "e2e_ms_p50": e2e["p50"],
        "e2e_ms_p99": e2e["p99"],
        "node_outcomes": [node.outcomes for node in nodes],
        # who the chain's blocks paid, and how many a builder built (bellatrix devnet: blinded blocks)
        "blocks_by_fee_recipient": _blocks_by_fee_recipient(report),
        "registrations_at_bn": len((report.get("registrations") or {}).get("held", {})),
        "missed": report.get("missed", []),
        "invalid": report.get("invalid", []),
        "slashable": report.get("slashable", []),
    }


def _blocks_by_fee_recipient(report: dict[str, Any]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for paid in (report.get("payments") or {}).values():
        counts = out.setdefault(paid["fee_recipient"], {"builder": 0, "local": 0})
        counts["builder" if paid["builder"] else "local"] += 1
    return out


def verdict(summary: dict[str, Any]) -> str | None:
    """Why the run failed, in one line; None when every duty succeeded and nothing was unsafe."""
    problems = []
    if summary["duties"] == 0:
        problems.append("no duties were scheduled")
    if summary["failed"]:
        reasons = ", ".join(f"{n} {r}" for r, n in summary["failed_by_reason"].items())
        problems.append(f"{summary['failed']} of {summary['duties']} duties failed ({reasons})")
    if summary["slashable_pairs"]:
        problems.append(f"{summary['slashable_pairs']} slashable pair(s) reached the chain")
    if summary["invalid_signatures"]:
        problems.append(f"{summary['invalid_signatures']} invalid signature(s) submitted")
    return "; ".join(problems) or None
