"""What a node is, read from disk and from its BN: the node folder, and the model's `NodeConfig`.

`load_node_files` reads what `covalidator create-cluster` wrote: the cluster lock (fully verified),
the node's Ed25519 identity key (which says which operator, hence which share index, this node is),
and the share keystores in `validator_keys/`, each checked to be a share of THIS node for a validator
of the lock by its EIP-2335 `pubkey` field. In middleware mode the keystores are not decrypted: the VC
signs with them, and covalidator never holds a share secret; in signer mode (`--signer-api`) the node
decrypts them itself (runtime/share_keys.py) and the VC holds none. `node_config` builds the model's
configuration from the lock and the BN's spec and genesis, the same way for `run` and `replay`.

Every fault is a `ConfigError` with a one-line message naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from covalidator.model.cluster.config import ChainConfig, Limits, NodeConfig, ValidatorKeys, hex0x
from covalidator.model.cluster.lock import ClusterLock, LockError, identity_public_key
from covalidator.runtime import keys_io

DEFAULT_ROUND_MS = 1_000


class ConfigError(Exception):
    """A configuration the node cannot run with (exit 2, one line)."""


@dataclass(frozen=True)
class NodeFiles:
    lock: ClusterLock
    lock_json: dict[str, Any]
    node_index: int  # 0-based operator position; share index = node_index + 1
    identity_key: Ed25519PrivateKey
    keystores: int  # share keystores found and checked (0: none in the node folder)

    @property
    def share_index(self) -> int:
        return self.node_index + 1


def load_lock(path: Path) -> tuple[ClusterLock, dict[str, Any]]:
    try:
        lock = keys_io.load_lock(path)
        document = keys_io.read_json(path)
    except (LockError, OSError, ValueError) as error:
        raise ConfigError(str(error)) from None
    return lock, document


def load_node_files(lock_path: Path, node_dir: Path) -> NodeFiles:
    if not node_dir.is_dir():
        raise ConfigError(f"{node_dir}: not a folder (the node folder create-cluster wrote)")
    lock, document = load_lock(lock_path)
    key_path = node_dir / keys_io.IDENTITY_FILE
    try:
        key = keys_io.load_identity_key(key_path)
    except FileNotFoundError:
        raise ConfigError(f"{key_path}: missing (the node's identity key)") from None
    except (OSError, ValueError, TypeError) as error:
        raise ConfigError(f"{key_path}: not a usable Ed25519 private key ({error})") from None
    try:
        node_index = lock.node_index_of(identity_public_key(key))
    except KeyError:
        raise ConfigError(f"{key_path} is not the identity key of any operator in {lock_path}") from None
    return NodeFiles(lock, document, node_index, key, check_keystores(lock, node_index, node_dir))


def check_keystores(lock: ClusterLock, node_index: int, node_dir: Path) -> int:
    """How many share keystores `node_dir/validator_keys` holds; ConfigError when one is not a share
    of this node (another node's folder, another cluster's keys)."""
    folder = node_dir / keys_io.KEYS_DIR
    if not folder.is_dir():
        return 0
    mine = {v.public_shares[node_index].hex() for v in lock.distributed_validators}
    others = {
        s.hex(): i
        for v in lock.distributed_validators
        for i, s in enumerate(v.public_shares)
        if i != node_index
    }
    count = 0
    for path in sorted(folder.glob("*.json")):
        try:
            document = keys_io.read_json(path)
        except (OSError, ValueError) as error:
            raise ConfigError(str(error)) from None
        if not isinstance(document, dict) or "crypto" not in document:
            continue
        pubkey = str(document.get("pubkey", "")).lower().removeprefix("0x")
        if not pubkey:
            continue  # EIP-2335 makes the field optional: nothing to check without decrypting
        if pubkey in others:
            raise ConfigError(
                f"{path} holds node{others[pubkey]}'s share, but the identity key is node{node_index}'s"
            )
        if pubkey not in mine:
            raise ConfigError(f"{path} is not a share of any validator in the cluster lock")
        count += 1
    return count


def node_config(
    lock: ClusterLock,
    share_index: int,
    spec: dict[str, Any],
    genesis: dict[str, Any],
    settings: dict[str, Any] | None = None,
) -> NodeConfig:
    """The model's configuration: the lock's validators and threshold, the BN's chain, and the runtime's
    model settings (`round_duration_ms`, `vc_request_wait_ms`, `signs_own_partials`) as the trace
    header records them."""
    settings = settings or {}
    try:
        genesis_time = int(genesis["genesis_time"])
        root = bytes.fromhex(str(genesis["genesis_validators_root"]).removeprefix("0x"))
        chain = ChainConfig.from_spec(spec, genesis_time, root)
    except (KeyError, ValueError, TypeError, AssertionError) as error:
        raise ConfigError(f"the beacon node's spec or genesis is unusable: {error!r}") from None
    warm_up(chain)
    validators = tuple(
        ValidatorKeys(
            hex0x(v.distributed_public_key), tuple(hex0x(s) for s in v.public_shares), v.builder_registration
        )
        for v in lock.distributed_validators
    )
    wait = settings.get("vc_request_wait_ms")
    return NodeConfig(
        share_index=share_index,
        threshold=lock.threshold,
        validators=validators,
        chain=chain,
        round_duration_ms=int(settings.get("round_duration_ms", DEFAULT_ROUND_MS)),
        limits=Limits(vc_request_wait_ms=None if wait is None else int(wait)),
        signs_own_partials=bool(settings.get("signs_own_partials", False)),
    )


def warm_up(chain: ChainConfig) -> None:
    """One signing root now, for the current fork: its consensus-specs module is then imported at start,
    not inside the first duty's step (about a second on a loaded machine: enough to miss slot 0)."""
    import time

    from covalidator.model.eth.signing import Kind, signing_root

    slot = chain.clock.slot_at(int(time.time() * 1000))
    signing_root(chain.schedule, Kind.AGGREGATION_SLOT, {"slot": str(slot)})
