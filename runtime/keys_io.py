"""Key material on disk: keystores with their password files, peer identity keys, the cluster lock.

Does the file I/O and draws the randomness (salts, IVs, UUIDs, passwords, identity keys) that the
pure model modules (`keystore`, `cluster_lock`) take as arguments. Files that hold secrets (passwords,
identity keys) are written 0600; every file is written to a temporary name, fsync'ed and renamed, so
a crash never leaves half a key behind.

Layout of a node folder (as existing DV tooling writes it):
    cluster-lock.json            identical on every node
    identity-key.pem             the node's Ed25519 peer identity key (PKCS#8 PEM, unencrypted)
    validator_keys/keystore-{j}.json + keystore-{j}.txt    share of validator j and its password
    deposit-data.json            the validators' deposits, launchpad format (when a withdrawal address is set)
"""

from __future__ import annotations

import json
import os
import re
import secrets
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from covalidator.model.cluster.lock import ClusterLock, LockError, parse_lock
from covalidator.model.crypto import keystore

LOCK_FILE = "cluster-lock.json"
IDENTITY_FILE = "identity-key.pem"
KEYS_DIR = "validator_keys"
DEPOSIT_FILE = "deposit-data.json"


def write_file(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Atomically write `data` to `path` with permissions `mode` (temp file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_json(path: Path, document: Any, mode: int = 0o644) -> None:
    write_file(path, (json.dumps(document, indent=2) + "\n").encode(), mode)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None


# ---- identity keys -------------------------------------------------------------------------------------


def new_identity_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def save_identity_key(path: Path, key: Ed25519PrivateKey) -> None:
    write_file(path, key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()), 0o600)


def load_identity_key(path: Path) -> Ed25519PrivateKey:
    key = load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 private key")
    return key


# ---- the cluster lock ----------------------------------------------------------------------------------


def load_lock(path: Path, *, unsafe_threshold_ok: bool = False) -> ClusterLock:
    """Read and fully verify a cluster lock; LockError (naming the file) on any fault
    (`unsafe_threshold_ok`: `combine` only, see `parse_lock`)."""
    try:
        document = read_json(path)
    except (OSError, ValueError) as error:
        raise LockError(f"{path}: {error}") from None
    try:
        return parse_lock(document, unsafe_threshold_ok=unsafe_threshold_ok)
    except LockError as error:
        raise LockError(f"{path}: {error}") from None


# ---- keystores -----------------------------------------------------------------------------------------


def new_password() -> str:
    return secrets.token_hex(16)


def encrypt_keystore(
    secret: bytes, password: str, kdf: keystore.Scrypt | keystore.Pbkdf2, path: str = ""
) -> dict[str, Any]:
    document: dict[str, Any] = keystore.encrypt(
        secret,
        password,
        salt=secrets.token_bytes(32),
        iv=secrets.token_bytes(16),
        uuid=str(uuid.uuid4()),
        kdf=kdf,
        path=path,
    )
    return document


def encrypt_many(
    jobs: Iterable[tuple[bytes, str]], kdf: keystore.Scrypt | keystore.Pbkdf2
) -> list[dict[str, Any]]:
    """Encrypt (secret, password) pairs in parallel: the KDFs release the GIL, so threads use every core."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(pool.map(lambda job: encrypt_keystore(job[0], job[1], kdf), jobs))


def write_keystore(directory: Path, index: int, document: dict[str, Any], password: str) -> None:
    write_json(directory / f"keystore-{index}.json", document, 0o600)
    write_file(directory / f"keystore-{index}.txt", password.encode(), 0o600)


@dataclass(frozen=True)
class KeystoreFile:
    path: Path
    document: dict[str, Any]
    password: str


def _natural(path: Path) -> list[object]:
    return [
        int(part) if part.isascii() and part.isdigit() else part for part in re.split(r"(\d+)", path.name)
    ]


def read_keystores(directory: Path) -> list[KeystoreFile]:
    """Every EIP-2335 keystore (*.json) of a folder, in natural file-name order, with its password:
    from the `.txt` file of the same name (keystore-0.json -> keystore-0.txt), else from one
    `password.txt` in the folder (the layout of staking-deposit-cli outputs)."""
    if not directory.is_dir():
        raise ValueError(f"{directory}: not a folder")
    files = sorted((p for p in directory.glob("*.json") if not p.name.startswith(".")), key=_natural)
    out = []
    shared = directory / "password.txt"
    for path in files:
        document = read_json(path)
        if not isinstance(document, dict) or "crypto" not in document:
            continue  # deposit data and other JSON files beside the keystores
        own = path.with_suffix(".txt")
        source = own if own.exists() else shared
        if not source.exists():
            raise ValueError(f"{path}: no password file ({own.name} or password.txt)")
        out.append(KeystoreFile(path, document, source.read_text().rstrip("\r\n")))
    if not out:
        raise ValueError(f"{directory}: no EIP-2335 keystores (*.json) found")
    return out


def decrypt_keystore_file(entry: KeystoreFile) -> bytes:
    try:
        secret: bytes = keystore.decrypt(entry.document, entry.password)
        return secret
    except keystore.KeystoreError as error:
        raise keystore.KeystoreError(f"{entry.path}: {error}") from None
