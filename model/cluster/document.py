"""Reading the signed JSON documents of a cluster (the definition, the lock): typed fields, hex of a
fixed length, host:port addresses, repeated values, and the canonical hash both are signed over.

Decides: what "canonical JSON" means for a hash (sorted keys, no whitespace, ASCII), and that every
fault is raised as the document's own error type with a message that starts with the document's name
and names the field.

Must not: know what either document means (their modules decide that).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ADDRESS: Final = re.compile(r"[A-Za-z0-9.\-]+:[0-9]{1,5}|\[[0-9A-Fa-f:.]+\]:[0-9]{1,5}")


def canonical_hash(prefix: bytes, content: Mapping[str, Any]) -> bytes:
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(prefix + canonical.encode("ascii")).digest()


def first_duplicate(values: Sequence[Any]) -> tuple[int, int] | None:
    """The positions of the first value that appears twice, or None."""
    seen: dict[Any, int] = {}
    for i, v in enumerate(values):
        if v in seen:
            return seen[v], i
        seen[v] = i
    return None


class Reader:
    """Field access that raises `error(f"{document}: ...")` naming the field on any fault."""

    def __init__(self, error: type[ValueError], document: str) -> None:
        self.error, self.document = error, document

    def fail(self, message: str) -> ValueError:
        return self.error(f"{self.document}: {message}")

    def get(self, obj: Any, key: str, kind: type, where: str) -> Any:
        if not isinstance(obj, dict):
            raise self.fail(f"{where or 'the document'} is not a JSON object")
        if key not in obj:
            raise self.fail(f"{where + '.' if where else ''}{key} is missing")
        value = obj[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(f"{where + '.' if where else ''}{key} must be a {kind.__name__}")
        return value

    def hexbytes(self, value: Any, length: int, where: str) -> bytes:
        if (
            not isinstance(value, str)
            or not re.fullmatch(r"0x[0-9a-fA-F]*", value)
            or len(value) != 2 + 2 * length
        ):
            raise self.fail(f"{where} must be 0x-hex of {length} bytes, got {str(value)[:20]!r}")
        return bytes.fromhex(value[2:])

    def address(self, value: str, where: str) -> str:
        if not ADDRESS.fullmatch(value):
            raise self.fail(f"{where} must be host:port, got {value!r}")
        return value


def sign_digest(private_key: Ed25519PrivateKey, domain: bytes, digest: bytes) -> bytes:
    """An operator's Ed25519 signature over domain + digest (the domain keeps each use distinct)."""
    return private_key.sign(domain + digest)


def verify_digest(public_key: bytes, domain: bytes, digest: bytes, signature: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, domain + digest)
    except (InvalidSignature, ValueError):
        return False
    return True
