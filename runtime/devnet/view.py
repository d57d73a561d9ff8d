"""Rich tables for a local run: the live per-slot view of the BN's report with a line per node (from
its monitoring endpoints, as `covalidator status` reads them), and the final summary."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table

from covalidator.model.duty import KINDS as DUTY_KINDS
from covalidator.model.duty import DutyKind
from covalidator.runtime.cli.status import STATUS_PATH, health_line, reasons_text

KINDS = ("proposer", "attester", "aggregator", "sync_message", "sync_contribution")
LAST_ROWS = 12  # slots shown in the live view (a terminal's worth)
DEADLINE_SLOTS = {kind: DUTY_KINDS[DutyKind[kind.upper()]].deadline_slots for kind in KINDS}


def _cell(expected: int, done: int, past_deadline: bool) -> str:
    if expected == 0:
        return ""
    missed = expected - done if past_deadline else 0
    colour = "red" if missed else "green" if done == expected else "yellow"
    return f"[{colour}]{done}/{expected}" + (f" ({missed} missed)" if missed else "") + f"[/{colour}]"


def live_table(report: dict[str, Any] | None, title: str) -> Table:
    """Per slot and duty kind: succeeded/due, and how many missed once the deadline passed."""
    table = Table(title=title, title_justify="left", expand=False)
    table.add_column("slot", justify="right")
    for kind in KINDS:
        table.add_column(kind.replace("_", " "), justify="center")
    if report is None or report.get("current_slot") is None:
        table.caption = "waiting for genesis"
        return table
    current = int(report["current_slot"])
    slots = sorted(int(s) for s in report.get("slots", {}) if int(s) <= current)
    for slot in slots[-LAST_ROWS:]:
        kinds = report["slots"][str(slot)]
        cells = []
        for kind in KINDS:
            expected, done = kinds.get(kind, (0, 0))
            cells.append(_cell(expected, done, current >= slot + DEADLINE_SLOTS[kind]))
        table.add_row(str(slot), *cells)
    duties = report["duties"]
    table.caption = (
        f"slot {current} · {duties['succeeded']} of {duties['expected']} duties succeeded, "
        f"{duties['missed']} missed · invalid {report['invalid_submissions']} · "
        f"slashable {report['slashable_pairs']}"
    )
    return table


def live_view(report: dict[str, Any] | None, title: str, nodes: list[dict[str, Any]]) -> Group:
    """The live table, then one line per node: ready (or why not), peers connected, BN state."""
    return Group(live_table(report, title), *(health_line(f"node{i}", n) for i, n in enumerate(nodes)))


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


def summary_table(summary: dict[str, Any]) -> Table:
    table = Table(title="covalidator demo: summary", title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("figure", justify="right")
    table.add_row("duties scheduled", str(summary["duties"]))
    table.add_row("succeeded", str(summary["succeeded"]))
    for reason, count in summary["failed_by_reason"].items():
        table.add_row(f"failed: {reason}", f"[red]{count}[/red]")
    for kind, figures in summary["by_kind"].items():
        table.add_row(f"  {kind.replace('_', ' ')}", f"{figures['succeeded']}/{figures['duties']}")
    table.add_row(
        "consensus p50 / p99", f"{_ms(summary['consensus_ms_p50'])} / {_ms(summary['consensus_ms_p99'])}"
    )
    table.add_row("end-to-end p50 / p99", f"{_ms(summary['e2e_ms_p50'])} / {_ms(summary['e2e_ms_p99'])}")
    table.add_row("slashable pairs", str(summary["slashable_pairs"]))
    table.add_row(
        "invalid signatures", f"{summary['invalid_signatures']} of {summary['submissions']} submissions"
    )
    table.add_row("wall time", f"{summary['wall_s']:.1f} s")
    for node in summary.get("nodes") or []:
        failures = reasons_text(node) if "error" not in node else f"[red]{node['error']}[/red]"
        table.add_row(f"node{node['node']} failure reasons", failures)
        if node.get("monitoring"):
            table.add_row("  monitoring", f"{node['monitoring']} (/metrics /readyz /livez {STATUS_PATH})")
    return table
