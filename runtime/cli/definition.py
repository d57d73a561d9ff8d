"""`covalidator identity create`, `create-definition` and `definition sign|show`: what the operators
make and sign before a DKG (model/cluster/definition.py holds the format and every check).

    identity create --out D      a new Ed25519 peer identity key in D/identity-key.pem; prints its
                                 public key (what the others put in --operators)
    create-definition ...        a new, unsigned cluster definition with a fresh random nonce
    definition sign              adds this operator's signature (its D/identity-key.pem) to the file
    definition show              the definition, its hash, and who has signed it

Exit codes: 0 done; 2 bad input (one line on stderr, nothing written); 1 anything else.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from covalidator.runtime.cli.cluster import DEFAULT_GAS_LIMIT, NETWORK_NAMES, _hex_option, fail

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from covalidator.model.cluster.definition import ClusterDefinition

DEFINITION_FILE = "cluster-definition.json"
F = TypeVar("F", bound=Callable[..., Any])


@click.group("identity")
def identity_group() -> None:
    """An operator's peer identity key (Ed25519): what its peers and the definition know it by."""


@identity_group.command("create")
@click.option(
    "--out", "out", type=click.Path(path_type=Path, file_okay=False), required=True, help="Node folder."
)
def identity_create(out: Path) -> None:
    """Write a new identity key to OUT/identity-key.pem and print its public key."""
    from covalidator.model.cluster.lock import identity_public_key
    from covalidator.runtime import keys_io

    path = out / keys_io.IDENTITY_FILE
    if path.exists():
        fail(f"{path} exists: refusing to overwrite an identity key")
    key = keys_io.new_identity_key()
    keys_io.save_identity_key(path, key)
    click.echo("0x" + identity_public_key(key).hex())


def _operators(option: str) -> list[tuple[bytes, str]]:
    out = []
    for item in (s.strip() for s in option.split(",")):
        match = re.fullmatch(r"(0x[0-9a-fA-F]{64})@(.+)", item)
        if match is None:
            fail(f"--operators: {item!r} is not <identity public key 0x..32 bytes>@<host:port>")
        out.append((bytes.fromhex(match.group(1)[2:]), match.group(2)))
    return out


@click.command("create-definition")
@click.option(
    "--operators",
    required=True,
    help="Comma-separated <identity public key>@<host:port>, one per operator, in node order.",
)
@click.option("--validators", "v", type=int, required=True, help="Number of validators the DKG makes.")
@click.option(
    "--threshold",
    "m",
    type=int,
    default=None,
    help="Signing threshold M (more than (N + F) / 2, the DV-safety theorem's bound). Default ceil(2N/3).",
)
@click.option("--network", type=click.Choice(NETWORK_NAMES), default="mainnet", show_default=True)
@click.option("--fork-version", default=None, help="Override the genesis fork version (0x-hex, 4 bytes).")
@click.option("--genesis-validators-root", "gvr", default=None, help="Override it (0x-hex, 32 bytes).")
@click.option("--withdrawal-address", required=True, help="Execution address the validators withdraw to.")
@click.option(
    "--compounding", is_flag=True, help="0x02 (compounding) withdrawal credentials instead of 0x01."
)
@click.option("--fee-recipient", required=True, help="Execution address for block rewards.")
@click.option("--gas-limit", type=int, default=DEFAULT_GAS_LIMIT, show_default=True)
@click.option("--name", default="covalidator cluster", show_default=True)
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=DEFINITION_FILE,
    show_default=True,
)
def create_definition(
    operators: str,
    v: int,
    m: int | None,
    network: str,
    fork_version: str | None,
    gvr: str | None,
    withdrawal_address: str,
    compounding: bool,
    fee_recipient: str,
    gas_limit: int,
    name: str,
    out: Path,
) -> None:
    """A new cluster definition for `covalidator dkg`, to be signed by every operator."""
    from covalidator.model.cluster import definition
    from covalidator.model.cluster.lock import Operator
    from covalidator.model.eth import deposit, networks
    from covalidator.model.qbft.rules import smallest_safe_threshold
    from covalidator.runtime import keys_io

    if out.exists():
        fail(f"{out} exists: refusing to overwrite")
    members = _operators(operators)
    net = networks.network(network)
    for flag, address in (("--withdrawal-address", withdrawal_address), ("--fee-recipient", fee_recipient)):
        if not re.fullmatch(r"0x[0-9a-fA-F]{40}", address):
            fail(f"{flag} {address!r} is not a 20-byte 0x-hex address")
    try:
        document = definition.build_definition(
            name=name,
            network=network,
            fork_version=_hex_option(fork_version, 4, "--fork-version") or net.genesis_fork_version,
            genesis_validators_root=_hex_option(gvr, 32, "--genesis-validators-root")
            or net.genesis_validators_root,
            threshold=smallest_safe_threshold(len(members)) if m is None else m,
            validators=v,
            operators=[Operator(key, address) for key, address in members],
            withdrawal_address=withdrawal_address,
            compounding=compounding,
            deposit_amount_gwei=deposit.DEPOSIT_AMOUNT_GWEI,
            fee_recipient=fee_recipient,
            gas_limit=gas_limit,
            registration_timestamp=int(time.time()),
            nonce=secrets.token_bytes(32),
        )
    except definition.DefinitionError as error:
        fail(str(error))
    keys_io.write_json(out, document)
    click.echo(
        f"wrote {out}: {document['threshold']}-of-{len(members)}, {v} validators on {network}\n"
        f"definition_hash {document['definition_hash']}\n"
        f"next: every operator runs `covalidator definition sign --definition {out} --node-dir <its folder>`"
    )


@click.group("definition")
def definition_group() -> None:
    """A cluster definition: sign it, show it."""


def definition_option(help: str | None = None) -> Callable[[F], F]:
    """--definition FILE (default cluster-definition.json), for every command that reads one."""
    return click.option(
        "--definition",
        "path",
        type=click.Path(path_type=Path, dir_okay=False),
        default=DEFINITION_FILE,
        show_default=True,
        help=help,
    )


def _load(path: Path) -> object:
    from covalidator.runtime import keys_io

    try:
        return keys_io.read_json(path)
    except (OSError, ValueError) as error:
        fail(f"{path}: {error}")


def load_definition(path: Path, *, fully_signed: bool = False) -> ClusterDefinition:
    """The checked definition in `path`, or exit 2 with one line naming the fault."""
    from covalidator.model.cluster.definition import DefinitionError, parse_definition

    try:
        return parse_definition(_load(path), fully_signed=fully_signed)
    except DefinitionError as error:
        fail(f"{path}: {error}")


def operator_key(node_dir: Path) -> Ed25519PrivateKey:
    """The identity key in `node_dir`, or exit 2 with one line naming the file."""
    from covalidator.runtime import keys_io

    try:
        return keys_io.load_identity_key(node_dir / keys_io.IDENTITY_FILE)
    except (OSError, ValueError) as error:
        fail(f"{node_dir / keys_io.IDENTITY_FILE}: {error}")


@definition_group.command("sign")
@definition_option()
@click.option(
    "--node-dir",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Holds identity-key.pem.",
)
def definition_sign(path: Path, node_dir: Path) -> None:
    """Add this operator's signature over the definition hash to the file."""
    from covalidator.model.cluster import definition
    from covalidator.model.cluster.lock import identity_public_key
    from covalidator.runtime import keys_io

    document = _load(path)
    key = operator_key(node_dir)
    if not isinstance(document, dict):
        fail(f"{path}: not a cluster definition (a JSON object)")
    try:
        signed = definition.sign_definition(document, key)
        parsed = definition.parse_definition(signed)
    except definition.DefinitionError as error:
        fail(f"{path}: {error}")
    keys_io.write_json(path, signed)
    missing = parsed.unsigned_by()
    click.echo(
        f"signed {path} as operator {parsed.node_index_of(identity_public_key(key))}; "
        + (
            f"still unsigned by operator(s) {', '.join(map(str, missing))}"
            if missing
            else "every operator has signed"
        )
    )


@definition_group.command("show")
@definition_option()
def definition_show(path: Path) -> None:
    """Check the definition and print what it says."""
    d = load_definition(path)
    click.echo(f"{d.name}: {d.threshold}-of-{d.nodes}, {d.validators} validators on {d.network}")
    click.echo(f"definition_hash 0x{d.definition_hash.hex()}  dkg {d.dkg_algorithm}")
    click.echo(
        f"withdrawal {d.withdrawal_address} ({'0x02 compounding' if d.compounding else '0x01'}), "
        f"fee recipient {d.fee_recipient}, gas limit {d.gas_limit}"
    )
    for i, (op, signature) in enumerate(zip(d.operators, d.operator_signatures, strict=True)):
        click.echo(
            f"  operator {i}: 0x{op.identity_public_key.hex()} @ {op.address}  {'signed' if signature else 'NOT signed'}"
        )
