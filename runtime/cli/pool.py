"""`covalidator exit ...` and `covalidator registration ...`: an operator's side of the messages without
a slot (node/pool.py), for an operator without a VC or one changing the fee recipient.

    exit sign          sign a voluntary exit with this node's share and hand the partial to the running
                       node (its validator API), which persists it, sends it to the peers and, once M
                       operators signed, submits the exit;
    exit status        per validator, the operators whose exit partials the node holds, and the phase;
    registration sign  this operator's partial over a NEW builder registration (timestamp now): once M
                       operators signed the same message, every node switches to it;
    registration status  the current registration of each validator, and those still collecting.

Exit codes: 0 done; 2 bad input or a refusal (one line on stderr); 1 anything else.
"""

from __future__ import annotations

import json
import re
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, NoReturn

import click

EXIT_BAD_INPUT = 2
LOCK_FILE = "cluster-lock.json"


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _http(url: str, body: Any = None, timeout: float = 30.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
    except urllib.error.HTTPError as error:
        try:
            message = json.loads(error.read()).get("message", "")
        except (ValueError, AttributeError):
            message = ""
        fail(f"{url}: HTTP {error.code} {message}".strip())
    except (urllib.error.URLError, OSError) as error:
        fail(f"{url}: {getattr(error, 'reason', error)}")
    return json.loads(raw) if raw else None


class _Operator:
    """This node's lock, share index and the chain, as `exit sign` and `registration sign` need them."""

    def __init__(self, node_dir: Path, validator_api: str, validator: str) -> None:
        from covalidator.runtime.node_setup import ConfigError, load_node_files
        from covalidator.runtime.share_keys import load_share_secrets

        lock_path = node_dir / LOCK_FILE
        try:
            files = load_node_files(lock_path, node_dir)
        except ConfigError as error:
            fail(str(error))
        self.lock = files.lock
        self.share_index = files.share_index
        self.api = validator_api.rstrip("/")
        groups = ["0x" + v.distributed_public_key.hex() for v in self.lock.distributed_validators]
        self.index: int | None = None
        if re.fullmatch(r"0x[0-9a-fA-F]{96}", validator):
            self.group = validator.lower()
            if self.group not in groups:
                fail(f"{validator} is not a validator of this cluster")
        elif validator.isascii() and validator.isdigit():
            self.index = int(validator)
            answer = _http(f"{self.api}/eth/v1/beacon/states/head/validators/{self.index}")
            pubkey = str(answer["data"]["validator"]["pubkey"]).lower()
            found = [g for g in groups if g == pubkey]
            share_of = {
                "0x" + v.public_shares[files.node_index].hex(): "0x" + v.distributed_public_key.hex()
                for v in self.lock.distributed_validators
            }
            if not found and pubkey not in share_of:
                fail(f"validator {validator} ({pubkey}) is not a validator of this cluster")
            self.group = found[0] if found else share_of[pubkey]
        else:
            fail(f"--validator {validator!r}: give a group pubkey (0x + 96 hex) or a validator index")
        try:
            secrets = load_share_secrets(self.lock, files.node_index, node_dir)
        except ConfigError as error:
            fail(str(error))
        self.secret = secrets[self.group]

    def chain(self) -> Any:
        from covalidator.model.cluster.config import ChainConfig

        spec = _http(f"{self.api}/eth/v1/config/spec")["data"]
        genesis = _http(f"{self.api}/eth/v1/beacon/genesis")["data"]
        return ChainConfig.from_spec(
            spec, int(genesis["genesis_time"]), bytes.fromhex(genesis["genesis_validators_root"][2:])
        )

    def validator_index(self) -> int:
        if self.index is None:
            answer = _http(f"{self.api}/eth/v1/beacon/states/head/validators/{self.group}")
            self.index = int(answer["data"]["index"])
        return self.index

    def sign(self, root: bytes) -> str:
        from covalidator.model.crypto import bls

        return "0x" + bls.sign(self.secret, root).hex()


_NODE_DIR = click.option(
    "--node-dir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    required=True,
    help="This operator's node folder (cluster-lock.json, identity key, share keystores).",
)
_VALIDATOR_API = click.option(
    "--validator-api",
    required=True,
    help="The running node's validator API (the URL its VC uses), e.g. http://127.0.0.1:5052.",
)
_VALIDATOR = click.option("--validator", required=True, help="The validator: its group pubkey or its index.")
_MONITORING = click.option(
    "--monitoring", required=True, help="The node's monitoring address, e.g. http://127.0.0.1:8008."
)


@click.group("exit")
def exit_group() -> None:
    """Voluntary exits signed by M operators."""


@exit_group.command("sign")
@_NODE_DIR
@_VALIDATOR_API
@_VALIDATOR
@click.option("--epoch", type=int, default=None, help="The exit's epoch (default: the current epoch).")
def exit_sign(node_dir: Path, validator_api: str, validator: str, epoch: int | None) -> None:
    """Sign a voluntary exit with this node's share and hand it to the running node."""
    from covalidator.model.eth.signing import Kind, signing_root

    operator = _Operator(node_dir, validator_api, validator)
    chain = operator.chain()
    now = chain.clock.epoch_at(int(time.time() * 1000))
    epoch = now if epoch is None else epoch
    if epoch < 0 or epoch > now:
        fail(f"--epoch {epoch}: an exit's epoch must not be in the future (the current epoch is {now})")
    message = {"epoch": str(epoch), "validator_index": str(operator.validator_index())}
    root = signing_root(chain.schedule, Kind.VOLUNTARY_EXIT, message, now)
    body = {"message": message, "signature": operator.sign(root)}
    _http(f"{operator.api}/eth/v1/beacon/pool/voluntary_exits", body)
    click.echo(
        f"operator {operator.share_index} signed the exit of validator {message['validator_index']} "
        f"({operator.group[:18]}...) at epoch {epoch}; signing root 0x{root.hex()}\n"
        f"the node holds it and sends it to its peers: check `covalidator exit status`"
    )


@exit_group.command("status")
@_MONITORING
@click.option("--json", "as_json", is_flag=True, help="Print the node's answer as JSON.")
def exit_status(monitoring: str, as_json: bool) -> None:
    """Per validator: which operators' exit partials the node holds, and whether the exit is on chain."""
    data = _pool(monitoring)
    exits = [e for e in data["entries"] if e["kind"] == "voluntary_exit"]
    if as_json:
        click.echo(json.dumps(exits, indent=2))
        return
    if not exits:
        click.echo("no voluntary exits")
        return
    click.echo(f"{'validator':<22} {'index':>6} {'epoch':>6}  {'operators':<14} {'phase'}")
    for e in exits:
        signed = ",".join(str(s) for s in e["operators"])
        click.echo(
            f"{e['validator'][:20] + '..':<22} {e['message']['validator_index']:>6} {e['message']['epoch']:>6}  "
            f"{signed + f' ({len(e["operators"])}/{e["threshold"]})':<14} {e['phase']}"
        )


def _pool(monitoring: str) -> dict[str, Any]:
    from covalidator.runtime.monitoring import POOL_PATH

    answer = _http(monitoring.rstrip("/") + POOL_PATH)
    data: dict[str, Any] = answer["data"]
    return data


@click.group("registration")
def registration_group() -> None:
    """Builder registrations (fee recipient, gas limit), changed by M operators."""


@registration_group.command("sign")
@_NODE_DIR
@_VALIDATOR_API
@_VALIDATOR
@click.option("--fee-recipient", required=True, help="The new fee recipient (0x + 40 hex).")
@click.option(
    "--gas-limit", type=int, default=None, help="The new gas limit (default: the lock's, or 36000000)."
)
@click.option(
    "--timestamp",
    type=int,
    default=None,
    help="The registration's timestamp (default: now). The other operators must sign the same one: "
    "the first operator's output prints the command for them.",
)
def registration_sign(
    node_dir: Path,
    validator_api: str,
    validator: str,
    fee_recipient: str,
    gas_limit: int | None,
    timestamp: int | None,
) -> None:
    """Sign a new builder registration with this node's share and hand it to the node."""
    from covalidator.model.cluster.lock import registration_message
    from covalidator.model.eth.signing import registration_signing_root
    from covalidator.runtime.cli.cluster import DEFAULT_GAS_LIMIT
    from covalidator.runtime.validator_api import REGISTRATIONS_PATH

    if not re.fullmatch(r"0x[0-9a-fA-F]{40}", fee_recipient):
        fail(f"--fee-recipient {fee_recipient!r} is not a 20-byte 0x-hex address")
    operator = _Operator(node_dir, validator_api, validator)
    entry = operator.lock.validator(bytes.fromhex(operator.group[2:]))
    gas = gas_limit if gas_limit is not None else entry.gas_limit or DEFAULT_GAS_LIMIT
    if not 0 < gas < 2**64:
        fail(f"--gas-limit {gas} is not a positive uint64")
    when = int(time.time()) if timestamp is None else timestamp
    if not 0 <= when < 2**64:
        fail(f"--timestamp {when} is not a uint64")
    message = registration_message(entry.distributed_public_key, fee_recipient, gas, when)
    root = registration_signing_root(operator.lock.fork_version, message)
    _http(f"{operator.api}{REGISTRATIONS_PATH}", [{"message": message, "signature": operator.sign(root)}])
    click.echo(
        f"operator {operator.share_index} signed a registration of {operator.group[:18]}...: fee_recipient "
        f"{message['fee_recipient']}, gas_limit {gas}, timestamp {message['timestamp']}\n"
        f"it becomes current once {operator.lock.threshold} operators sign the same message; the others run:\n"
        f"  covalidator registration sign --node-dir DIR --validator-api URL --validator {operator.group} "
        f"--fee-recipient {message['fee_recipient']} --gas-limit {gas} --timestamp {when}"
    )


@registration_group.command("status")
@_MONITORING
@click.option("--json", "as_json", is_flag=True, help="Print the node's answer as JSON.")
def registration_status(monitoring: str, as_json: bool) -> None:
    """Each validator's current registration, and new ones still collecting partials."""
    data = _pool(monitoring)
    pending = [
        e for e in data["entries"] if e["kind"] == "builder_registration" and e["phase"] == "collecting"
    ]
    if as_json:
        click.echo(json.dumps({"current": data["registrations"], "pending": pending}, indent=2))
        return
    click.echo("current:")
    for pubkey, signed in data["registrations"].items():
        m = signed["message"]
        click.echo(
            f"  {pubkey[:20]}..  fee_recipient {m['fee_recipient']}  gas_limit {m['gas_limit']}  timestamp {m['timestamp']}"
        )
    click.echo("pending:" if pending else "pending: none")
    for e in pending:
        m = e["message"]
        click.echo(
            f"  {e['validator'][:20]}..  fee_recipient {m['fee_recipient']}  gas_limit {m['gas_limit']}  "
            f"timestamp {m['timestamp']}  operators {e['operators']} ({len(e['operators'])}/{e['threshold']})"
        )
