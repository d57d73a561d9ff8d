"""`covalidator simulate ...`: deterministic, seeded simulations of the model under injected faults.

`simulate consensus` runs independent QBFT instances (model/qbft_simulation.py) over a faulty network
with Byzantine and crashing co-validators, checks the invariants after every event, and prints the
figures. A failure prints the seed, the instance and the events up to the violation; the same command
with `--seed S --instance K` replays it exactly. Subcommands are imported lazily: to add one, add one
line to SUBCOMMANDS.

Exit codes: 0 no violation (and, with B + C <= F, every instance decided); 1 otherwise; 2 bad input.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

import click

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "consensus": (
        "covalidator.runtime.cli.simulate:consensus",
        "QBFT instances under network faults and Byzantine peers.",
    ),
    "cluster": (
        "covalidator.runtime.cli.simulate_cluster:cluster",
        "Whole clusters: nodes, VCs and a judging chain, every duty kind, real BLS.",
    ),
}

PLANTED_BUGS = ("none", "quorum-2f", "no-j2", "any-prepared", "decided-f+1", "jump-on-f")


class _LazySubcommands(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in SUBCOMMANDS:
            return None
        module_name, attr = SUBCOMMANDS[cmd_name][0].split(":")
        command: click.Command = getattr(importlib.import_module(module_name), attr)
        return command

    def format_commands(self, ctx: click.Context, formatter: Any) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, SUBCOMMANDS[name][1]) for name in self.list_commands(ctx)])


@click.group(cls=_LazySubcommands)
def simulate() -> None:
    """Deterministic seeded simulations: faults injected, invariants checked after every event."""


def _planted_rules(bug: str) -> Any:
    """Deliberately broken rules, to watch the simulator catch them (and replay them from the seed)."""
    from covalidator.model.qbft.rules import RULES
    from covalidator.proofs.qbft_mutants import PLANTED_BUGS

    return PLANTED_BUGS[bug] if bug != "none" else RULES


@click.command()
@click.option(
    "--nodes", "-n", type=click.IntRange(1, 64), default=4, show_default=True, help="Co-validators N."
)
@click.option(
    "--byzantine", "-b", type=click.IntRange(0), default=0, show_default=True, help="Byzantine nodes B."
)
@click.option(
    "--crash",
    "-c",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="Crashing nodes C (restart without memory).",
)
@click.option(
    "--instances",
    "-k",
    type=click.IntRange(1),
    default=1000,
    show_default=True,
    help="Consensus instances K.",
)
@click.option("--seed", "-s", type=int, default=0, show_default=True, help="Seed: names the run exactly.")
@click.option("--partition", is_flag=True, help="Partition the network before GST (it heals at GST).")
@click.option(
    "--behaviour",
    type=click.Choice(["mixed", "silent", "equivocate", "forge", "stale", "invalid", "lock-break", "flood"]),
    default="mixed",
    show_default=True,
    help="What Byzantine nodes do; mixed draws one per node and instance.",
)
@click.option(
    "--instance",
    "only_instance",
    type=click.IntRange(0),
    default=None,
    help="Run only instance K of the seed (replay a failure).",
)
@click.option(
    "--plant-bug",
    type=click.Choice(PLANTED_BUGS),
    default="none",
    show_default=True,
    help="Run with a deliberately broken rule.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def consensus(
    nodes: int,
    byzantine: int,
    crash: int,
    instances: int,
    seed: int,
    partition: bool,
    behaviour: str,
    only_instance: int | None,
    plant_bug: str,
    as_json: bool,
) -> None:
    """Simulate K QBFT instances of an N-node cluster with B Byzantine and C crashing nodes."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from covalidator.sim.qbft import ConsensusScenario, InstanceResult, run_consensus

    if byzantine + crash > nodes:
        click.echo(f"error: --byzantine {byzantine} + --crash {crash} exceeds --nodes {nodes}", err=True)
        sys.exit(2)
    scenario = ConsensusScenario(
        nodes=nodes,
        byzantine=byzantine,
        crash=crash,
        partition=partition,
        behaviour=behaviour,
        rules=_planted_rules(plant_bug),
    )
    first, count = (only_instance, 1) if only_instance is not None else (0, instances)
    console = Console(stderr=True)
    with Progress(
        TextColumn("simulating"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[violations]} violations"),
        TimeElapsedColumn(),
        console=console,
        transient=as_json,
    ) as progress:
        task = progress.add_task("instances", total=count, violations=0)
        seen = [0]

        def advance(result: InstanceResult) -> None:
            seen[0] += sum(result.violations.values())
            progress.update(task, advance=1, violations=seen[0])

        summary = run_consensus(scenario, count, seed, first_index=first, on_instance=advance)
    report = summary.to_json_dict()
    report["planted_bug"] = plant_bug
    failed = summary.total_violations > 0 or (
        scenario.within_tolerance and summary.decided < summary.instances
    )
    if as_json:
        click.echo(json.dumps(report))
    else:
        _print_summary(Console(), report, summary.round_histogram, scenario.within_tolerance)
    sys.exit(1 if failed else 0)


def _print_summary(console: Any, report: dict[str, Any], histogram: dict[int, int], within: bool) -> None:
    from rich.table import Table

    table = Table(
        title=f"QBFT simulation: N={report['nodes']} B={report['byzantine']} C={report['crash']} seed={report['seed']}"
    )
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        ("instances", report["instances"]),
        ("decided (every non-Byzantine node)", report["decided"]),
        ("agreement violations", report["agreement_violations"]),
        ("validity violations", report["validity_violations"]),
        ("integrity violations", report["integrity_violations"]),
        ("honest-conduct violations", report["conduct_violations"]),
        ("memory-bound violations", report["memory_violations"]),
        (
            "decided round p50 / p99 / max",
            f"{report['rounds_p50']} / {report['rounds_p99']} / {report['rounds_max']}",
        ),
        ("messages per instance", report["messages_per_instance"]),
        ("forgeries refused by signatures", report["forgeries_refused"]),
    ]
    for label, value in rows:
        table.add_row(label, str(value))
    console.print(table)
    total = sum(histogram.values()) or 1
    console.print("decided-round histogram:")
    for round, n in sorted(histogram.items()):
        console.print(f"  round {round:>3}: {n:>7}  {'#' * max(1, round_bar(n, total))}")
    if not within:
        console.print(
            "[yellow]B + C exceeds F = floor((N-1)/3): violations and undecided instances may occur[/yellow]"
        )
    for failure in report["failures"]:
        console.print(
            f"\n[red]{failure['violation']}[/red]  seed={failure['seed']} instance={failure['instance']}"
        )
        console.print(f"shortest failing prefix ({len(failure['prefix'])} events):")
        for line in failure["prefix"]:
            console.print(f"  {line}", markup=False, highlight=False)
        console.print(
            f"reproduce: covalidator simulate consensus --nodes {report['nodes']} --byzantine {report['byzantine']} "
            f"--crash {report['crash']}{' --partition' if report['partition'] else ''} --behaviour {report['behaviour']} "
            f"--plant-bug {report['planted_bug']} --seed {failure['seed']} --instance {failure['instance']}"
        )


def round_bar(count: int, total: int) -> int:
    return round(60 * count / total)
