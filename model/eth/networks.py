"""The public networks covalidator knows by name, and `devnet`.

Decides: each named network's preset, fork schedule (versions and activation epochs, phase0 .. fulu)
and genesis validators root, as published in the networks' own config files (eth-clients/mainnet,
/holesky, /hoodi, /sepolia). These are the defaults of `create-cluster --network` and a fallback; a
running node builds its schedule from its beacon node's `/eth/v1/config/spec` and `/genesis` and
checks them against the cluster lock.

`devnet` is a local chain (minimal preset, e.g. `lodestar dev`): its genesis validators root is only
known once its beacon node has made genesis, so the preset leaves it all-zero ("not pinned") and
`create-cluster --genesis-validators-root` can pin it; its fork epochs come from the beacon node.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from covalidator.model.eth.specs import FAR_FUTURE_EPOCH

ZERO_ROOT: Final = bytes(32)


@dataclass(frozen=True)
class Network:
    name: str
    preset: str
    slots_per_epoch: int
    genesis_validators_root: bytes
    forks: tuple[tuple[str, int, bytes], ...]  # (fork, activation epoch, version), phase0 first

    @property
    def genesis_fork_version(self) -> bytes:
        return self.forks[0][2]


def _forks(versions: str, epochs: tuple[int, ...]) -> tuple[tuple[str, int, bytes], ...]:
    names = ("phase0", "altair", "bellatrix", "capella", "deneb", "electra", "fulu")
    version_list = versions.split()
    assert len(version_list) == len(names) == len(epochs) + 1
    return tuple(zip(names, (0, *epochs), (bytes.fromhex(v) for v in version_list), strict=True))


_FAR = FAR_FUTURE_EPOCH
# name, preset, slots per epoch, genesis validators root, fork versions (phase0 .. fulu), fork epochs
# (altair .. fulu; phase0 at 0)
_TABLE = (
    ("mainnet", "mainnet", 32, "4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95",
     "00000000 01000000 02000000 03000000 04000000 05000000 06000000", (74240, 144896, 194048, 269568, 364032, 411392)),
    ("holesky", "mainnet", 32, "9143aa7c615a7f7115e2b6aac319c03529df8242ae705fba9df39b79c59fa8b1",
     "01017000 02017000 03017000 04017000 05017000 06017000 07017000", (0, 0, 256, 29696, 115968, 165120)),
    ("hoodi", "mainnet", 32, "212f13fc4df078b6cb7db228f1c8307566dcecf900867401a92023d7ba99cb5f",
     "10000910 20000910 30000910 40000910 50000910 60000910 70000910", (0, 0, 0, 0, 2048, 50688)),
    ("sepolia", "mainnet", 32, "d8ea171f3c94aea21ebc42a1ed61052acf3f9209c00e4efbaaddac09ed9b8078",
     "90000069 90000070 90000071 90000072 90000073 90000074 90000075", (50, 100, 56832, 132608, 222464, 272640)),
    ("devnet", "minimal", 8, ZERO_ROOT.hex(),
     "00000001 01000001 02000001 03000001 04000001 05000001 06000001", (_FAR,) * 6),
)  # fmt: skip
NETWORKS: Final = {
    name: Network(name, preset, slots, bytes.fromhex(root), _forks(versions, epochs))
    for name, preset, slots, root, versions, epochs in _TABLE
}


def network(name: str) -> Network:
    if name not in NETWORKS:
        raise ValueError(f"unknown network {name!r}; known: {', '.join(NETWORKS)}")
    return NETWORKS[name]
