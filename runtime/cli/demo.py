"""`covalidator demo`: a whole cluster on 127.0.0.1 for a few epochs, judged by the devnet BN.

Creates a cluster (interop keys, devnet; or with --dkg, by a DKG among N operator processes), starts the devnet BN, N `covalidator run` nodes and N
devnet VCs as processes (`runtime/devnet/local_cluster.py`), shows a live per-slot table of duties
with a line per node read from its monitoring address (stderr; `covalidator status`'s figures), stops
everything, and prints the summary (`runtime/devnet/summary.py`) with each node's failure reasons.

Exit codes: 0 every duty succeeded, no slashable pair, no invalid signature; 1 otherwise (one line
says why), or a process that failed; 130 interrupted. Every child is stopped on every path.
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

NODE_POLL_S = 2.0  # the live view asks each node's monitoring address this often
READY_MARGIN_S = 2.0  # genesis should come at least this long after everything is ready
START_ATTEMPTS = 3  # a machine too slow for the genesis delay: start again with a longer one


@click.command("demo")
@click.option("--nodes", type=click.IntRange(min=3), default=4, show_default=True, help="Co-validators N.")
@click.option("--validators", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--seconds-per-slot", type=click.IntRange(min=1), default=2, show_default=True)
@click.option(
    "--genesis-delay",
    type=click.FloatRange(min=1),
    default=None,
    help="Seconds from the BN's start to genesis. Default: 5 + 2.5 per node (time to start; started again with a longer one if too short).",
)
@click.option(
    "--fork",
    type=click.Choice(["altair", "bellatrix"]),
    default="altair",
    show_default=True,
    help="The devnet's fork. bellatrix: execution payloads, and a builder paying each registered "
    "fee recipient (the cluster's blocks come through the blinded flow).",
)
@click.option(
    "--dkg",
    is_flag=True,
    help="Make the cluster's keys with `covalidator dkg` (N operator processes, no dealer) instead of "
    "splitting the interop keys. The devnet BN's judge gets the keys from `combine`: it must know in "
    "advance which validators aggregate.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the summary as one JSON object (the live view is transient).",
)
@click.option(
    "--keep",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Run in this folder and keep it (cluster, logs, stores, traces). Default: a temp folder, "
    "removed after a successful run.",
)
def demo(
    nodes: int,
    validators: int,
    epochs: int,
    seconds_per_slot: int,
    genesis_delay: float | None,
    fork: str,
    dkg: bool,
    as_json: bool,
    keep: Path | None,
) -> None:
    """Run a local cluster (devnet BN, N nodes, N VCs) for E epochs; print what the chain saw."""
    from covalidator.runtime.devnet.local_cluster import ClusterSpec

    spec = ClusterSpec(
        nodes, validators, epochs, seconds_per_slot, genesis_delay or 5.0 + 2.5 * nodes, fork=fork, dkg=dkg
    )
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        if any(keep.iterdir()):
            click.echo(f"error: --keep {keep}: the folder must be new or empty", err=True)
            sys.exit(2)
    folder = keep or Path(tempfile.mkdtemp(prefix="covalidator-demo-"))
    signal.signal(signal.SIGTERM, _interrupted)  # like Ctrl-C: stop every child, then exit 130
    summary = _run(spec, folder, as_json)
    if as_json:
        click.echo(json.dumps(summary))
    else:
        from rich.console import Console

        from covalidator.runtime.devnet.view import summary_table

        Console().print(summary_table(summary))
    if summary["why"] is not None:
        click.echo(f"FAILED: {summary['why']} (logs, stores and traces kept in {folder})", err=True)
        sys.exit(1)
    click.echo(
        f"OK: all {summary['duties']} duties succeeded; 0 slashable pairs; 0 invalid signatures", err=True
    )
    if keep is None:
        shutil.rmtree(folder, ignore_errors=True)


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _run(spec: Any, folder: Path, as_json: bool) -> dict[str, Any]:
    from rich.console import Console

    from covalidator.runtime.devnet.local_cluster import LocalCluster
    from covalidator.runtime.devnet.processes import ChildFailed, Children
    from covalidator.runtime.devnet.summary import read_node_trace, summarize, verdict

    console = Console(stderr=True)
    began = time.monotonic()
    codes: dict[str, int | None] = {}
    try:
        for attempt in range(1, START_ATTEMPTS + 1):
            with Children(folder) as children:
                cluster = LocalCluster(spec, folder, children)
                if attempt > 1:
                    cluster.clean()  # what the attempt before left
                with console.status(
                    f"starting {spec.nodes} nodes, {spec.nodes} VCs and the devnet BN in {folder}"
                ):
                    lead = cluster.start()
                console.print(
                    f"cluster ready {time.monotonic() - began:.1f} s after start; genesis in {lead:.1f} s"
                )
                if lead < READY_MARGIN_S and attempt < START_ATTEMPTS:
                    delay = round(spec.genesis_delay_s - lead + 2 * READY_MARGIN_S)
                    console.print(
                        f"[yellow]too late for genesis: starting again with --genesis-delay {delay}"
                    )
                    spec = replace(spec, genesis_delay_s=delay)
                    continue  # every child stopped on leaving the block
                report = _watch(cluster, console, transient=as_json)
                console.line()
                nodes = _nodes(cluster, timeout=3.0)  # after the last duty's deadline, before stopping
                codes = children.stop_all()
                break
    except ChildFailed as error:
        click.echo(f"error: {error} (logs in {folder})", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo(f"interrupted; every process stopped (logs in {folder})", err=True)
        sys.exit(130)
    summary: dict[str, Any] = summarize(report, [read_node_trace(d) for d in cluster.trace_dirs()])
    failed = {name: code for name, code in codes.items() if code not in (0, None)}
    why = verdict(summary)
    if failed:
        exits = ", ".join(f"{name} exited with {code}" for name, code in failed.items())
        why = f"{why}; {exits}" if why else exits
    summary.update(nodes=nodes, wall_s=round(time.monotonic() - began, 1), exit_codes=codes, why=why)
    return summary


def _watch(cluster: Any, console: Any, transient: bool) -> dict[str, Any]:
    """The live table until every duty's deadline has passed and the VCs have finished; the last
    report (with per-slot figures)."""
    from rich.live import Live

    from covalidator.runtime.devnet.processes import ChildFailed
    from covalidator.runtime.devnet.view import live_view

    title = f"covalidator demo: {cluster.spec.nodes} nodes, {cluster.spec.validators} validators"
    give_up = cluster.end_time() + 60.0
    report: dict[str, Any] | None = None
    nodes: list[dict[str, Any]] = []
    polled = 0.0
    view = live_view(None, title, nodes)
    with Live(view, console=console, transient=transient, refresh_per_second=4) as live:
        while True:
            cluster.check()
            report = cluster.report() or report
            if time.monotonic() - polled >= NODE_POLL_S:
                nodes, polled = _nodes(cluster, timeout=1.0), time.monotonic()
            live.update(live_view(report, title, nodes))
            finished = report is not None and report.get("finished") and time.time() >= cluster.end_time()
            if finished and cluster.vcs_done():
                break
            if time.time() > give_up:
                if report is None:
                    raise ChildFailed("the devnet BN never answered its report")
                break  # the VCs overran: judge what reached the chain
            time.sleep(0.5)
    assert report is not None
    return report


def _nodes(cluster: Any, timeout: float) -> list[dict[str, Any]]:
    """Each node's readiness, peers, BN state and the duty tracker's failure reasons in the demo's
    epochs, read from its monitoring address (`covalidator status`'s figures), with that address."""
    from covalidator.runtime.cli.status import poll

    out: list[dict[str, Any]] = []
    for i, url in enumerate(cluster.monitoring):
        figures = poll(url, timeout, cluster.spec.epochs) if url else {"error": "monitoring off"}
        out.append({"node": i, "monitoring": url, **figures})
    return out
