"""`covalidator create-cluster` and `covalidator combine`: a trusted dealer's cluster, and its undoing.

create-cluster makes (or reads) the validators' keys, Shamir-splits each M-of-N, and writes one folder
per node: the signed cluster lock, the node's peer identity key, and its key shares as EIP-2335
keystores (share index = node index + 1). With --fee-recipient the lock also pins each validator's fee
recipient, gas limit and a builder registration the dealer signs with the group key; with
--withdrawal-address every folder gets deposit-data.json (model/eth/deposit.py, the launchpad's format).
combine does the reverse from >= M node folders: it checks each share against the lock, interpolates every validator's secret key, checks it against the lock's
group key, and writes ordinary EIP-2335 keystores.

Exit codes: 0 done; 2 bad input (one line on stderr, nothing written); 1 anything else.
"""

from __future__ import annotations

import re
import secrets
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

if TYPE_CHECKING:
    from covalidator.model.crypto.keystore import Pbkdf2, Scrypt

EXIT_BAD_INPUT = 2
NETWORK_NAMES = ("mainnet", "holesky", "hoodi", "sepolia", "devnet")
DEFAULT_PEER_PORT = 3610
DEFAULT_GAS_LIMIT = 36_000_000  # mainnet's since 2025; builders and relays take it from the registration


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _hex_option(value: str | None, length: int, name: str) -> bytes | None:
    if value is None:
        return None
    text = value.removeprefix("0x")
    try:
        data = bytes.fromhex(text)
    except ValueError:
        fail(f"{name} must be hex, got {value!r}")
    if len(data) != length:
        fail(f"{name} must be {length} bytes, got {len(data)}")
    return data


def _kdf(name: str, cost: int | None) -> Scrypt | Pbkdf2:
    from covalidator.model.crypto import keystore

    if name == "scrypt":
        n = cost or keystore.SCRYPT.n
        if n < 2 or n & (n - 1):
            fail(f"--kdf-cost for scrypt must be a power of two, got {n}")
        chosen = keystore.Scrypt(n=n)
        if not keystore.scrypt_within_ceilings(n, chosen.r, chosen.p):
            fail(f"--kdf-cost {n} is beyond the ceiling every covalidator reads keystores under")
        return chosen
    c = cost or keystore.PBKDF2.c
    if c > keystore.MAX_PBKDF2_ROUNDS:
        fail(f"--kdf-cost {c} is beyond the ceiling every covalidator reads keystores under")
    return keystore.Pbkdf2(c=c)


kdf_options = [
    click.option(
        "--kdf",
        type=click.Choice(["scrypt", "pbkdf2"]),
        default="scrypt",
        show_default=True,
        help="EIP-2335 key derivation for the keystores written. scrypt (n=2^18) is the EIP's default, "
        "~1 s per keystore; pbkdf2 (c=262144) is ~5x cheaper.",
    ),
    click.option(
        "--kdf-cost",
        type=click.IntRange(min=1),
        default=None,
        help="Override the KDF work factor (scrypt n or pbkdf2 c). Lower values are for tests and local "
        "demos only, never for keys that hold value.",
    ),
]


def with_kdf_options[F: Callable[..., Any]](command: F) -> F:
    for option in reversed(kdf_options):
        command = option(command)
    return command


@click.command("create-cluster")
@click.option("--nodes", "n", type=int, required=True, help="Number of co-validators N (>= 3).")
@click.option(
    "--validators",
    "v",
    type=int,
    default=None,
    help="Number of validators (with --split-existing-keys: defaults to the keystores found).",
)
@click.option(
    "--threshold",
    "m",
    type=int,
    default=None,
    help="Signing threshold M: more than (N + F) / 2 (the DV-safety theorem's bound), at most N. Default ceil(2N/3), the least safe M.",
)
@click.option("--network", type=click.Choice(NETWORK_NAMES), default="mainnet", show_default=True)
@click.option(
    "--split-existing-keys",
    "existing",
    type=click.Path(path_type=Path),
    default=None,
    help="Split these EIP-2335 keystores (*.json, each with a same-named .txt password or one password.txt) instead of making new keys.",
)
@click.option(
    "--interop-keys",
    is_flag=True,
    help="Split the interop (dev-mode) validator keys 0..V-1 instead of making new keys. Never for value.",
)
@click.option(
    "--genesis-validators-root",
    "gvr",
    default=None,
    help="Override the network's genesis validators root (0x-hex, 32 bytes).",
)
@click.option(
    "--fork-version", default=None, help="Override the network's genesis fork version (0x-hex, 4 bytes)."
)
@click.option(
    "--peer-addresses",
    default=None,
    help=f"Comma-separated host:port of each node's peer endpoint, N of them. Default 127.0.0.1:{DEFAULT_PEER_PORT}+i.",
)
@click.option(
    "--fee-recipient",
    default=None,
    help="Execution address(es) for block rewards: one for every validator, or one per validator, "
    "comma-separated. Pins the fee recipient and a group-signed builder registration in the lock.",
)
@click.option(
    "--gas-limit",
    type=int,
    default=DEFAULT_GAS_LIMIT,
    show_default=True,
    help="Gas limit of the builder registrations (with --fee-recipient).",
)
@click.option(
    "--withdrawal-address",
    default=None,
    help="Execution address the validators withdraw to: writes deposit-data.json (the launchpad's "
    "format, 32 ETH each, 0x01 credentials) into every node folder.",
)
@click.option(
    "--compounding",
    is_flag=True,
    help="With --withdrawal-address: 0x02 (compounding, Electra) withdrawal credentials instead of 0x01.",
)
@click.option("--name", default="covalidator cluster", show_default=True, help="A name recorded in the lock.")
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder to create node0 .. node{N-1} in.",
)
@with_kdf_options
def create_cluster(
    n: int,
    v: int | None,
    m: int | None,
    network: str,
    existing: Path | None,
    interop_keys: bool,
    gvr: str | None,
    fork_version: str | None,
    peer_addresses: str | None,
    fee_recipient: str | None,
    gas_limit: int,
    withdrawal_address: str | None,
    compounding: bool,
    name: str,
    out: Path,
    kdf: str,
    kdf_cost: int | None,
) -> None:
    """Create an M-of-N cluster: split validator keys and write one folder per node."""
    from covalidator.model.cluster import lock as cluster_lock
    from covalidator.model.crypto import bls
    from covalidator.model.eth import deposit, networks
    from covalidator.model.eth.interop import interop_secret_key
    from covalidator.model.eth.signing import registration_signing_root
    from covalidator.model.qbft.rules import smallest_safe_threshold, threshold_refusal
    from covalidator.runtime import keys_io

    if n < 3:
        fail(f"refusing --nodes {n}: a cluster needs at least 3 nodes (it tolerates floor((N-1)/3) faults)")
    m = smallest_safe_threshold(n) if m is None else m
    refusal = threshold_refusal(n, m)
    if refusal is not None:
        fail(f"refusing --threshold {m}: {refusal}")
    if existing is not None and interop_keys:
        fail("choose one of --split-existing-keys and --interop-keys")
    if existing is None and (v is None or v < 1):
        fail("--validators V (>= 1) is required unless --split-existing-keys is given")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        fail(f"{out} exists and is not an empty folder: refusing to overwrite")
    addresses = (
        [a.strip() for a in peer_addresses.split(",")]
        if peer_addresses
        else [f"127.0.0.1:{DEFAULT_PEER_PORT + i}" for i in range(n)]
    )
    if len(addresses) != n:
        fail(f"--peer-addresses lists {len(addresses)} addresses for {n} nodes")
    net = networks.network(network)
    fork = _hex_option(fork_version, 4, "--fork-version") or net.genesis_fork_version
    root = _hex_option(gvr, 32, "--genesis-validators-root") or net.genesis_validators_root
    key_derivation = _kdf(kdf, kdf_cost)
    if compounding and withdrawal_address is None:
        fail("--compounding needs --withdrawal-address")
    try:
        credentials = (
            None
            if withdrawal_address is None
            else deposit.withdrawal_credentials(withdrawal_address, compounding=compounding)
        )
    except deposit.DepositError as error:
        fail(f"--withdrawal-address: {error}")

    # The validators' secret keys: read, interop, or fresh.
    if existing is not None:
        try:
            entries = keys_io.read_keystores(existing)
            secrets_bytes = [keys_io.decrypt_keystore_file(e) for e in entries]
        except ValueError as error:
            fail(str(error))
        if v is not None and v != len(secrets_bytes):
            fail(f"--validators {v} but {existing} holds {len(secrets_bytes)} keystores")
        validator_secrets = [bls.secret_from_bytes(s) for s in secrets_bytes]
    elif interop_keys:
        assert v is not None
        validator_secrets = [interop_secret_key(j) for j in range(v)]
    else:
        assert v is not None
        validator_secrets = [secrets.randbelow(bls.CURVE_ORDER - 1) + 1 for _ in range(v)]
    if len(set(validator_secrets)) != len(validator_secrets):
        fail("the same validator key appears twice")

    fees = _fee_recipients(fee_recipient, len(validator_secrets))
    if not 0 < gas_limit < 2**64:
        fail(f"--gas-limit {gas_limit} is not a positive uint64")
    timestamp = int(time.time())  # the registrations' timestamp: fixed at creation
    shares_by_validator = []
    validators = []
    for j, secret in enumerate(validator_secrets):
        while True:  # a zero share has probability N/r; draw again rather than fail
            try:
                shares = bls.split(secret, m, n, [secrets.randbelow(bls.CURVE_ORDER) for _ in range(m - 1)])
                break
            except AssertionError:
                continue
        public = bls.share_pubkeys(shares)
        shares_by_validator.append(shares)
        group = bls.sk_to_pk(secret)
        registration = None
        if fees is not None:
            message = cluster_lock.registration_message(group, fees[j], gas_limit, timestamp)
            signature = bls.sign(secret, registration_signing_root(fork, message))
            registration = (fees[j], gas_limit, {"message": message, "signature": "0x" + signature.hex()})
        validators.append(
            cluster_lock.DistributedValidator(
                group, tuple(public[i] for i in range(1, n + 1)), *(registration or ())
            )
        )
    deposits = None
    if credentials is not None:
        deposits = [
            deposit.deposit_entry(
                pubkey=v.distributed_public_key,
                credentials=credentials,
                amount=deposit.DEPOSIT_AMOUNT_GWEI,
                signature=bls.sign(
                    secret,
                    deposit.deposit_signing_root(
                        v.distributed_public_key, credentials, deposit.DEPOSIT_AMOUNT_GWEI, fork
                    ),
                ),
                genesis_fork_version=fork,
                network_name=network,
            )
            for secret, v in zip(validator_secrets, validators, strict=True)
        ]
    identity_keys = [keys_io.new_identity_key() for _ in range(n)]
    try:
        lock = cluster_lock.build_lock(
            name=name,
            network=network,
            fork_version=fork,
            genesis_validators_root=root,
            threshold=m,
            addresses=addresses,
            identity_keys=identity_keys,
            distributed_validators=validators,
        )
    except cluster_lock.LockError as error:
        fail(str(error))

    passwords = [
        keys_io.new_password() for _ in range(n)
    ]  # one per node: VCs import a folder with one password
    jobs = [
        (bls.secret_to_bytes(shares_by_validator[j][i + 1]), passwords[i])
        for i in range(n)
        for j in range(len(validators))
    ]
    click.echo(f"encrypting {len(jobs)} share keystores ({kdf}) ...", err=True)
    documents = keys_io.encrypt_many(jobs, key_derivation)

    staging = out.with_name(f".{out.name}.{secrets.token_hex(4)}.partial")
    try:
        for i in range(n):
            node = staging / f"node{i}"
            keys_io.write_json(node / keys_io.LOCK_FILE, lock)
            keys_io.save_identity_key(node / keys_io.IDENTITY_FILE, identity_keys[i])
            if deposits is not None:
                keys_io.write_json(node / keys_io.DEPOSIT_FILE, deposits)
            for j in range(len(validators)):
                keys_io.write_keystore(
                    node / keys_io.KEYS_DIR, j, documents[i * len(validators) + j], passwords[i]
                )
        if out.exists():
            out.rmdir()  # empty, checked above
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    click.echo(
        f"created a {m}-of-{n} cluster of {len(validators)} validators on {network} in {out}/node0 .. node{n - 1}\n"
        f"lock_hash {lock['lock_hash']}"
    )
    for j, validator in enumerate(validators):
        click.echo(f"  validator {j}: 0x{validator.distributed_public_key.hex()}")


def _fee_recipients(option: str | None, validators: int) -> list[str] | None:
    if option is None:
        return None
    fees = [f.strip() for f in option.split(",")]
    if len(fees) == 1:
        fees *= validators
    if len(fees) != validators:
        fail(
            f"--fee-recipient lists {len(fees)} addresses for {validators} validators (give one, or one each)"
        )
    for fee in fees:
        if not re.fullmatch(r"0x[0-9a-fA-F]{40}", fee):
            fail(f"--fee-recipient {fee!r} is not a 20-byte 0x-hex address")
    return [f.lower() for f in fees]


@click.command("combine")
@click.option(
    "--cluster-dir",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Folder holding the node folders (node0, node1, ...); at least M of them with their keys.",
)
@click.option(
    "--output-dir",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder to write keystore-{j}.json + keystore-{j}.txt for each validator j.",
)
@with_kdf_options
def combine(cluster_dir: Path, output_dir: Path, kdf: str, kdf_cost: int | None) -> None:
    """Recover the full validator keys from >= M node folders (each share checked against the lock)."""
    from covalidator.model.cluster.lock import LockError
    from covalidator.model.crypto import bls, keystore, shamir
    from covalidator.runtime import keys_io

    node_dirs = sorted(p.parent for p in cluster_dir.glob(f"*/{keys_io.LOCK_FILE}"))
    if not node_dirs:
        fail(f"{cluster_dir}: no node folders (*/{keys_io.LOCK_FILE})")
    try:
        locks = [keys_io.load_lock(d / keys_io.LOCK_FILE, unsafe_threshold_ok=True) for d in node_dirs]
    except LockError as error:
        fail(str(error))
    lock = locks[0]
    for d, other in zip(node_dirs, locks, strict=True):
        if other.lock_hash != lock.lock_hash:
            fail(
                f"{d / keys_io.LOCK_FILE} is a different cluster's lock than {node_dirs[0] / keys_io.LOCK_FILE}"
            )

    shares: dict[int, dict[int, int]] = {}  # share index -> validator j -> share secret
    for d in node_dirs:
        keys = d / keys_io.KEYS_DIR
        if not keys.is_dir():
            click.echo(f"skipping {d}: no {keys_io.KEYS_DIR}/", err=True)
            continue
        try:
            entries = keys_io.read_keystores(keys)
            found = {int(e.path.stem.rsplit("-", 1)[-1]): keys_io.decrypt_keystore_file(e) for e in entries}
        except (ValueError, keystore.KeystoreError) as error:
            fail(str(error))
        indices = set()
        for j, share_bytes in found.items():
            if not 0 <= j < len(lock.distributed_validators):
                fail(f"{keys}/keystore-{j}.json: the lock has no validator {j}")
            public = bls.sk_to_pk(bls.secret_from_bytes(share_bytes))
            try:
                indices.add(lock.distributed_validators[j].public_shares.index(public) + 1)
            except ValueError:
                fail(f"{keys}/keystore-{j}.json is not a share of validator {j} in the lock")
        if len(indices) != 1:
            fail(f"{keys}: keystores hold shares of different nodes {sorted(i - 1 for i in indices)}")
        (index,) = indices
        if index in shares:
            fail(f"{d} holds the same node's shares (node{index - 1}) as another folder")
        shares[index] = {j: bls.secret_from_bytes(s) for j, s in found.items()}

    key_derivation = _kdf(kdf, kdf_cost)
    recovered = []
    for j, validator in enumerate(lock.distributed_validators):
        have = {i: s[j] for i, s in shares.items() if j in s}
        if len(have) < lock.threshold:
            fail(f"validator {j}: {len(have)} shares found, the threshold is {lock.threshold}")
        secret = shamir.interpolate({i: have[i] for i in sorted(have)[: lock.threshold]})
        if bls.sk_to_pk(secret) != validator.distributed_public_key:
            fail(f"validator {j}: the shares do not combine to the lock's distributed_public_key")
        recovered.append(secret)

    existing = sorted(output_dir.glob("keystore-*.json")) if output_dir.exists() else []
    if existing:
        fail(f"{output_dir} already holds keystores ({existing[0].name}, ...): refusing to overwrite")
    passwords = [keys_io.new_password() for _ in recovered]
    documents = keys_io.encrypt_many(
        [(bls.secret_to_bytes(s), p) for s, p in zip(recovered, passwords, strict=True)],
        key_derivation,
    )
    for j, (document, password) in enumerate(zip(documents, passwords, strict=True)):
        keys_io.write_keystore(output_dir, j, document, password)
    click.echo(f"recovered {len(recovered)} validator keys from {len(shares)} node folders into {output_dir}")
