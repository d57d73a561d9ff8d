"""Deposit data: what a validator's 32 ETH deposit carries, in the file the staking launchpad takes.

Decides: a validator's withdrawal credentials (0x01: an execution address; 0x02: the same, compounding,
from Electra on), the DepositMessage signing root under the deposit domain (DOMAIN_DEPOSIT over the
network's GENESIS fork version and a zero genesis validators root, as the specs' `compute_domain`
default does: deposits are valid on every fork), the DepositData root, and one entry of the
staking-deposit-cli's `deposit_data-*.json` (the launchpad's input), as that tool writes it:

    {"pubkey": hex, "withdrawal_credentials": hex, "amount": gwei (a JSON number), "signature": hex,
     "deposit_message_root": hex, "deposit_data_root": hex, "fork_version": hex,
     "network_name": str, "deposit_cli_version": str}      (hex without 0x)

and what checking such an entry means (`check_deposit_entry`): every field well-formed, both roots
recomputed from the entry's own fields, and the signature the validator's under the deposit domain.
Containers and domains come from the consensus specs' package.

Must not: hold or draw keys (the caller signs: a dealer with the key, a cluster with a threshold
signature), or read and write files.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from covalidator.model.crypto import bls
from covalidator.model.eth.signing import compute_domain, compute_signing_root
from covalidator.model.eth.specs import spec

DOMAIN_DEPOSIT: Final = bytes.fromhex("03000000")
GWEI_PER_ETH: Final = 10**9
DEPOSIT_AMOUNT_GWEI: Final = 32 * GWEI_PER_ETH
# The staking-deposit-cli release whose file format this matches; the launchpad checks the field exists.
DEPOSIT_CLI_VERSION: Final = "2.7.0"
ETH1_ADDRESS_WITHDRAWAL_PREFIX: Final = b"\x01"
COMPOUNDING_WITHDRAWAL_PREFIX: Final = b"\x02"
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


class DepositError(ValueError):
    """Deposit data that must not be used (the message names the fault)."""


def withdrawal_credentials(address: str, *, compounding: bool = False) -> bytes:
    """0x01 (or 0x02 when compounding) + 11 zero bytes + the 20-byte execution address."""
    if not _ADDRESS.fullmatch(address):
        raise DepositError(f"withdrawal address {address!r} is not a 20-byte 0x-hex address")
    prefix = COMPOUNDING_WITHDRAWAL_PREFIX if compounding else ETH1_ADDRESS_WITHDRAWAL_PREFIX
    return prefix + bytes(11) + bytes.fromhex(address[2:])


def deposit_domain(genesis_fork_version: bytes) -> bytes:
    return compute_domain(DOMAIN_DEPOSIT, genesis_fork_version, bytes(32))


def _deposit_message(pubkey: bytes, credentials: bytes, amount: int) -> Any:
    s = spec("phase0")
    return s.DepositMessage(
        pubkey=s.BLSPubkey(pubkey), withdrawal_credentials=s.Bytes32(credentials), amount=amount
    )


def deposit_message_root(pubkey: bytes, credentials: bytes, amount: int) -> bytes:
    return bytes(_deposit_message(pubkey, credentials, amount).hash_tree_root())


def deposit_signing_root(
    pubkey: bytes, credentials: bytes, amount: int, genesis_fork_version: bytes
) -> bytes:
    """What the validator's key signs: compute_signing_root(DepositMessage, deposit domain)."""
    return compute_signing_root(
        _deposit_message(pubkey, credentials, amount), deposit_domain(genesis_fork_version)
    )


def deposit_data_root(pubkey: bytes, credentials: bytes, amount: int, signature: bytes) -> bytes:
    s = spec("phase0")
    data = s.DepositData(
        pubkey=s.BLSPubkey(pubkey),
        withdrawal_credentials=s.Bytes32(credentials),
        amount=amount,
        signature=s.BLSSignature(signature),
    )
    return bytes(data.hash_tree_root())


def deposit_entry(
    *,
    pubkey: bytes,
    credentials: bytes,
    amount: int,
    signature: bytes,
    genesis_fork_version: bytes,
    network_name: str,
) -> dict[str, Any]:
    """One entry of deposit_data-*.json, as the staking-deposit-cli writes it. Checked before it is
    returned: a signature that is not the validator's under the deposit domain raises DepositError."""
    entry = {
        "pubkey": pubkey.hex(),
        "withdrawal_credentials": credentials.hex(),
        "amount": amount,
        "signature": signature.hex(),
        "deposit_message_root": deposit_message_root(pubkey, credentials, amount).hex(),
        "deposit_data_root": deposit_data_root(pubkey, credentials, amount, signature).hex(),
        "fork_version": genesis_fork_version.hex(),
        "network_name": network_name,
        "deposit_cli_version": DEPOSIT_CLI_VERSION,
    }
    check_deposit_entry(entry, genesis_fork_version)
    return entry


def _hex_field(entry: Mapping[str, Any], name: str, length: int) -> bytes:
    value = entry.get(name)
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-f]*", value) or len(value) != 2 * length:
        raise DepositError(f"deposit data: {name} must be {length} bytes of lower-case hex without 0x")
    return bytes.fromhex(value)


def check_deposit_entry(entry: Mapping[str, Any], genesis_fork_version: bytes) -> None:
    """DepositError unless `entry` is a well-formed deposit of this network whose roots match its
    fields and whose signature is the pubkey's over the deposit message (the deposit contract accepts
    a deposit with a bad signature and the chain then ignores it: the 32 ETH would be stuck)."""
    pubkey = _hex_field(entry, "pubkey", 48)
    credentials = _hex_field(entry, "withdrawal_credentials", 32)
    signature = _hex_field(entry, "signature", 96)
    fork = _hex_field(entry, "fork_version", 4)
    amount = entry.get("amount")
    if type(amount) is not int or not 0 < amount < 2**64:
        raise DepositError("deposit data: amount must be a positive uint64 number of gwei")
    if credentials[:1] not in (ETH1_ADDRESS_WITHDRAWAL_PREFIX, COMPOUNDING_WITHDRAWAL_PREFIX) or any(
        credentials[1:12]
    ):
        raise DepositError("deposit data: withdrawal_credentials are not 0x01/0x02 + 11 zero bytes + address")
    if fork != genesis_fork_version:
        raise DepositError(
            f"deposit data: fork_version {fork.hex()} is not the network's genesis fork version "
            f"{genesis_fork_version.hex()}"
        )
    for name in ("network_name", "deposit_cli_version"):
        if not isinstance(entry.get(name), str):
            raise DepositError(f"deposit data: {name} must be a string")
    if _hex_field(entry, "deposit_message_root", 32) != deposit_message_root(pubkey, credentials, amount):
        raise DepositError("deposit data: deposit_message_root does not match pubkey, credentials and amount")
    if _hex_field(entry, "deposit_data_root", 32) != deposit_data_root(
        pubkey, credentials, amount, signature
    ):
        raise DepositError("deposit data: deposit_data_root does not match the entry's fields")
    root = deposit_signing_root(pubkey, credentials, amount, genesis_fork_version)
    try:
        valid = bls.verify(pubkey, root, signature)
    except bls.BlsError:
        valid = False
    if not valid:
        raise DepositError(
            f"deposit data: the signature is not 0x{pubkey.hex()[:12]}..'s over the deposit message "
            "(deposit domain, genesis fork version)"
        )
