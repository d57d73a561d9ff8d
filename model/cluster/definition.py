"""The cluster definition: what the operators agree on, and each signs, before a DKG makes the keys.

Decides: the definition's JSON format, its `definition_hash`, the operators' signatures over it, and
what loading a definition checks (each fault with its own message). The hash binds everything the
ceremony must not change under anyone's feet: operators (identity keys and addresses, in order: node i
gets share index i + 1), threshold, validator count, network (fork version, genesis validators root),
withdrawal address and credentials type, fee recipient and gas limit, the registrations' timestamp,
the deposit amount, the DKG algorithm, and a fresh random nonce (so a rerun is a new ceremony whose
messages cannot be confused with the last one's).

    {"version": "covalidator/definition/v1", "name": str, "network": str,
     "fork_version": "0x<4>", "genesis_validators_root": "0x<32>",
     "threshold": M, "validators": V,
     "operators": [{"identity_public_key": "0x<32-byte Ed25519 key>", "address": "host:port"}, ...],
     "withdrawal_address": "0x<20>", "compounding": bool, "deposit_amount_gwei": "<decimal>",
     "fee_recipient": "0x<20>", "gas_limit": "<decimal>", "registration_timestamp": "<decimal>",
     "dkg_algorithm": "frost", "nonce": "0x<32>",
     "definition_hash": "0x<32>",
     "operator_signatures": ["0x<64-byte Ed25519 signature>" or null, ...]}   # position i = operator i

`definition_hash` is sha256(b"covalidator/definition/v1\\n" + canonical JSON of everything but
definition_hash and operator_signatures). Operator i signs b"covalidator/definition-hash\\n" + hash.
The same checks as a lock's apply to what both hold: N >= 3 operators, a threshold the DV-safety
theorem proves safe for N, no repeated identity key or address.

Must not: read or write files, or draw the nonce (the runtime does both).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from covalidator.model.cluster.document import (
    Reader,
    canonical_hash,
    first_duplicate,
    sign_digest,
    verify_digest,
)
from covalidator.model.cluster.lock import Operator, identity_public_key
from covalidator.model.qbft.rules import threshold_refusal

DEFINITION_VERSION: Final = "covalidator/definition/v1"
DKG_ALGORITHMS: Final = ("frost",)
_HASH_PREFIX: Final = b"covalidator/definition/v1\n"
_SIGNATURE_PREFIX: Final = b"covalidator/definition-hash\n"
MAX_VALIDATORS: Final = 10_000
# a DKG's commit message carries M G1 points and a proof per validator, ~ V (101 M + 220) bytes of JSON;
# the ceremony's transport takes frames of up to 64 MiB
MAX_COMMIT_BYTES: Final = 48 * 2**20


class DefinitionError(ValueError):
    """A cluster definition that must not be used (the message names the fault)."""


@dataclass(frozen=True)
class ClusterDefinition:
    name: str
    network: str
    fork_version: bytes
    genesis_validators_root: bytes
    threshold: int
    validators: int
    operators: tuple[Operator, ...]
    withdrawal_address: str
    compounding: bool
    deposit_amount_gwei: int
    fee_recipient: str
    gas_limit: int
    registration_timestamp: int
    dkg_algorithm: str
    nonce: bytes
    definition_hash: bytes
    operator_signatures: tuple[bytes | None, ...]

    @property
    def nodes(self) -> int:
        return len(self.operators)

    def node_index_of(self, identity_public_key: bytes) -> int:
        for i, op in enumerate(self.operators):
            if op.identity_public_key == identity_public_key:
                return i
        raise KeyError("not an operator of this cluster definition")

    def unsigned_by(self) -> list[int]:
        return [i for i, s in enumerate(self.operator_signatures) if s is None]


def _content(d: ClusterDefinition | dict[str, Any]) -> dict[str, Any]:
    if isinstance(d, dict):
        return {k: v for k, v in d.items() if k not in ("definition_hash", "operator_signatures")}
    return {
        "version": DEFINITION_VERSION,
        "name": d.name,
        "network": d.network,
        "fork_version": "0x" + d.fork_version.hex(),
        "genesis_validators_root": "0x" + d.genesis_validators_root.hex(),
        "threshold": d.threshold,
        "validators": d.validators,
        "operators": [
            {"identity_public_key": "0x" + o.identity_public_key.hex(), "address": o.address}
            for o in d.operators
        ],
        "withdrawal_address": d.withdrawal_address,
        "compounding": d.compounding,
        "deposit_amount_gwei": str(d.deposit_amount_gwei),
        "fee_recipient": d.fee_recipient,
        "gas_limit": str(d.gas_limit),
        "registration_timestamp": str(d.registration_timestamp),
        "dkg_algorithm": d.dkg_algorithm,
        "nonce": "0x" + d.nonce.hex(),
    }


def compute_definition_hash(content: dict[str, Any]) -> bytes:
    return canonical_hash(_HASH_PREFIX, content)


def to_json(d: ClusterDefinition) -> dict[str, Any]:
    return {
        **_content(d),
        "definition_hash": "0x" + d.definition_hash.hex(),
        "operator_signatures": [None if s is None else "0x" + s.hex() for s in d.operator_signatures],
    }


def build_definition(
    *,
    name: str,
    network: str,
    fork_version: bytes,
    genesis_validators_root: bytes,
    threshold: int,
    validators: int,
    operators: Sequence[Operator],
    withdrawal_address: str,
    compounding: bool,
    deposit_amount_gwei: int,
    fee_recipient: str,
    gas_limit: int,
    registration_timestamp: int,
    nonce: bytes,
    dkg_algorithm: str = "frost",
) -> dict[str, Any]:
    """A new, unsigned definition (JSON), checked by `parse_definition` before it is returned."""
    unsigned = ClusterDefinition(
        name,
        network,
        fork_version,
        genesis_validators_root,
        threshold,
        validators,
        tuple(operators),
        withdrawal_address.lower(),
        compounding,
        deposit_amount_gwei,
        fee_recipient.lower(),
        gas_limit,
        registration_timestamp,
        dkg_algorithm,
        nonce,
        b"",
        (None,) * len(operators),
    )
    document = {
        **_content(unsigned),
        "definition_hash": "0x" + compute_definition_hash(_content(unsigned)).hex(),
        "operator_signatures": [None] * len(operators),
    }
    parse_definition(document)
    return document


def sign_definition(document: dict[str, Any], private_key: Ed25519PrivateKey) -> dict[str, Any]:
    """`document` with the signature of the operator whose identity key this is added (checked)."""
    definition = parse_definition(document)
    try:
        index = definition.node_index_of(identity_public_key(private_key))
    except KeyError:
        raise DefinitionError(
            "cluster definition: this identity key is not one of its operators' keys"
        ) from None
    signatures = list(document["operator_signatures"])
    signatures[index] = "0x" + sign_digest(private_key, _SIGNATURE_PREFIX, definition.definition_hash).hex()
    signed = {**document, "operator_signatures": signatures}
    parse_definition(signed)
    return signed


_read = Reader(DefinitionError, "cluster definition")


def _decimal(document: Any, key: str, bound: int = 2**64) -> int:
    text = _read.get(document, key, str, "")
    if not (text.isascii() and text.isdigit()) or int(text) >= bound:
        raise _read.fail(f"{key} must be a decimal uint64 string")
    return int(text)


def _execution_address(document: Any, key: str) -> str:
    value = _read.get(document, key, str, "")
    _read.hexbytes(value, 20, key)
    if value != value.lower():
        raise _read.fail(f"{key} must be lower-case hex")
    return str(value)


def parse_definition(document: object, *, fully_signed: bool = False) -> ClusterDefinition:
    """The definition a JSON document describes, after every check; DefinitionError otherwise.
    `fully_signed`: also require every operator's signature (what a DKG starts from)."""
    version = _read.get(document, "version", str, "")
    if version != DEFINITION_VERSION:
        raise _read.fail(f"unsupported version {version!r} (expected {DEFINITION_VERSION})")
    assert isinstance(document, dict)
    operators = []
    for i, op in enumerate(_read.get(document, "operators", list, "")):
        where = f"operators[{i}]"
        key = _read.hexbytes(
            _read.get(op, "identity_public_key", str, where), 32, f"{where}.identity_public_key"
        )
        operators.append(
            Operator(key, _read.address(_read.get(op, "address", str, where), f"{where}.address"))
        )
    algorithm = _read.get(document, "dkg_algorithm", str, "")
    if algorithm not in DKG_ALGORITHMS:
        raise _read.fail(f"dkg_algorithm {algorithm!r} is not one of {', '.join(DKG_ALGORITHMS)}")
    raw_signatures = _read.get(document, "operator_signatures", list, "")
    signatures = tuple(
        None if s is None else _read.hexbytes(s, 64, f"operator_signatures[{i}]")
        for i, s in enumerate(raw_signatures)
    )
    compounding = _read.get(document, "compounding", bool, "")
    definition = ClusterDefinition(
        name=_read.get(document, "name", str, ""),
        network=_read.get(document, "network", str, ""),
        fork_version=_read.hexbytes(_read.get(document, "fork_version", str, ""), 4, "fork_version"),
        genesis_validators_root=_read.hexbytes(
            _read.get(document, "genesis_validators_root", str, ""), 32, "genesis_validators_root"
        ),
        threshold=_read.get(document, "threshold", int, ""),
        validators=_read.get(document, "validators", int, ""),
        operators=tuple(operators),
        withdrawal_address=_execution_address(document, "withdrawal_address"),
        compounding=compounding,
        deposit_amount_gwei=_decimal(document, "deposit_amount_gwei"),
        fee_recipient=_execution_address(document, "fee_recipient"),
        gas_limit=_decimal(document, "gas_limit"),
        registration_timestamp=_decimal(document, "registration_timestamp"),
        dkg_algorithm=algorithm,
        nonce=_read.hexbytes(_read.get(document, "nonce", str, ""), 32, "nonce"),
        definition_hash=_read.hexbytes(
            _read.get(document, "definition_hash", str, ""), 32, "definition_hash"
        ),
        operator_signatures=signatures,
    )
    n = definition.nodes
    if n < 3:
        raise _read.fail(f"a cluster needs at least 3 operators, this definition has {n}")
    refusal = threshold_refusal(n, definition.threshold)
    if refusal is not None:
        raise _read.fail(refusal)
    if not 1 <= definition.validators <= MAX_VALIDATORS:
        raise _read.fail(f"validators must be 1..{MAX_VALIDATORS}, got {definition.validators}")
    if not definition.gas_limit > 0:
        raise _read.fail("gas_limit must be positive")
    if definition.deposit_amount_gwei < 10**9:
        raise _read.fail("deposit_amount_gwei must be at least 1 ETH (the deposit contract's minimum)")
    for what, values in (
        ("identity_public_key", [o.identity_public_key for o in operators]),
        ("address", [o.address for o in operators]),
    ):
        if pair := first_duplicate(values):
            raise _read.fail(f"operators[{pair[0]}] and operators[{pair[1]}] have the same {what}")
    if len(signatures) != n:
        raise _read.fail(f"{len(signatures)} operator_signatures for {n} operators")
    if compute_definition_hash(_content(definition)) != definition.definition_hash:
        raise _read.fail("definition_hash does not match the content: it was changed after it was made")
    if _content(dict(document)) != _content(definition):
        raise _read.fail("a field is not in its canonical form (or an unknown field is present)")
    for i, (op, signature) in enumerate(zip(operators, signatures, strict=True)):
        if signature is None:
            continue
        if not verify_digest(
            op.identity_public_key, _SIGNATURE_PREFIX, definition.definition_hash, signature
        ):
            raise _read.fail(f"operator_signatures[{i}] is not operator {i}'s signature over definition_hash")
    if fully_signed and (missing := definition.unsigned_by()):
        raise _read.fail(
            f"not signed by operator(s) {', '.join(map(str, missing))} yet (covalidator definition sign)"
        )
    return definition
