"""The `covalidator` command line.

Each subcommand lives in its own module and is imported only when it runs, so `covalidator --help`
never pays for z3, aiohttp or the consensus specs. To add a command, add one line to COMMANDS.

Exit codes shared by every command: 0 success; 2 bad input (a one-line error); 3 refused as
slashable; 1 anything else.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

# name -> ("module:attribute", one-line help shown by `covalidator --help` without importing it)
COMMANDS: dict[str, tuple[str, str]] = {
    "slashing": (
        "covalidator.runtime.cli.slashing:slashing",
        "EIP-3076 slashing protection DB: import, export, check.",
    ),
    "prove": ("covalidator.runtime.cli.prove:prove", "Run every Z3 theorem in proofs/ and print a table."),
    "simulate": (
        "covalidator.runtime.cli.simulate:simulate",
        "Seeded fault-injecting simulations with invariant checks.",
    ),
    "create-cluster": (
        "covalidator.runtime.cli.cluster:create_cluster",
        "Split validator keys M-of-N into node folders.",
    ),
    "identity": (
        "covalidator.runtime.cli.definition:identity_group",
        "An operator's peer identity key: create.",
    ),
    "create-definition": (
        "covalidator.runtime.cli.definition:create_definition",
        "A cluster definition for a DKG (operators, threshold, validators, addresses).",
    ),
    "definition": (
        "covalidator.runtime.cli.definition:definition_group",
        "A cluster definition: sign (each operator), show.",
    ),
    "dkg": (
        "covalidator.runtime.cli.dkg:dkg",
        "Make the cluster's keys with the other operators (FROST DKG, no dealer).",
    ),
    "combine": (
        "covalidator.runtime.cli.cluster:combine",
        "Recover full validator keys from >= M node folders.",
    ),
    "run": ("covalidator.runtime.cli.run:run", "Run one co-validator between its VC and BN (until SIGTERM)."),
    "demo": (
        "covalidator.runtime.cli.demo:demo",
        "Run a local cluster on a devnet for a few epochs and judge it.",
    ),
    "status": (
        "covalidator.runtime.cli.status:status",
        "A live view of one node from its monitoring address.",
    ),
    "replay": (
        "covalidator.runtime.cli.replay:replay",
        "Replay a node's trace through the model; name the first divergence.",
    ),
    "exit": (
        "covalidator.runtime.cli.pool:exit_group",
        "Voluntary exits signed by M operators: sign, status.",
    ),
    "registration": (
        "covalidator.runtime.cli.pool:registration_group",
        "Builder registrations (fee recipient, gas limit) changed by M operators: sign, status.",
    ),
    "version": ("covalidator.runtime.cli.version:version", "Print the version and the BLS backend in use."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        target, _ = COMMANDS[cmd_name]
        module_name, attr = target.split(":")
        command: click.Command = getattr(importlib.import_module(module_name), attr)
        return command

    def format_commands(self, ctx: click.Context, formatter: Any) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="covalidator", prog_name="covalidator")
def main() -> None:
    """covalidator: one Ethereum validator run by N co-validators (M-of-N threshold BLS, QBFT).

    Sits between each operator's validator client and beacon node as Beacon-API middleware.
    """
    from covalidator.runtime.bls_choice import ENV_VAR, choose_from_environment

    try:
        choose_from_environment()
    except (ValueError, ImportError) as error:
        click.echo(f"error: {ENV_VAR}: {error}", err=True)
        raise SystemExit(2) from None
