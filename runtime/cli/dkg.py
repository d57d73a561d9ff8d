"""`covalidator dkg`: this operator's side of a distributed key generation (runtime/dkg.py), run by
every operator of a signed cluster definition at about the same time.

Ends with this node's folder as `create-cluster` writes it (cluster-lock.json signed by every
operator, validator_keys/ with this node's shares, deposit-data.json) next to its identity key, or
with one line naming why the ceremony failed and nothing written.

Exit codes: 0 done; 2 bad input (nothing started); 1 the ceremony failed (the line says why and who,
nothing written), or it finished here but not every operator confirmed (written; the line says so).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

import click

from covalidator.runtime.cli.cluster import _kdf, fail, with_kdf_options
from covalidator.runtime.cli.definition import definition_option, load_definition, operator_key

FAULT_ENV = "COVALIDATOR_TEST_DKG_FAULT"  # tests only: runtime/dkg.py's Tamper


@click.command("dkg")
@definition_option("The cluster definition every operator signed.")
@click.option(
    "--node-dir",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Holds this operator's identity-key.pem; receives the lock, keys and deposit data.",
)
@click.option(
    "--p2p",
    default=None,
    help="HOST:PORT to listen on. Default: this operator's port in the definition, on 0.0.0.0 (its host when loopback).",
)
@click.option(
    "--connect-timeout",
    type=float,
    default=300.0,
    show_default=True,
    help="Seconds to wait for every operator to connect.",
)
@click.option(
    "--round-timeout",
    type=float,
    default=None,
    help="Seconds to wait for every operator's message of a round. Default 60 + V x N / 100: the "
    "checks grow with validators and operators (bench/dkg.py).",
)
@with_kdf_options
def dkg(
    path: Path,
    node_dir: Path,
    p2p: str | None,
    connect_timeout: float,
    round_timeout: float | None,
    kdf: str,
    kdf_cost: int | None,
) -> None:
    """Run the DKG ceremony of a cluster definition with the other operators (no trusted dealer)."""
    from covalidator.model.cluster.lock import identity_public_key
    from covalidator.model.dkg.ceremony import CeremonyFailure
    from covalidator.runtime import dkg as runtime_dkg
    from covalidator.runtime import keys_io
    from covalidator.runtime.node_app import listen_address, parse_host_port
    from covalidator.runtime.node_setup import ConfigError

    definition = load_definition(path, fully_signed=True)
    key = operator_key(node_dir)
    try:
        index = definition.node_index_of(identity_public_key(key))
    except KeyError:
        fail(f"{node_dir / keys_io.IDENTITY_FILE} is not the identity key of any operator of {path}")
    for name in (keys_io.LOCK_FILE, keys_io.KEYS_DIR, keys_io.DEPOSIT_FILE):
        if (node_dir / name).exists():
            fail(f"{node_dir / name} exists: this folder already holds a cluster; refusing to overwrite")
    try:
        listen = parse_host_port(p2p, "--p2p") if p2p else listen_address(definition.operators[index].address)
    except ConfigError as error:
        fail(str(error))
    key_derivation = _kdf(kdf, kdf_cost)
    tamper = runtime_dkg.Tamper.parse(os.environ[FAULT_ENV]) if os.environ.get(FAULT_ENV) else None
    if tamper is not None:
        click.echo(f"WARNING: {FAULT_ENV} is set: this node MISBEHAVES on purpose (tests only)", err=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def main() -> runtime_dkg.Result:
        ceremony = runtime_dkg.Ceremony(
            definition,
            key,
            listen,
            connect_s=connect_timeout,
            round_s=round_timeout or 60.0 + definition.validators * definition.nodes / 100,
            tamper=tamper,
        )
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, task.cancel)
        return await ceremony.run()

    click.echo(
        f"dkg: operator {index} of {definition.nodes}, {definition.validators} validators, definition 0x{definition.definition_hash.hex()[:16]}..",
        err=True,
    )
    try:
        result = asyncio.run(main())
    except CeremonyFailure as failure:
        fail(f"dkg failed: {failure}", code=1)
    except (asyncio.CancelledError, KeyboardInterrupt):
        fail("dkg failed: interrupted (the other operators were told)", code=1)
    click.echo(f"encrypting {len(result.secret_shares)} share keystores ({kdf}) ...", err=True)
    runtime_dkg.write_outputs(node_dir, result, key_derivation)
    if result.unconfirmed is not None:
        fail(
            f"dkg finished here and {node_dir} holds the cluster, but not every operator confirmed "
            f"it holds its folder ({result.unconfirmed}): do not deposit until every operator has its "
            "cluster-lock.json",
            code=1,
        )
    click.echo(
        f"dkg done: {node_dir} holds the {definition.threshold}-of-{definition.nodes} cluster\nlock_hash {result.lock['lock_hash']}"
    )
    for j, entry in enumerate(result.deposits):
        click.echo(f"  validator {j}: 0x{entry['pubkey']}")
