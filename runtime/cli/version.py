"""`covalidator version`: the version, and the BLS backend this process would sign with."""

from __future__ import annotations

from importlib.metadata import version as package_version

import click


@click.command()
def version() -> None:
    """Print covalidator's version and the BLS backend in use (COVALIDATOR_BLS_BACKEND chooses it)."""
    from covalidator.model.crypto import bls
    from covalidator.runtime.bls_choice import ENV_VAR

    backend = bls.backend()
    click.echo(f"covalidator {package_version('covalidator')}")
    click.echo(f"bls backend: {backend.name} ({backend.library()})")
    click.echo(f"bls backends available: {', '.join(bls.BACKENDS)} (set {ENV_VAR} to choose)")
