"""`covalidator slashing import|export|check`: the EIP-3076 slashing DB from the command line.

Exit codes (operators and scripts rely on them): 0 safe (and recorded with --record) / imported /
exported; 3 refused as slashable (stderr names the rule and the conflicting record); 2 bad input
(malformed JSON, out-of-range number, wrong genesis root, bad hex): one line on stderr, DB unchanged;
1 anything else.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import NoReturn

import click

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT, EXIT_SLASHABLE = 0, 1, 2, 3


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def parse_root(value: str | None, what: str) -> bytes | None:
    from covalidator.model.slashing.interchange import InterchangeError, parse_hex

    if value is None:
        return None
    try:
        root: bytes = parse_hex(value, 32, what)
        return root
    except InterchangeError as e:
        fail(str(e))


def parse_u64(value: str, what: str) -> int:
    from covalidator.model.slashing.interchange import InterchangeError, parse_uint64

    try:
        number: int = parse_uint64(value, what)
        return number
    except InterchangeError as e:
        fail(str(e))


def open_store(db: str, genesis_validators_root: bytes | None) -> object:
    from covalidator.runtime.store import Store, StoreError

    try:
        return Store(db, genesis_validators_root)
    except StoreError as e:
        fail(str(e))


@click.group()
def slashing() -> None:
    """EIP-3076 slashing protection DB: import, export, check."""


@slashing.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--db", required=True, type=click.Path(dir_okay=False), help="SQLite slashing DB (created if missing)."
)
def import_(file: str, db: str) -> None:
    """Merge an EIP-3076 interchange file (v5) into the DB, all or nothing."""
    from covalidator.model.slashing.interchange import InterchangeError, parse_interchange
    from covalidator.runtime.store import Store, StoreError

    try:
        document = json.loads(Path(file).read_text())
    except OSError as e:
        fail(f"cannot read {file}: {e.strerror}")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        fail(f"{file} is not valid JSON: {e}")
    try:
        inter = parse_interchange(document)
    except InterchangeError as e:
        fail(f"{file}: {e}")
    try:
        with Store(db, inter.genesis_validators_root) as store:
            report = store.import_interchange(inter)
    except StoreError as e:
        fail(str(e))
    click.echo(
        f"imported {report.validators} validators, {report.blocks} blocks, {report.attestations} attestations"
        + (
            f" ({report.minified} with slashable history kept as EIP-3076 watermarks)"
            if report.minified
            else ""
        )
    )


@slashing.command("export")
@click.option("--db", required=True, type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), help="Write here instead of stdout.")
@click.option("--minify", is_flag=True, help="EIP-3076 minification: only the watermarks per validator.")
def export(db: str, out: str | None, minify: bool) -> None:
    """Write the DB as an EIP-3076 interchange (v5) document."""
    from covalidator.model.slashing.interchange import minify_interchange, to_json
    from covalidator.runtime.store import Store, StoreError

    if not Path(db).exists():
        fail(f"{db} does not exist")
    try:
        with Store(db) as store:
            inter = store.export_interchange()
    except StoreError as e:
        fail(str(e))
    text = json.dumps(to_json(minify_interchange(inter) if minify else inter), indent=2) + "\n"
    if out is None:
        click.echo(text, nl=False)
    else:
        Path(out).write_text(text)


@slashing.command("check")
@click.option("--db", required=True, type=click.Path(dir_okay=False))
@click.option("--pubkey", required=True, help="Validator public key, 0x + 96 hex.")
@click.option("--attestation", nargs=2, metavar="SOURCE TARGET", help="Source and target epochs.")
@click.option("--block", metavar="SLOT", help="Block slot.")
@click.option(
    "--signing-root", help="0x + 64 hex; unknown when omitted (then only an absent slot/target is safe)."
)
@click.option("--record", is_flag=True, help="Record it when safe (one durable transaction).")
@click.option(
    "--genesis-validators-root", help="Required when DB does not exist yet; must match an existing DB."
)
def check(
    db: str,
    pubkey: str,
    attestation: tuple[str, str] | None,
    block: str | None,
    signing_root: str | None,
    record: bool,
    genesis_validators_root: str | None,
) -> None:
    """May this validator sign this attestation or block? Exit 0 safe, 3 slashable."""
    from covalidator.model.slashing.interchange import InterchangeError, parse_hex
    from covalidator.model.slashing.rules import SignedAttestation, SignedBlock
    from covalidator.runtime.store import Store

    if (attestation is None) == (block is None):
        fail("give exactly one of --attestation SOURCE TARGET or --block SLOT")
    try:
        key = parse_hex(pubkey, 48, "--pubkey")
    except InterchangeError as e:
        fail(str(e))
    root = parse_root(signing_root, "--signing-root")
    gvr = parse_root(genesis_validators_root, "--genesis-validators-root")
    message: SignedAttestation | SignedBlock
    if attestation is not None:
        message = SignedAttestation(
            parse_u64(attestation[0], "SOURCE"), parse_u64(attestation[1], "TARGET"), root
        )
    else:
        assert block is not None
        message = SignedBlock(parse_u64(block, "SLOT"), root)
    store = open_store(db, gvr)
    assert isinstance(store, Store)
    with store:
        verdict = store.check_batch([(key, message)], record=record)[0]
    if not verdict.safe:
        click.echo(f"refused: {verdict.describe()}", err=True)
        sys.exit(EXIT_SLASHABLE)
    recorded = " and recorded" if record and not verdict.repeat else ""
    click.echo(f"{verdict.describe()}{recorded}")
