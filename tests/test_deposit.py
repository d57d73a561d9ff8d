"""Deposit data (model/eth/deposit.py) against an independent oracle: the SSZ roots merkleized by hand
here from the consensus specs' definitions (sha256 over 32-byte chunks), and py_ecc's BLS verify."""

from __future__ import annotations

import hashlib

import pytest
from py_ecc.bls import G2ProofOfPossession as pyecc_bls

from covalidator.model.crypto import bls
from covalidator.model.eth import deposit
from covalidator.model.eth.networks import network

ADDRESS = "0x" + "ab" * 19 + "cd"


def _h(a: bytes, b: bytes) -> bytes:
    return hashlib.sha256(a + b).digest()


def _chunks_root(data: bytes, leaves: int) -> bytes:
    """merkleize(pack(data)) for a fixed-size byte vector padded to `leaves` (a power of two) chunks."""
    data = data + bytes(32 * leaves - len(data))
    layer = [data[i : i + 32] for i in range(0, len(data), 32)]
    while len(layer) > 1:
        layer = [_h(layer[i], layer[i + 1]) for i in range(0, len(layer), 2)]
    return layer[0]


def _uint64(value: int) -> bytes:
    return value.to_bytes(8, "little") + bytes(24)


def oracle_message_root(pubkey: bytes, credentials: bytes, amount: int) -> bytes:
    leaves = [_chunks_root(pubkey, 2), credentials, _uint64(amount), bytes(32)]
    return _h(_h(leaves[0], leaves[1]), _h(leaves[2], leaves[3]))


def oracle_data_root(pubkey: bytes, credentials: bytes, amount: int, signature: bytes) -> bytes:
    leaves = [_chunks_root(pubkey, 2), credentials, _uint64(amount), _chunks_root(signature, 4)]
    return _h(_h(leaves[0], leaves[1]), _h(leaves[2], leaves[3]))


def oracle_signing_root(message_root: bytes, fork_version: bytes) -> bytes:
    fork_data_root = _h(fork_version + bytes(28), bytes(32))  # ForkData(version, zero root)
    domain = bytes.fromhex("03000000") + fork_data_root[:28]
    return _h(message_root, domain)  # SigningData(object_root, domain)


@pytest.mark.parametrize("compounding", [False, True])
@pytest.mark.parametrize("net", ["mainnet", "hoodi"])
def test_entry_matches_the_oracle(net: str, compounding: bool) -> None:
    secret = 0x1234567890ABCDEF
    pubkey = bls.sk_to_pk(secret)
    fork = network(net).genesis_fork_version
    credentials = deposit.withdrawal_credentials(ADDRESS, compounding=compounding)
    assert credentials == (b"\x02" if compounding else b"\x01") + bytes(11) + bytes.fromhex(ADDRESS[2:])
    amount = deposit.DEPOSIT_AMOUNT_GWEI
    root = deposit.deposit_signing_root(pubkey, credentials, amount, fork)
    message_root = oracle_message_root(pubkey, credentials, amount)
    assert root == oracle_signing_root(message_root, fork)
    signature = bls.sign(secret, root)
    entry = deposit.deposit_entry(
        pubkey=pubkey,
        credentials=credentials,
        amount=amount,
        signature=signature,
        genesis_fork_version=fork,
        network_name=net,
    )
    assert entry["deposit_message_root"] == message_root.hex()
    assert entry["deposit_data_root"] == oracle_data_root(pubkey, credentials, amount, signature).hex()
    assert entry["amount"] == 32_000_000_000 and entry["fork_version"] == fork.hex()
    assert pyecc_bls.Verify(
        pubkey, oracle_signing_root(message_root, fork), bytes.fromhex(entry["signature"])
    )
    assert set(entry) == {
        "pubkey", "withdrawal_credentials", "amount", "signature", "deposit_message_root",
        "deposit_data_root", "fork_version", "network_name", "deposit_cli_version",
    }  # fmt: skip


def _good_entry() -> dict[str, object]:
    secret = 77
    pubkey = bls.sk_to_pk(secret)
    fork = network("mainnet").genesis_fork_version
    credentials = deposit.withdrawal_credentials(ADDRESS)
    root = deposit.deposit_signing_root(pubkey, credentials, deposit.DEPOSIT_AMOUNT_GWEI, fork)
    return deposit.deposit_entry(
        pubkey=pubkey,
        credentials=credentials,
        amount=deposit.DEPOSIT_AMOUNT_GWEI,
        signature=bls.sign(secret, root),
        genesis_fork_version=fork,
        network_name="mainnet",
    )


@pytest.mark.parametrize(
    ("field", "value", "names"),
    [
        ("amount", 31_000_000_000, "deposit_message_root"),
        ("amount", "32000000000", "amount"),
        ("withdrawal_credentials", "00" * 32, "withdrawal_credentials"),
        ("withdrawal_credentials", "01" + "00" * 10 + "ff" + "ab" * 20, "withdrawal_credentials"),
        ("fork_version", "01017000", "fork_version"),
        ("pubkey", "0x" + "aa" * 47, "pubkey"),
        ("deposit_data_root", "00" * 32, "deposit_data_root"),
        ("deposit_cli_version", None, "deposit_cli_version"),
    ],
)
def test_check_names_each_fault(field: str, value: object, names: str) -> None:
    entry = _good_entry()
    deposit.check_deposit_entry(entry, network("mainnet").genesis_fork_version)
    entry[field] = value
    with pytest.raises(deposit.DepositError, match=names):
        deposit.check_deposit_entry(entry, network("mainnet").genesis_fork_version)


def test_a_signature_over_another_domain_is_refused() -> None:
    """Signed under the genesis validators root of mainnet (not the zero root the deposit domain uses):
    every root matches, only the signature does not, and the check says so."""
    secret = 99
    pubkey = bls.sk_to_pk(secret)
    fork = network("mainnet").genesis_fork_version
    credentials = deposit.withdrawal_credentials(ADDRESS)
    amount = deposit.DEPOSIT_AMOUNT_GWEI
    message_root = oracle_message_root(pubkey, credentials, amount)
    fork_data_root = _h(fork + bytes(28), network("mainnet").genesis_validators_root)
    wrong_root = _h(message_root, bytes.fromhex("03000000") + fork_data_root[:28])
    with pytest.raises(deposit.DepositError, match="signature"):
        deposit.deposit_entry(
            pubkey=pubkey,
            credentials=credentials,
            amount=amount,
            signature=bls.sign(secret, wrong_root),
            genesis_fork_version=fork,
            network_name="mainnet",
        )


def test_withdrawal_address_must_be_an_address() -> None:
    for bad in ("0x1234", "ab" * 20, "0x" + "zz" * 20):
        with pytest.raises(deposit.DepositError, match="withdrawal address"):
            deposit.withdrawal_credentials(bad)
