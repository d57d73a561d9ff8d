"""The cluster lock: the one document every co-validator of a cluster holds, identical on every node.

Decides: the lock's JSON format, its canonical content and `lock_hash`, the operators' identity
signatures over that hash, and what loading a lock checks (each fault with its own message): the
structure and encodings; the counts (N >= 3 operators, a threshold M the DV-safety theorem proves safe
for N: `qbft_rules.threshold_refusal`, M > (N + F) / 2; one public share
per operator for every validator, one signature per operator); that `lock_hash` is the hash of the
content (else the file was modified after signing); that every operator signed it; that no identity
key, address, group key or share key appears twice; that every BLS key is a valid G1 point; and that
every validator's public shares interpolate (degree M-1) to its `distributed_public_key`; and that a
validator's builder registration, when the lock has one, is over its own pubkey, fee recipient and
gas limit and is the group key's signature under the builder domain (DOMAIN_APPLICATION_BUILDER over
the lock's genesis fork version, zero genesis validators root).

Format (field names as existing DV tooling, e.g. Charon's cluster-lock.json, uses where they overlap):

    {"version": "covalidator/lock/v1", "name": str, "network": str,
     "fork_version": "0x<4 bytes: the genesis fork version>",
     "genesis_validators_root": "0x<32 bytes>"   (all zero: not pinned, devnet only),
     "threshold": M,
     "operators": [{"identity_public_key": "0x<32-byte Ed25519 key>", "address": "host:port"}, ...],
     "distributed_validators": [{"distributed_public_key": "0x<48>",
                                 "public_shares": ["0x<48>", ...],   # position i = node i
                                 # optional, all three or none (older locks have none):
                                 "fee_recipient": "0x<20>", "gas_limit": "<decimal>",
                                 "builder_registration": {"message": {"fee_recipient", "gas_limit",
                                     "timestamp", "pubkey"}, "signature": "0x<96>"}}, ...],
     "lock_hash": "0x<32>", "node_signatures": ["0x<64-byte Ed25519 signature>", ...]}

Node i (0-based) holds share index i + 1 of every validator. `lock_hash` is
sha256(b"covalidator/lock/v1\\n" + canonical JSON of everything but lock_hash and node_signatures),
canonical meaning sorted keys, no whitespace, ASCII. Each operator signs
b"covalidator/lock-hash\\n" + lock_hash with its identity key: the prefix keeps that signature
distinct from any peer message signed with the same key.

Must not: read or write files, or generate keys (the runtime does both and passes them in).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from covalidator.model.cluster.document import (
    Reader,
    canonical_hash,
    first_duplicate,
    sign_digest,
    verify_digest,
)
from covalidator.model.crypto import bls
from covalidator.model.eth.signing import SigningError, registration_signing_root
from covalidator.model.qbft.rules import threshold_refusal

LOCK_VERSION: Final = "covalidator/lock/v1"
_HASH_PREFIX: Final = b"covalidator/lock/v1\n"
_SIGNATURE_PREFIX: Final = b"covalidator/lock-hash\n"


class LockError(ValueError):
    """A cluster lock that must not be used (the message names the fault)."""


@dataclass(frozen=True)
class Operator:
    identity_public_key: bytes  # raw 32-byte Ed25519 public key
    address: str  # host:port where its peers reach it


@dataclass(frozen=True)
class DistributedValidator:
    distributed_public_key: bytes
    public_shares: tuple[bytes, ...]  # position i: node i's share pubkey (share index i + 1)
    # optional (locks before them still load): the execution-layer fee recipient, the gas limit, and the
    # cluster's group-signed SignedValidatorRegistrationV1 over them (Beacon-API JSON)
    fee_recipient: str | None = None
    gas_limit: int | None = None
    builder_registration: dict[str, Any] | None = None


@dataclass(frozen=True)
class ClusterLock:
    name: str
    network: str
    fork_version: bytes
    genesis_validators_root: bytes
    threshold: int
    operators: tuple[Operator, ...]
    distributed_validators: tuple[DistributedValidator, ...]
    lock_hash: bytes
    node_signatures: tuple[bytes, ...]

    @property
    def nodes(self) -> int:
        return len(self.operators)

    def share_pubkeys(self, node_index: int) -> dict[bytes, bytes]:
        """{group pubkey: node `node_index`'s share pubkey} for every validator."""
        return {v.distributed_public_key: v.public_shares[node_index] for v in self.distributed_validators}

    def validator(self, group_pubkey: bytes) -> DistributedValidator:
        for v in self.distributed_validators:
            if v.distributed_public_key == group_pubkey:
                return v
        raise KeyError(f"0x{group_pubkey.hex()} is not a validator of this cluster")

    def node_index_of(self, identity_public_key: bytes) -> int:
        for i, op in enumerate(self.operators):
            if op.identity_public_key == identity_public_key:
                return i
        raise KeyError("not an operator of this cluster")


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


def content_json(
    *,
    name: str,
    network: str,
    fork_version: bytes,
    genesis_validators_root: bytes,
    threshold: int,
    operators: Sequence[Operator],
    distributed_validators: Sequence[DistributedValidator],
) -> dict[str, Any]:
    """The signed part of a lock, as JSON."""
    return {
        "version": LOCK_VERSION,
        "name": name,
        "network": network,
        "fork_version": _hex(fork_version),
        "genesis_validators_root": _hex(genesis_validators_root),
        "threshold": threshold,
        "operators": [
            {"identity_public_key": _hex(o.identity_public_key), "address": o.address} for o in operators
        ],
        "distributed_validators": [_validator_json(v) for v in distributed_validators],
    }


def _validator_json(v: DistributedValidator) -> dict[str, Any]:
    out: dict[str, Any] = {
        "distributed_public_key": _hex(v.distributed_public_key),
        "public_shares": [_hex(p) for p in v.public_shares],
    }
    if v.builder_registration is not None:  # absent in older locks: their hash stays the same
        out["fee_recipient"] = v.fee_recipient
        out["gas_limit"] = str(v.gas_limit)
        out["builder_registration"] = v.builder_registration
    return out


def registration_message(group: bytes, fee_recipient: str, gas_limit: int, timestamp: int) -> dict[str, str]:
    """A ValidatorRegistrationV1 as the Beacon API spells it."""
    return {
        "fee_recipient": fee_recipient.lower(),
        "gas_limit": str(gas_limit),
        "timestamp": str(timestamp),
        "pubkey": _hex(group),
    }


def _check_registration(
    j: int, v: Any, group: bytes, fork_version: bytes
) -> tuple[tuple[str, int, dict[str, Any]], bls.SignedItem | None] | None:
    """(fee_recipient, gas_limit, builder_registration) of a lock's validator entry, if it has them, after
    checking that the registration is over exactly them; with the signed item that proves the group key
    signed it (None when no signing root can be made: no signature can be valid), which `parse_lock`
    checks with every other validator's in one batch."""
    where = f"distributed_validators[{j}]"
    present = [k for k in ("fee_recipient", "gas_limit", "builder_registration") if k in v]
    if not present:
        return None
    if len(present) != 3:
        raise LockError(
            f"cluster lock: {where} has {', '.join(present)} but needs all of fee_recipient, "
            "gas_limit and builder_registration"
        )
    fee = _get(v, "fee_recipient", str, where)
    _bytes(fee, 20, f"{where}.fee_recipient")
    gas = _get(v, "gas_limit", str, where)
    if not (gas.isascii() and gas.isdigit()) or int(gas) >= 2**64:
        raise LockError(f"cluster lock: {where}.gas_limit must be a decimal uint64 string")
    registration = _get(v, "builder_registration", dict, where)
    message = _get(registration, "message", dict, f"{where}.builder_registration")
    signature = _bytes(
        _get(registration, "signature", str, f"{where}.builder_registration"),
        96,
        f"{where}.builder_registration.signature",
    )
    timestamp = message.get("timestamp")
    if not isinstance(timestamp, str) or not (timestamp.isascii() and timestamp.isdigit()):
        raise LockError(
            f"cluster lock: {where}.builder_registration.message.timestamp must be a decimal string"
        )
    expected = registration_message(group, fee, int(gas), int(timestamp))
    if message != expected:
        raise LockError(
            f"cluster lock: {where}.builder_registration.message is not over the validator's "
            "pubkey, fee_recipient and gas_limit"
        )
    try:
        item: bls.SignedItem | None = bls.SignedItem(
            group, registration_signing_root(fork_version, message), signature
        )
    except (SigningError, ValueError):
        item = None
    return (fee, int(gas), registration), item  # as written: the lock hash covers it


def _first_unsigned_registration(items: Sequence[tuple[int, bls.SignedItem | None]]) -> int | None:
    """The position in the lock of the first validator whose registration is not its group key's
    signature: every registration in one batch check (`bls.find_invalid`: one multi-pairing that
    shares a final exponentiation, bisected only when it fails). Checked one by one, they were most of
    the time a 10,000-validator lock took to load."""
    bad = [j for j, item in items if item is None]
    checked = [(j, item) for j, item in items if item is not None]
    if checked:
        bad += [checked[p][0] for p in bls.find_invalid([item for _, item in checked])]
    return min(bad, default=None)


def _registration_refused(j: int) -> LockError:
    return LockError(
        f"cluster lock: distributed_validators[{j}].builder_registration.signature is not the "
        "validator's group signature (builder domain over the lock's fork_version)"
    )


def compute_lock_hash(content: Mapping[str, Any]) -> bytes:
    return canonical_hash(_HASH_PREFIX, content)


def identity_public_key(private_key: Ed25519PrivateKey) -> bytes:
    return private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def sign_lock_hash(private_key: Ed25519PrivateKey, lock_hash: bytes) -> bytes:
    return sign_digest(private_key, _SIGNATURE_PREFIX, lock_hash)


def verify_lock_signature(public_key: bytes, lock_hash: bytes, signature: bytes) -> bool:
    return verify_digest(public_key, _SIGNATURE_PREFIX, lock_hash, signature)


def build_lock(
    *,
    name: str,
    network: str,
    fork_version: bytes,
    genesis_validators_root: bytes,
    threshold: int,
    addresses: Sequence[str],
    identity_keys: Sequence[Ed25519PrivateKey],
    distributed_validators: Sequence[DistributedValidator],
) -> dict[str, Any]:
    """A complete lock (JSON) signed by every operator; checked by `parse_lock` before it is returned."""
    operators = [Operator(identity_public_key(k), a) for k, a in zip(identity_keys, addresses, strict=True)]
    content = content_json(
        name=name,
        network=network,
        fork_version=fork_version,
        genesis_validators_root=genesis_validators_root,
        threshold=threshold,
        operators=operators,
        distributed_validators=distributed_validators,
    )
    lock_hash = compute_lock_hash(content)
    return signed_lock(content, [sign_lock_hash(k, lock_hash) for k in identity_keys])


def signed_lock(content: Mapping[str, Any], node_signatures: Sequence[bytes]) -> dict[str, Any]:
    """A lock (JSON) from its content and every operator's signature over its hash (in operator order),
    checked by `parse_lock` before it is returned."""
    lock = {
        **content,
        "lock_hash": _hex(compute_lock_hash(content)),
        "node_signatures": [_hex(s) for s in node_signatures],
    }
    parse_lock(lock)
    return lock


def lock_to_json(lock: ClusterLock) -> dict[str, Any]:
    content = content_json(
        name=lock.name,
        network=lock.network,
        fork_version=lock.fork_version,
        genesis_validators_root=lock.genesis_validators_root,
        threshold=lock.threshold,
        operators=lock.operators,
        distributed_validators=lock.distributed_validators,
    )
    return {
        **content,
        "lock_hash": _hex(lock.lock_hash),
        "node_signatures": [_hex(s) for s in lock.node_signatures],
    }


# ---- loading: every check, each with its own message -------------------------------------------------


_read = Reader(LockError, "cluster lock")
_get = _read.get
_bytes = _read.hexbytes
_duplicates = first_duplicate


def parse_lock(document: object, *, unsafe_threshold_ok: bool = False) -> ClusterLock:
    """The lock a JSON document describes, after every check in the module docstring; LockError otherwise.
    `unsafe_threshold_ok` only for `combine` (getting keys back out of an old cluster whose threshold
    the DV-safety theorem refutes), never to run one."""
    version = _get(document, "version", str, "")
    if version != LOCK_VERSION:
        raise LockError(f"cluster lock: unsupported version {version!r} (expected {LOCK_VERSION})")
    name = _get(document, "name", str, "")
    network = _get(document, "network", str, "")
    fork_version = _bytes(_get(document, "fork_version", str, ""), 4, "fork_version")
    gvr = _bytes(_get(document, "genesis_validators_root", str, ""), 32, "genesis_validators_root")
    threshold = _get(document, "threshold", int, "")
    operators = []
    for i, op in enumerate(_get(document, "operators", list, "")):
        where = f"operators[{i}]"
        key = _bytes(_get(op, "identity_public_key", str, where), 32, f"{where}.identity_public_key")
        address = _read.address(_get(op, "address", str, where), f"{where}.address")
        operators.append(Operator(key, address))
    validators = []
    registrations: list[tuple[int, bls.SignedItem | None]] = []
    for j, v in enumerate(_get(document, "distributed_validators", list, "")):
        where = f"distributed_validators[{j}]"
        group = _bytes(_get(v, "distributed_public_key", str, where), 48, f"{where}.distributed_public_key")
        shares = tuple(
            _bytes(s, 48, f"{where}.public_shares[{i}]")
            for i, s in enumerate(_get(v, "public_shares", list, where))
        )
        checked = _check_registration(j, v, group, fork_version)
        if checked is not None:
            registrations.append((j, checked[1]))
        validators.append(DistributedValidator(group, shares, *(checked[0] if checked else ())))
    if (unsigned := _first_unsigned_registration(registrations)) is not None:
        raise _registration_refused(unsigned)
    lock_hash = _bytes(_get(document, "lock_hash", str, ""), 32, "lock_hash")
    signatures = tuple(
        _bytes(s, 64, f"node_signatures[{i}]")
        for i, s in enumerate(_get(document, "node_signatures", list, ""))
    )

    n = len(operators)
    if n < 3:
        raise LockError(f"cluster lock: a cluster needs at least 3 operators, this lock has {n}")
    refusal = threshold_refusal(n, threshold)
    if refusal is not None and not (unsafe_threshold_ok and n / 2 < threshold <= n):
        raise LockError(f"cluster lock: {refusal}")
    if not validators:
        raise LockError("cluster lock: no distributed_validators")
    for j, v in enumerate(validators):
        if len(v.public_shares) != n:
            raise LockError(
                f"cluster lock: distributed_validators[{j}] has {len(v.public_shares)} public_shares, "
                f"expected {n} (one per operator)"
            )
    if len(signatures) != n:
        raise LockError(f"cluster lock: {len(signatures)} node_signatures for {n} operators")

    content = content_json(
        name=name,
        network=network,
        fork_version=fork_version,
        genesis_validators_root=gvr,
        threshold=threshold,
        operators=operators,
        distributed_validators=validators,
    )
    if compute_lock_hash(content) != lock_hash:
        raise LockError(
            "cluster lock: lock_hash does not match the content: the lock was modified after it was signed"
        )
    for i, (op, signature) in enumerate(zip(operators, signatures, strict=True)):
        if not verify_lock_signature(op.identity_public_key, lock_hash, signature):
            raise LockError(
                f"cluster lock: node_signatures[{i}] is not operator {i}'s signature over lock_hash"
            )

    for what, values in (
        ("identity_public_key", [o.identity_public_key for o in operators]),
        ("address", [o.address for o in operators]),
    ):
        if pair := _duplicates(values):
            raise LockError(
                f"cluster lock: operators[{pair[0]}] and operators[{pair[1]}] have the same {what}"
            )
    if pair := _duplicates([v.distributed_public_key for v in validators]):
        raise LockError(
            f"cluster lock: distributed_validators[{pair[0]}] and [{pair[1]}] have the same distributed_public_key"
        )
    every_key = [
        (v.distributed_public_key, f"distributed_validators[{j}].distributed_public_key")
        for j, v in enumerate(validators)
    ]
    every_key += [
        (share, f"distributed_validators[{j}].public_shares[{i}]")
        for j, v in enumerate(validators)
        for i, share in enumerate(v.public_shares)
    ]
    if pair := _duplicates([key for key, _ in every_key]):
        raise LockError(f"cluster lock: {every_key[pair[1]][1]} repeats the key of {every_key[pair[0]][1]}")
    for key, where in every_key:
        if not bls.key_validate(key):
            raise LockError(f"cluster lock: {where} is not a valid BLS12-381 public key")
    for j, v in enumerate(validators):
        if not bls.public_shares_consistent(v.distributed_public_key, v.public_shares, threshold):
            raise LockError(
                f"cluster lock: distributed_validators[{j}].public_shares do not interpolate to its "
                f"distributed_public_key (threshold {threshold})"
            )
    return ClusterLock(
        name,
        network,
        fork_version,
        gvr,
        threshold,
        tuple(operators),
        tuple(validators),
        lock_hash,
        signatures,
    )
