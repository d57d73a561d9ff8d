"""`covalidator replay TRACE`: rebuild a node from its recorded events alone and compare every action.

The trace's header holds what the node was configured with besides the events (the BN's spec and
genesis, the share index, the model settings, and the cluster lock); `--lock` supplies the lock when
the trace does not hold it, and must then have the trace's lock hash. `model.replay.replay` steps a
fresh node through the events (from the first `Started`: a trace whose oldest segments were rotated
away begins mid-run, and the steps before a start cannot be rebuilt) and names the first step (by the
trace's own step number) whose actions differ from the recorded ones; the invariant monitor reports
persist-before-serve and single-submission violations.

Exit codes: 0 every action reproduced and no invariant violated; 1 a divergence or a violation;
2 a trace or lock that cannot be read (one line).
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

import click

EXIT_BAD_INPUT = 2


def fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_BAD_INPUT)


@click.command("replay")
@click.argument("trace_path", metavar="TRACE_DIR_OR_FILE", type=click.Path(path_type=Path))
@click.option(
    "--lock",
    "lock_path",
    type=click.Path(path_type=Path),
    default=None,
    help="The cluster lock, when the trace does not hold it (its lock hash must match).",
)
def replay(trace_path: Path, lock_path: Path | None) -> None:
    """Replay a node's trace through the model: every action compared, invariants checked."""
    from covalidator.model.cluster.lock import LockError, parse_lock
    from covalidator.model.node.events import Started
    from covalidator.model.node.replay import replay as replay_records
    from covalidator.runtime.node_setup import ConfigError, load_lock, node_config
    from covalidator.runtime.trace import TraceError, read_trace

    if not trace_path.exists():
        fail(f"{trace_path}: no such file or folder")
    try:
        trace = read_trace(trace_path)
    except TraceError as error:
        fail(str(error))
    header = trace.header
    try:
        if lock_path is not None:
            lock, _ = load_lock(lock_path)
        elif header.lock is not None:
            lock = parse_lock(header.lock)
        else:
            fail("the trace does not hold the cluster lock: give it with --lock")
    except (ConfigError, LockError) as error:
        fail(str(error))
    if "0x" + lock.lock_hash.hex() != header.lock_hash.lower():
        fail(f"the lock's hash 0x{lock.lock_hash.hex()} is not the trace's {header.lock_hash}")
    try:
        config = node_config(lock, header.share_index, header.spec, header.genesis, header.config)
    except (ConfigError, AssertionError) as error:
        fail(f"cannot rebuild the node from the trace header: {error}")

    events: Counter[str] = Counter()
    counted = {"records": 0, "actions": 0, "skipped": 0}
    numbers: list[int] = []  # the trace's step number of each replayed step

    def counting() -> Iterator[tuple[Any, tuple[Any, ...]]]:
        started = False
        for step in trace.steps():  # streamed: a trace may be larger than memory
            if step.actions is None:
                continue  # the process died (or the model raised) before its actions were written
            event, recorded = step.event, step.actions
            started = started or isinstance(event, Started)
            if not started:  # the segments with this run's Started were rotated away: no state to start from
                counted["skipped"] += 1
                continue
            counted["records"] += 1
            numbers.append(step.index)
            counted["actions"] += len(recorded)
            events[type(event).__name__] += 1
            yield event, recorded

    try:
        result = replay_records(config, counting())
    except TraceError as error:
        fail(str(error))
    restarts = events.get("Started", 0)
    if restarts == 0:
        fail(
            f"{trace_path}: no Started event to replay from ({counted['skipped']} steps; the segments where "
            "the node started were rotated away)"
        )
    click.echo(
        f"trace {trace_path}: {len(trace.files)} segment(s), node share index {header.share_index}, "
        f"lock {header.lock_hash[:18]}..."
    )
    click.echo(
        f"replayed {result.steps} steps ({counted['actions']} actions, {restarts} start(s))"
        + (", last line torn (the process died mid-write)" if trace.truncated else "")
        + (f"; skipped {counted['skipped']} steps before the first Started" if counted["skipped"] else "")
    )
    click.echo("events: " + ", ".join(f"{name} {count}" for name, count in sorted(events.items())))
    if result.divergence is not None:
        result.divergence = replace(result.divergence, index=numbers[result.divergence.index])
    _report(result)


def _report(result: Any) -> None:
    if result.divergence is not None:
        click.echo(f"DIVERGED at {result.divergence.describe()}")
    for violation in result.violations:
        click.echo(f"INVARIANT VIOLATED: {violation}")
    if result.ok:
        click.echo("every action reproduced; invariants hold (persist before serve, one submission per duty)")
        return
    sys.exit(1)
