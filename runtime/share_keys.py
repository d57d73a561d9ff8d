"""Signer mode's key material: this node's share secrets, decrypted from its share keystores.

In signer mode the validator client holds no key; the node signs its own partials, so it must hold
its shares. `load_share_secrets` decrypts every keystore in `NODE_DIR/validator_keys` (EIP-2335, each
with its password file, as create-cluster writes them) and checks each secret: its public key must be
THIS node's share of a validator in the lock, and every validator of the lock must have one. Every
fault is a `ConfigError` naming the file. The secrets stay in this process's memory (never in the
model, the trace or a log); `ShareSigner` signs with them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from covalidator.model.cluster.config import hex0x, unhex
from covalidator.model.cluster.lock import ClusterLock
from covalidator.model.crypto import bls, keystore
from covalidator.model.node.events import ShareSigned, SharesSigned, ShareToSign
from covalidator.runtime import keys_io
from covalidator.runtime.node_setup import ConfigError


def load_share_secrets(lock: ClusterLock, node_index: int, node_dir: Path) -> dict[str, int]:
    """group pubkey -> this node's share secret, for every validator of the lock."""
    folder = node_dir / keys_io.KEYS_DIR
    try:
        entries = keys_io.read_keystores(folder)
    except (OSError, ValueError) as error:
        raise ConfigError(f"signer mode needs this node's share keystores: {error}") from None
    group_of_share = {
        hex0x(v.public_shares[node_index]): hex0x(v.distributed_public_key)
        for v in lock.distributed_validators
    }

    def decrypt(entry: keys_io.KeystoreFile) -> tuple[Path, bytes]:
        try:
            return entry.path, keys_io.decrypt_keystore_file(entry)
        except keystore.KeystoreError as error:
            raise ConfigError(str(error)) from None

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # the KDFs release the GIL
        decrypted = list(pool.map(decrypt, entries))
    secrets: dict[str, int] = {}
    for path, raw in decrypted:
        try:
            secret = bls.secret_from_bytes(raw)
        except bls.BlsError as error:
            raise ConfigError(f"{path}: {error}") from None
        group = group_of_share.get(hex0x(bls.sk_to_pk(secret)))
        if group is None:
            raise ConfigError(f"{path} is not this node's share of any validator in the lock")
        secrets[group] = secret
    missing = sorted(set(group_of_share.values()) - set(secrets))
    if missing:
        raise ConfigError(
            f"{folder}: no share keystore for {len(missing)} validator(s) of the lock, e.g. {missing[0]}"
        )
    return secrets


class ShareSigner:
    """Signs what the model's SignWithShare asks, with this node's share of each item's validator."""

    def __init__(self, secrets: dict[str, int]) -> None:
        self._secrets = secrets

    def sign(self, items: Sequence[ShareToSign]) -> SharesSigned:
        signed = []
        for item in items:
            secret = self._secrets.get(item.key.split("/", 1)[0])
            if secret is None:
                continue  # not a validator of this node (the model never asks for one)
            signed.append(ShareSigned(item, hex0x(bls.sign(secret, unhex(item.signing_root)))))
        return SharesSigned(tuple(signed))
