"""`covalidator simulate cluster`: whole-cluster simulation of the node model (model/cluster_sim.py).

N co-validators, their simulated VCs and one simulated beacon chain that judges every submission
with real BLS. Prints the figures (or one JSON object with `--json`); a violation prints the seed,
the violated invariant and the events that led to it.

Exit codes: 0 no violation and, within the fault tolerance, >= MIN_SUCCESS_PCT of the duties that
started after the network stabilised succeeded; 1 otherwise; 2 bad input.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from covalidator.proofs.mutants import PLANTED_BUGS

MIN_SUCCESS_PCT = 99.0
PLANTED_BUG_NAMES = tuple(PLANTED_BUGS)


@click.command()
@click.option(
    "--nodes", "-n", type=click.IntRange(1, 16), default=4, show_default=True, help="Co-validators N."
)
@click.option("--validators", "-v", type=click.IntRange(1, 4096), default=64, show_default=True)
@click.option("--epochs", "-e", type=click.IntRange(1, 256), default=8, show_default=True)
@click.option("--byzantine", "-b", type=click.IntRange(0), default=0, show_default=True)
@click.option(
    "--crash", "-c", type=click.IntRange(0), default=0, show_default=True, help="Nodes that crash once."
)
@click.option("--seed", "-s", type=int, default=0, show_default=True, help="Seed: names the run exactly.")
@click.option("--partition", is_flag=True, help="Partition the network before GST (it heals at GST).")
@click.option(
    "--behaviour",
    type=click.Choice(["mixed", "slashable", "equivocate", "invalid_partials", "silent"]),
    default="mixed",
    show_default=True,
    help="What Byzantine nodes do.",
)
@click.option(
    "--faulty-vc",
    type=click.Choice(["slow", "missing", "other_data"]),
    multiple=True,
    help="Give one honest node a faulty VC (repeatable).",
)
@click.option(
    "--plant-bug",
    type=click.Choice(PLANTED_BUG_NAMES),
    default="none",
    show_default=True,
    help="Run a deliberately broken node model (proofs/mutants.py).",
)
@click.option(
    "--store-ms",
    type=click.IntRange(0),
    default=None,
    help="Durable write latency (default: the simulator's, 2 ms).",
)
@click.option(
    "--vc-jitter-ms",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="Each VC request up to this much later.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def cluster(
    nodes: int,
    validators: int,
    epochs: int,
    byzantine: int,
    crash: int,
    seed: int,
    partition: bool,
    behaviour: str,
    faulty_vc: tuple[str, ...],
    plant_bug: str,
    store_ms: int | None,
    vc_jitter_ms: int,
    as_json: bool,
) -> None:
    """Simulate an N-node cluster serving V validators for E epochs; the chain judges every signature."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from covalidator.sim.cluster import STORE_MS, ByzantineBehaviour, ClusterScenario, run_cluster
    from covalidator.sim.vc import VCBehaviour

    if byzantine + crash + len(faulty_vc) > nodes:
        click.echo(
            f"error: --byzantine {byzantine} + --crash {crash} + faulty VCs exceed --nodes {nodes}", err=True
        )
        sys.exit(2)
    scenario = ClusterScenario(
        nodes=nodes,
        validators=validators,
        epochs=epochs,
        byzantine=byzantine,
        crash=crash,
        partition=partition,
        seed=seed,
        byzantine_behaviour=ByzantineBehaviour(behaviour),
        faulty_vcs=tuple((0, VCBehaviour(b)) for b in faulty_vc),
        store_ms=STORE_MS if store_ms is None else store_ms,
        vc_jitter_ms=vc_jitter_ms,
        guards=PLANTED_BUGS[plant_bug].guards,
        store_recheck=PLANTED_BUGS[plant_bug].store_recheck,
        planted_bug=plant_bug,
    )
    slots = epochs * 8 + 2
    with Progress(
        TextColumn("simulating"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("slots  {task.fields[violations]} violations"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=as_json,
    ) as progress:
        task = progress.add_task("slots", total=slots, violations=0)

        def on_slot(slot: int, violations: int) -> None:
            progress.update(task, completed=min(slots, slot + 1), violations=violations)

        result = run_cluster(scenario, on_slot=on_slot)
    report = result.to_json_dict()
    report["passed"] = passed(report)
    if as_json:
        click.echo(json.dumps(report))
    else:
        _print(Console(), report)
    sys.exit(0 if report["passed"] else 1)


def passed(report: dict[str, Any]) -> bool:
    """No violation at all, and within tolerance the duties after stabilisation met the bar."""
    if report["violation"] or report["slashable_pairs"] or report["invalid_submissions"]:
        return False
    return not (report["within_tolerance"] and report["success_pct_after_stable"] < MIN_SUCCESS_PCT)


def _print(console: Any, report: dict[str, Any]) -> None:
    from rich.table import Table

    title = (
        f"cluster simulation: N={report['nodes']} V={report['validators']} E={report['epochs']} "
        f"B={report['byzantine']} C={report['crash']} seed={report['seed']}"
    )
    table = Table(title=title)
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows: list[tuple[str, Any]] = [
        ("duties the chain expected", report["duties"]),
        ("succeeded (valid on chain)", f"{report['succeeded']} ({report['success_pct']}%)"),
        (
            "succeeded after the network stabilised",
            f"{report['succeeded_after_stable']}/{report['duties_after_stable']} "
            f"({report['success_pct_after_stable']}%)",
        ),
        ("slashable pairs", report["slashable_pairs"]),
        ("invalid submissions (honest nodes)", report["invalid_submissions"]),
        ("double submissions", report["double_submissions"]),
        ("served before persisted", report["served_before_persisted"]),
        ("consensus p50 / p99 (virtual ms)", f"{report['consensus_ms_p50']} / {report['consensus_ms_p99']}"),
        ("messages / events", f"{report['messages']} / {report['events']}"),
        ("wall time (s), BLS backend", f"{report['wall_s']}, {report['bls_backend']}"),
    ]
    for kind, count in report["succeeded_by_kind"].items():
        rows.append((f"  succeeded: {kind}", count))
    for reason, count in report["failed_by_reason"].items():
        rows.append((f"  failed: {reason}", count))
    for label, value in rows:
        table.add_row(label, str(value))
    console.print(table)
    if report["violation"]:
        console.print(f"[red]violation: {report['violation']}[/red]  (seed {report['seed']})", markup=True)
        console.print(f"failing prefix: {report['failing_prefix_events']} events; the last ones:")
        for line in report["failing_prefix_tail"]:
            console.print(f"  {line}", markup=False, highlight=False)
    if not report["within_tolerance"]:
        console.print("[yellow]faults exceed F = floor((N-1)/3): duties may fail (never safety)[/yellow]")
    console.print("[green]passed[/green]" if report["passed"] else "[red]failed[/red]")
