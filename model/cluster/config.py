"""What one co-validator knows that never changes while it runs: the cluster and the chain.

Decides: how a node names validators (the group pubkey, `0x` lower-case hex, as the Beacon API does),
shares (share index 1..N: node i holds share i + 1) and the chain constants the duty rules use.
Holds no state and reads nothing; the runtime builds it from the cluster lock and the BN's spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from covalidator.model.clock import SlotClock
from covalidator.model.eth.signing import ForkSchedule
from covalidator.model.node.guards import GUARDS, Guards
from covalidator.model.qbft.rules import threshold_refusal

Pubkey = str  # "0x" + 96 lower-case hex digits


def hex0x(data: bytes) -> str:
    return "0x" + data.hex()


def unhex(text: str) -> bytes:
    return bytes.fromhex(text[2:] if text.startswith(("0x", "0X")) else text)


@dataclass(frozen=True)
class ChainConfig:
    clock: SlotClock
    schedule: ForkSchedule
    target_aggregators_per_committee: int = 16
    sync_committee_size: int = 512
    sync_committee_subnet_count: int = 4
    target_aggregators_per_sync_subcommittee: int = 16
    epochs_per_sync_committee_period: int = 256

    @classmethod
    def from_spec(
        cls, spec: dict[str, Any], genesis_time_s: int, genesis_validators_root: bytes
    ) -> ChainConfig:
        """From a BN's `/eth/v1/config/spec` data (decimal strings) and `/eth/v1/beacon/genesis`."""

        def number(key: str, default: int) -> int:
            return int(spec.get(key, default))

        return cls(
            clock=SlotClock(
                genesis_time_s * 1000, number("SECONDS_PER_SLOT", 12) * 1000, number("SLOTS_PER_EPOCH", 32)
            ),
            schedule=ForkSchedule.from_spec_config(spec, genesis_validators_root),
            target_aggregators_per_committee=number("TARGET_AGGREGATORS_PER_COMMITTEE", 16),
            sync_committee_size=number("SYNC_COMMITTEE_SIZE", 512),
            sync_committee_subnet_count=number("SYNC_COMMITTEE_SUBNET_COUNT", 4),
            target_aggregators_per_sync_subcommittee=number("TARGET_AGGREGATORS_PER_SYNC_SUBCOMMITTEE", 16),
            epochs_per_sync_committee_period=number("EPOCHS_PER_SYNC_COMMITTEE_PERIOD", 256),
        )

    def fork_name(self, slot: int) -> str:
        return self.schedule.fork_at_epoch(self.clock.epoch_of(slot)).name

    def sync_period(self, epoch: int) -> int:
        return epoch // self.epochs_per_sync_committee_period


@dataclass(frozen=True)
class ValidatorKeys:
    group: Pubkey
    shares: tuple[Pubkey, ...]  # position i: share index i + 1
    # the lock's SignedValidatorRegistrationV1 JSON ({"message": {...}, "signature"}), if it has one
    registration: Any = None

    @cached_property
    def share_bytes(self) -> dict[int, bytes]:
        """share index -> that share's pubkey, decoded once (combining reads them per duty)."""
        return {i + 1: unhex(share) for i, share in enumerate(self.shares)}


@dataclass(frozen=True)
class Limits:
    """Bounds on what the node keeps (TigerBeetle-style: every queue has a bound)."""

    held_requests: int = 4096  # VC requests parked until their duty is decided
    buffered_peer_messages: int = 32  # per sender and duty, before this node joins its consensus
    buffered_peer_bytes: int = 64 * 2**20  # per sender, the value bodies of those, over all duties
    duties: int = 4096  # live duty records
    vc_request_wait_ms: int | None = None  # how long a VC request may hang (default: its duty's deadline)
    sync_roots: int = 3  # block roots one sender's sync committee message partials may cover per slot
    pool_messages: int = 2  # exits / registrations per validator and kind one operator may have open
    pool_items: int = 1024  # partials over exits and registrations in one peer message


@dataclass(frozen=True)
class NodeConfig:
    share_index: int  # this node's share index, 1..n
    threshold: int
    validators: tuple[ValidatorKeys, ...]
    chain: ChainConfig
    round_duration_ms: int = 1_000
    limits: Limits = field(default_factory=Limits)
    guards: Guards = GUARDS  # the safety guards the node runs (replaced only to plant a bug)
    # signer mode: the node holds its share keys, serves the Remote Signing API, and signs its own
    # partial as soon as a value is decided and persisted (or a selection / RANDAO duty is known)
    signs_own_partials: bool = False

    def __post_init__(self) -> None:
        n = self.n
        assert 1 <= self.share_index <= n, "share index out of range"
        refusal = threshold_refusal(n, self.threshold)
        assert refusal is None, refusal
        assert all(len(v.shares) == n for v in self.validators), "one share per node per validator"

    @property
    def n(self) -> int:
        return len(self.validators[0].shares) if self.validators else 1

    @cached_property
    def by_group(self) -> dict[Pubkey, ValidatorKeys]:
        return {v.group: v for v in self.validators}

    @cached_property
    def group_of_my_share(self) -> dict[Pubkey, Pubkey]:
        return {v.shares[self.share_index - 1]: v.group for v in self.validators}

    def share_pubkey(self, group: Pubkey, share_index: int) -> Pubkey:
        return self.by_group[group].shares[share_index - 1]

    def my_share(self, group: Pubkey) -> Pubkey:
        return self.share_pubkey(group, self.share_index)
