"""`covalidator version`: the version, and the BLS backend this process would sign with."""

from __future__ import annotations

import sys
from importlib.metadata import version as package_version

import click


@click.command()
def version() -> None:
    """Print covalidator's version and the BLS backend in use (COVALIDATOR_BLS_BACKEND chooses it)."""
    from covalidator.model import bls

    try:
        backend = bls.backend()
    except (ValueError, ImportError) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    click.echo(f"covalidator {package_version('covalidator')}")
    click.echo(f"bls backend: {backend.name} ({backend.library()})")
    click.echo(f"bls backends available: {', '.join(bls.BACKENDS)} (set {bls.ENV_VAR} to choose)")
