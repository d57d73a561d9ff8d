"""`covalidator prove`: run every theorem, print a table, exit non-zero on any failure."""

from __future__ import annotations

import dataclasses
import json
import sys

import click


@click.command()
@click.option("--only", "only", multiple=True, help="Run only theorems whose name contains this text.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON object.")
def prove(only: tuple[str, ...], as_json: bool) -> None:
    """Run every Z3 theorem in proofs/ on the model's own functions."""
    from rich.console import Console
    from rich.table import Table

    try:
        import z3  # noqa: F401
    except ImportError:
        click.echo("covalidator prove needs Z3: pip install 'covalidator[proofs]' (z3-solver)", err=True)
        sys.exit(2)
    from covalidator.proofs.registry import all_theorems

    theorems = [t for t in all_theorems() if not only or any(o in t.name for o in only)]
    if not theorems:
        click.echo("no theorem matches", err=True)
        sys.exit(2)
    stream = sys.stderr if as_json else sys.stdout
    console = Console(stderr=as_json, width=None if stream.isatty() else 150)
    results = []
    for theorem in theorems:
        with console.status(f"proving {theorem.name} ..."):
            result = theorem.run()
        results.append(dataclasses.replace(result, name=theorem.name, statement=theorem.statement))
    failed = [r for r in results if not r.ok]
    if as_json:
        click.echo(
            json.dumps(
                {
                    "theorems": [
                        {
                            "name": r.name,
                            "status": r.status,
                            "seconds": round(r.seconds, 3),
                            "statement": r.statement,
                            "counterexample": r.counterexample,
                            "detail": r.detail,
                        }
                        for r in results
                    ],
                    "failed": len(failed),
                }
            )
        )
    else:
        table = Table(title="covalidator theorems (Z3, on the model's own functions)", expand=True)
        table.add_column("theorem", no_wrap=True)
        table.add_column("statement")
        table.add_column("result")
        table.add_column("seconds", justify="right")
        for r in results:
            colour = "green" if r.ok else "red"
            table.add_row(r.name, r.statement, f"[{colour}]{r.status}[/{colour}]", f"{r.seconds:.2f}")
        console.print(table)
        for r in failed:
            console.print(f"[red]{r.name} {r.status}[/red] {r.detail} counterexample: {r.counterexample}")
        console.print(f"{len(results) - len(failed)}/{len(results)} theorems proved")
    sys.exit(1 if failed else 0)
