"""`covalidator status --monitoring URL [--once]`: a compact live view of one node, from its endpoints.

Reads the node's `/covalidator/v1/status` on its monitoring address (readiness with reasons, peers,
BNs, duty totals, recent failures) and draws it with rich; refreshes every `--interval` seconds until
Ctrl-C, or prints once with `--once` (exit 0 when the node is ready, 1 when not, 2 when unreachable).
`node_health`/`health_line` are the compact per-node figures `covalidator demo` shows for each node.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from typing import Any

import click

STATUS_PATH = "/covalidator/v1/status"


def fetch(url: str, timeout: float = 3.0) -> dict[str, Any]:
    with urllib.request.urlopen(url.rstrip("/") + STATUS_PATH, timeout=timeout) as response:
        body = json.loads(response.read())
    if not isinstance(body, dict):
        raise ValueError("the status is not a JSON object")
    return body


def _ms(value: Any) -> str:
    return "-" if value is None else f"{float(value):.0f} ms"


def _bn_state(bn: dict[str, Any]) -> str:
    return "down" if bn.get("down") else "syncing" if bn.get("syncing") else "up"


def bn_state(status: dict[str, Any]) -> str:
    """The BNs in a word: ok (one is up and synced), syncing, down, or - (none reported yet)."""
    states = {_bn_state(bn) for bn in (status.get("beacon_nodes") or {}).values()}
    return "ok" if "up" in states else "syncing" if "syncing" in states else "down" if states else "-"


def failure_reasons(status: dict[str, Any], epochs: int | None = None) -> dict[str, dict[str, int]]:
    """The duty tracker's failed duties, since start or of epochs 0 .. `epochs` - 1 only (the demo's:
    its nodes still have duties after its VCs stop): kind -> reason -> count, kinds that failed none
    left out."""
    duties = status.get("duties") or {}
    if epochs is None:
        tables = [duties.get("totals") or {}]
    else:
        tables = [kinds for e, kinds in (duties.get("by_epoch") or {}).items() if int(e) < epochs]
    out: dict[str, dict[str, int]] = {}
    for kinds in tables:
        for kind, results in kinds.items():
            for result, n in results.items():
                if result != "success":
                    out.setdefault(kind, {})[result] = out.get(kind, {}).get(result, 0) + int(n)
    return {k: dict(sorted(v.items())) for k, v in sorted(out.items())}


def node_health(status: dict[str, Any], epochs: int | None = None) -> dict[str, Any]:
    """The compact figures of one node (the demo's per-node line and summary): readiness (the
    /readyz verdict the status carries) with reasons, peers connected, BN state, failure reasons."""
    ready = status.get("ready") or {}
    peers = (status.get("peers") or {}).get("peers") or {}
    nodes = int((status.get("cluster") or {}).get("nodes") or len(peers) + 1)
    return {
        "ready": bool(ready.get("ready")),
        "not_ready": [str(r.get("reason")) for r in ready.get("reasons") or []],
        "peers_connected": sum(1 for p in peers.values() if p.get("connected")),
        "peers": nodes - 1,
        "bn": bn_state(status),
        "failure_reasons": failure_reasons(status, epochs),
    }


def poll(url: str, timeout: float = 3.0, epochs: int | None = None) -> dict[str, Any]:
    """`node_health` of the node at `url`, or {"error": why} when it does not answer."""
    try:
        return node_health(fetch(url, timeout), epochs)
    except (OSError, ValueError) as error:
        return {"error": str(error)}


def health_line(name: str, figures: dict[str, Any]) -> Any:
    """One line: `node0 READY peers 3/3 BN ok`, `NOT READY (too_few_peers)` or the error."""
    from rich.text import Text

    line = Text(f"{name} ")
    if "error" in figures:
        return line.append(f"unreachable: {figures['error']}"[:80], style="red")
    if figures["ready"]:
        line.append("READY", style="bold green")
    else:
        line.append(f"NOT READY ({', '.join(figures['not_ready'])})", style="bold red")
    peers_ok = figures["peers_connected"] == figures["peers"]
    peers = f"  peers {figures['peers_connected']}/{figures['peers']}"
    line.append(peers, style="" if peers_ok else "yellow")
    line.append(f"  BN {figures['bn']}", style="" if figures["bn"] == "ok" else "red")
    return line


def reasons_text(figures: dict[str, Any]) -> str:
    """The failure reasons as `kind reason n, ...`, or "none"."""
    reasons = figures.get("failure_reasons") or {}
    return ", ".join(f"{k} {r} {n}" for k, by in reasons.items() for r, n in by.items()) or "none"


def render(status: dict[str, Any]) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    cluster = status.get("cluster", {})
    ready = status.get("ready", {})
    head = Text()
    head.append(
        f"{cluster.get('name', '?')} node {cluster.get('share_index', '?')} of {cluster.get('nodes', '?')}"
    )
    head.append(f"  threshold {cluster.get('threshold', '?')}  validators {cluster.get('validators', '?')}")
    head.append(f"  slot {status.get('slot', '?')}  ")
    if ready.get("ready"):
        head.append("READY", style="bold green")
    else:
        head.append("NOT READY", style="bold red")
        for reason in ready.get("reasons", []):
            head.append(f"\n  {reason.get('reason')}: {reason.get('detail')}", style="red")

    peers = Table(title="peers", title_justify="left")
    for column in ("peer", "connected", "rtt", "clock offset", "sent", "received"):
        peers.add_column(column)
    for index, peer in sorted(
        (status.get("peers") or {}).get("peers", {}).items(), key=lambda kv: int(kv[0])
    ):
        up = peer.get("connected")
        peers.add_row(
            str(index), Text("yes" if up else "no", style="green" if up else "red"), _ms(peer.get("rtt_ms")),
            _ms(peer.get("clock_offset_ms")), str(peer.get("sent", 0)), str(peer.get("received", 0)),
        )  # fmt: skip

    bns = Table(title="beacon nodes", title_justify="left")
    for column in ("url", "role", "state", "errors", "last error"):
        bns.add_column(column)
    for url, bn in (status.get("beacon_nodes") or {}).items():
        state = _bn_state(bn)
        errors = sum(int(v) for v in (bn.get("errors") or {}).values())
        style = "green" if state == "up" else "red"
        bns.add_row(
            url,
            str(bn.get("role", "")),
            Text(state, style=style),
            str(errors),
            str(bn.get("last_error", ""))[:60],
        )

    duties = status.get("duties") or {}
    totals = Table(title="duties since start", title_justify="left")
    for column in ("kind", "succeeded", "failed", "failure reasons"):
        totals.add_column(column)
    failures_by_kind = failure_reasons(status)
    for kind, results in sorted((duties.get("totals") or {}).items()):
        failed = failures_by_kind.get(kind, {})
        reasons = ", ".join(f"{r} {n}" for r, n in failed.items())
        totals.add_row(kind, str(results.get("success", 0)), str(sum(failed.values())), reasons)

    failures = Table(title="recent failed duties", title_justify="left")
    for column in ("slot", "kind", "validator", "reason", "missing partials from"):
        failures.add_column(column)
    for entry in list(duties.get("recent_failures") or [])[-8:]:
        failures.add_row(
            str(entry.get("slot")), str(entry.get("kind")), str(entry.get("validator", ""))[:12] + "…",
            str(entry.get("result")), ",".join(map(str, entry.get("missing_peers", []))) or "-",
        )  # fmt: skip
    pool = Table(title="exits and registrations since start", title_justify="left")
    for column in ("what", "count"):
        pool.add_column(column)
    for label, count in pool_counts(status).items():
        pool.add_row(label, str(count))
    return Group(head, peers, bns, totals, failures, pool)


POOL_COUNTS = {  # metric (node/pool.py) -> what the operator reads
    "exits_requested": "exit partials signed here",
    "pool_combined": "group signatures combined (exits, registrations)",
    "exits_submitted": "exits submitted to the BN",
    "exits_on_chain": "exits seen on chain",
    "registrations_submitted": "registration submissions to the BN",
    "registrations_replaced": "VC registrations replaced by the cluster's",
    "registrations_changed": "registrations changed by M operators",
}


def pool_counts(status: dict[str, Any]) -> dict[str, int]:
    """The node's exit and registration counters (summed over their labels), from its status."""
    sums = ((status.get("metrics") or {}).get("metrics")) or {}
    return {label: int(sum((sums.get(name) or {}).values())) for name, label in POOL_COUNTS.items()}


@click.command("status")
@click.option(
    "--monitoring",
    "url",
    default="http://127.0.0.1:3620",
    show_default=True,
    envvar="COVALIDATOR_STATUS_URL",
    help="The node's monitoring address (covalidator run --monitoring).",
)
@click.option(
    "--once", is_flag=True, help="Print the view once and exit (0 ready, 1 not ready, 2 unreachable)."
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.2),
    default=2.0,
    show_default=True,
    help="Seconds between refreshes.",
)
def status(url: str, once: bool, interval: float) -> None:
    """A compact live view of one node: readiness, peers, beacon nodes, duties and failure reasons."""
    from rich.console import Console
    from rich.live import Live

    if "://" not in url:
        url = "http://" + url
    console = Console()
    if once:
        try:
            body = fetch(url)
        except (OSError, ValueError) as error:
            click.echo(f"error: {url}: {error}", err=True)
            sys.exit(2)
        console.print(render(body))
        sys.exit(0 if (body.get("ready") or {}).get("ready") else 1)
    with Live(console=console, auto_refresh=False) as live:
        try:
            while True:
                try:
                    live.update(render(fetch(url)), refresh=True)
                except (OSError, ValueError) as error:
                    live.update(f"[red]{url}: {error}[/red]", refresh=True)
                time.sleep(interval)
        except KeyboardInterrupt:
            pass
