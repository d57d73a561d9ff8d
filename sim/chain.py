"""A simulated beacon chain for one cluster: what each co-validator's beacon node says, and the judge.

Decides, deterministically from a seed, everything the chain knows: the validators (the cluster's
`validators` at indices 0..V-1 among `total` validators, interop keys), the duties (one attester
duty per validator per epoch, in shuffled committees sized from the active set as the spec does,
`committee_size` being the target committee size; proposers, many of them
cluster validators; a small sync committee), when each node's beacon node sees each block (late
blocks: a node's BN may still show the parent as head at 1/3 of the slot), reorgs (the block a
duty set depends on is replaced mid-epoch: the dependent root changes, duties must be re-fetched),
and the Beacon-API data a BN serves (attestation data, blocks built from the consensus specs' own
containers, aggregate attestations and sync contributions from what was submitted).

It is the JUDGE of a cluster simulation: every submitted object's signature is verified with real
BLS against the validator's GROUP pubkey (over `signing.signing_root`; a block's RANDAO reveal too,
an aggregate's or contribution's selection proof too), every valid signed message is recorded per
validator, and any slashable pair (`slashing.is_slashable_attestation_pair` /
`is_slashable_block_pair`) or invalid submission is reported.

Time is the simulation's virtual milliseconds. Nothing here draws from a shared random stream: each
fact is a hash of (seed, what it is about), so the answer does not depend on who asks first.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import random
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from covalidator.model.clock import SlotClock
from covalidator.model.cluster.config import ChainConfig, ValidatorKeys, hex0x, unhex
from covalidator.model.crypto import bls
from covalidator.model.duty import DutyId, DutyKind
from covalidator.model.eth import ssz_json
from covalidator.model.eth.beacon_data import bitlist_positions, is_aggregator, is_sync_committee_aggregator
from covalidator.model.eth.interop import interop_secret_key
from covalidator.model.eth.signing import Fork, ForkSchedule, Kind, signing_root
from covalidator.model.eth.specs import spec
from covalidator.model.eth.vc_flow import AttesterDuty
from covalidator.model.node.events import SubmissionKind, ValidatorInfo
from covalidator.model.slashing.rules import is_slashable_attestation_pair, is_slashable_block_pair


@dataclass(frozen=True)
class Preset:
    """The consensus specs' preset values the simulated chain uses (presets/{minimal,mainnet}/*.yaml)."""

    name: str
    slots_per_epoch: int
    sync_committee_size: int
    epochs_per_sync_committee_period: int
    max_committees_per_slot: int
    sync_committee_subnet_count: int = 4
    target_aggregators_per_committee: int = 16
    target_aggregators_per_sync_subcommittee: int = 16

    @property
    def sync_subcommittee_size(self) -> int:
        return self.sync_committee_size // self.sync_committee_subnet_count


MINIMAL = Preset(
    "minimal",
    slots_per_epoch=8,
    sync_committee_size=32,
    epochs_per_sync_committee_period=8,
    max_committees_per_slot=4,
)
MAINNET = Preset(
    "mainnet",
    slots_per_epoch=32,
    sync_committee_size=512,
    epochs_per_sync_committee_period=256,
    max_committees_per_slot=64,
)
PRESETS = {p.name: p for p in (MINIMAL, MAINNET)}

# the minimal preset's values, by the specs' names (the default chain's)
PRESET = MINIMAL.name
FORK = "altair"
SLOTS_PER_EPOCH = MINIMAL.slots_per_epoch
SYNC_COMMITTEE_SIZE = MINIMAL.sync_committee_size
SYNC_COMMITTEE_SUBNET_COUNT = MINIMAL.sync_committee_subnet_count
SYNC_SUBCOMMITTEE_SIZE = MINIMAL.sync_subcommittee_size
EPOCHS_PER_SYNC_COMMITTEE_PERIOD = MINIMAL.epochs_per_sync_committee_period
TARGET_AGGREGATORS_PER_COMMITTEE = MINIMAL.target_aggregators_per_committee
MAX_COMMITTEES_PER_SLOT = MINIMAL.max_committees_per_slot
TARGET_AGGREGATORS_PER_SYNC_SUBCOMMITTEE = MINIMAL.target_aggregators_per_sync_subcommittee
ATTESTATION_ROOT_MEMO = 4096  # distinct AttestationData whose roots the judge remembers
GENESIS_FORK_VERSION = bytes.fromhex("00000001")
ALTAIR_FORK_VERSION = bytes.fromhex("01000001")
BELLATRIX_FORK_VERSION = bytes.fromhex("02000001")  # the devnet network's
FORKS_WITH_PAYLOADS = ("bellatrix",)  # `ChainParams.fork`: the builder flow needs execution payloads
ZERO_ROOT = "0x" + "00" * 32
G2_POINT_AT_INFINITY = "0x" + "c0" + "00" * 95

BLOCK_ARRIVAL_MS = (300, 900)  # when a node's BN sees a slot's block, after the slot starts
LATE_ARRIVAL_MS = (2_400, 3_600)  # ... when it is late (after 1/3 of a 6 s slot)


def _blinded_block_type(fork: str, preset: str) -> Any:
    """The builder-specs' BlindedBeaconBlock of the fork (derived from the specs' own types)."""
    from covalidator.model.eth.signing import KINDS

    return KINDS[Kind.BLINDED_BLOCK].container(spec(fork, preset), preset)


def draw(*parts: object) -> float:
    """A number in [0, 1) named by `parts` (the same parts, the same number, in any order of asking)."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _hash_hex(*parts: object) -> str:
    return "0x" + hashlib.sha256("/".join(str(p) for p in parts).encode()).hexdigest()


@dataclass(frozen=True)
class ChainParams:
    validators: int = 64  # the cluster's validators: indices 0..V-1
    nodes: int = 4  # co-validators (N): how many shares each key is split into
    threshold: int = 3  # M
    committee_size: int = 64  # TARGET_COMMITTEE_SIZE: committees are sized from the active set around it
    sync_members: int = 4  # cluster validators in the sync committee (each holds one position)
    proposer_share: float = 0.5  # chance that a slot's proposer is a cluster validator
    late_block_rate: float = 0.05  # chance, per (node, slot), that the node's BN sees the block late
    reorg_rate: float = 0.25  # chance, per epoch >= 1, of a reorg that changes the dependent root
    slot_ms: int = 6_000
    genesis_ms: int = 6_000  # the nodes start at 0: one slot to fetch duties before genesis
    seed: int = 0
    fork: str = FORK  # the fork from genesis: altair (no payloads) or bellatrix (payloads, builder flow)
    # the cluster validators' secret keys; empty: the interop keys 0..V-1. The chain needs them only
    # to know in advance which validators must aggregate (a DKG-made cluster's, from `combine`)
    secret_keys: tuple[int, ...] = ()
    preset: Preset = MINIMAL

    def __post_init__(self) -> None:
        assert self.fork in (FORK, *FORKS_WITH_PAYLOADS), f"unsupported devnet fork {self.fork}"
        assert self.validators >= 1 and self.committee_size >= 1
        assert 0 <= self.sync_members <= min(self.validators, self.preset.sync_committee_size)
        assert self.nodes // 2 < self.threshold <= self.nodes
        assert not self.secret_keys or len(self.secret_keys) == self.validators

    @property
    def committees_per_slot(self) -> int:
        """The spec's get_committee_count_per_slot over the `total` active validators, with
        `committee_size` as TARGET_COMMITTEE_SIZE."""
        return max(
            1,
            min(
                self.preset.max_committees_per_slot,
                self.total // self.preset.slots_per_epoch // self.committee_size,
            ),
        )

    @property
    def total(self) -> int:
        """Every validator of the chain: the cluster's, and others so that a small cluster still sits in
        full committees (at least one committee of the target size per slot)."""
        return max(self.validators, self.preset.slots_per_epoch * self.committee_size)

    def committee_start(self, committee: int) -> int:
        """Where committee number `committee` of an epoch (slot offset * committees per slot + index)
        begins in the epoch's shuffled order: the spec's compute_committee slices the active set into
        SLOTS_PER_EPOCH * committees_per_slot nearly equal parts (sizes differ by at most one)."""
        return self.total * committee // (self.preset.slots_per_epoch * self.committees_per_slot)

    def committee_length(self, slot: int, committee_index: int) -> int:
        committee = slot % self.preset.slots_per_epoch * self.committees_per_slot + committee_index
        return self.committee_start(committee + 1) - self.committee_start(committee)


def attester_assignment(
    p: ChainParams, epoch: int, dependent_root: str, first_slot: int
) -> dict[int, AttesterDuty]:
    """Cluster validator index -> its attester duty in `epoch`: the `total` validators shuffled by
    (seed, epoch, dependent root), then cut into the epoch's committees as the spec's compute_committee
    cuts the shuffled active set (`ChainParams.committee_start`)."""
    order = list(range(p.total))
    random.Random(f"shuffle/{p.seed}/{epoch}/{dependent_root}").shuffle(order)
    per_slot = p.committees_per_slot
    starts = [p.committee_start(c) for c in range(p.preset.slots_per_epoch * per_slot + 1)]
    duties = {}
    for position, index in enumerate(order):
        if index >= p.validators:
            continue
        committee = bisect.bisect_right(starts, position) - 1
        slot_offset, committee_index = divmod(committee, per_slot)
        duties[index] = AttesterDuty(
            index,
            first_slot + slot_offset,
            committee_index,
            starts[committee + 1] - starts[committee],
            per_slot,
            position - starts[committee],
        )
    return duties


@dataclass(frozen=True)
class Reorg:
    slot: int  # the block whose arrival carries the reorg
    replaced: int  # the slot whose block is replaced (the last slot of the previous epoch)


@dataclass
class Violation:
    at_ms: int
    node: int
    what: str


@dataclass
class Judge:
    """What the chain saw: every valid signed message per validator, pairs, invalid submissions."""

    attestations: dict[int, list[tuple[int, int, bytes]]] = field(default_factory=dict)
    blocks: dict[int, list[tuple[int, bytes]]] = field(default_factory=dict)
    slashable_pairs: list[str] = field(default_factory=list)
    invalid: list[Violation] = field(default_factory=list)
    done: set[tuple[DutyId, str]] = field(default_factory=set)  # (duty, validator key) on chain
    done_at: dict[tuple[DutyId, str], int] = field(default_factory=dict)  # ... -> first arrival (ms)
    submissions: int = 0
    verified: dict[tuple[str, bytes, str], bool] = field(default_factory=dict)
    payments: dict[int, tuple[str, bool]] = field(
        default_factory=dict
    )  # slot -> (fee recipient, by a builder)


class SimChain:
    """The chain, the beacon nodes' views of it, and the judge."""

    def __init__(self, params: ChainParams, epochs: int) -> None:
        self.params = params
        self.epochs = epochs
        p = params
        self.preset = p.preset
        self.clock = SlotClock(p.genesis_ms, p.slot_ms, p.preset.slots_per_epoch)
        gvr = bytes.fromhex(_hash_hex("genesis_validators_root", p.seed)[2:])
        forks = [Fork("phase0", 0, GENESIS_FORK_VERSION), Fork(FORK, 0, ALTAIR_FORK_VERSION)]
        if p.fork == "bellatrix":
            forks.append(Fork("bellatrix", 0, BELLATRIX_FORK_VERSION))
        self.fork = p.fork
        self.schedule = ForkSchedule(
            tuple(forks),
            gvr,
            p.preset.name,
            p.preset.slots_per_epoch,
        )
        self.config = ChainConfig(
            clock=self.clock,
            schedule=self.schedule,
            target_aggregators_per_committee=p.preset.target_aggregators_per_committee,
            sync_committee_size=p.preset.sync_committee_size,
            sync_committee_subnet_count=p.preset.sync_committee_subnet_count,
            target_aggregators_per_sync_subcommittee=p.preset.target_aggregators_per_sync_subcommittee,
            epochs_per_sync_committee_period=p.preset.epochs_per_sync_committee_period,
        )
        self.spec = spec(p.fork, p.preset.name)
        self.secrets = list(p.secret_keys) or [interop_secret_key(i) for i in range(p.validators)]
        self.pubkeys = [hex0x(bls.sk_to_pk(sk)) for sk in self.secrets]
        self.index_of = {pk: i for i, pk in enumerate(self.pubkeys)}
        rng = random.Random(f"shares/{p.seed}")
        self.shares: list[dict[int, int]] = []  # validator -> share index -> share secret
        for sk in self.secrets:
            coefficients = [rng.randrange(1, bls.CURVE_ORDER) for _ in range(p.threshold - 1)]
            self.shares.append(bls.split(sk, p.threshold, p.nodes, coefficients))
        self.keys = tuple(
            ValidatorKeys(
                self.pubkeys[v],
                tuple(hex0x(bls.sk_to_pk(self.shares[v][i])) for i in range(1, p.nodes + 1)),
            )
            for v in range(p.validators)
        )
        self.reorgs = self._plan_reorgs()
        self.judge = Judge()
        self._attestation_root_memo: dict[str, tuple[bytes, str]] = {}
        # what was submitted, by (slot, data root) / (slot, subcommittee, block root): the BN's pools
        self.attestation_pool: dict[tuple[int, str], dict[int, str]] = {}  # -> {committee position: sig}
        self.attestation_pool_data: dict[tuple[int, str], Any] = {}
        self.sync_pool: dict[tuple[int, str], dict[int, str]] = {}  # (slot, root) -> {position: sig}
        self.aggregates: dict[int, list[Any]] = {}  # slot -> Attestation JSON submitted in aggregates
        self.contributions: dict[int, list[Any]] = {}  # slot -> SyncCommitteeContribution JSON

    # ---- the chain's facts ---------------------------------------------------------------------------

    def _plan_reorgs(self) -> tuple[Reorg, ...]:
        p = self.params
        plan = []
        for epoch in range(1, self.epochs + 1):
            if draw(p.seed, "reorg", epoch) < p.reorg_rate:
                first = self.clock.first_slot(epoch)
                slot = first + 1 + int(draw(p.seed, "reorg-slot", epoch) * (self.preset.slots_per_epoch - 3))
                plan.append(Reorg(slot, first - 1))
        return tuple(plan)

    def arrival_ms(self, node: int, slot: int) -> int:
        """When node `node`'s BN sees the block of `slot` (node 0: the chain's own, never late).
        A late block is late for every node (its proposer published it late: every BN sees it after
        1/3 of the slot, each at its own moment); on time, each BN sees it at its own moment before."""
        p = self.params
        late = node > 0 and draw(p.seed, "late", slot) < p.late_block_rate
        low, high = LATE_ARRIVAL_MS if late else BLOCK_ARRIVAL_MS
        offset = low + int(draw(p.seed, "arrival", node, slot) * (high - low)) if node > 0 else low
        return self.clock.slot_start_ms(slot) + offset

    def version(self, slot: int, node: int, now_ms: int) -> int:
        """How many times the block of `slot` was replaced, as `node`'s BN knows at `now_ms`."""
        return sum(1 for r in self.reorgs if r.replaced == slot and self.arrival_ms(node, r.slot) <= now_ms)

    def block_root(self, slot: int, node: int, now_ms: int) -> str:
        if slot < 0:
            return _hash_hex("genesis", self.params.seed)
        return _hash_hex("block", self.params.seed, slot, self.version(slot, node, now_ms))

    def head_slot(self, node: int, now_ms: int) -> int:
        """The newest slot whose block `node`'s BN has seen (-1: only genesis)."""
        slot = self.clock.slot_at(now_ms) if now_ms >= self.params.genesis_ms else -1
        while slot >= 0 and self.arrival_ms(node, slot) > now_ms:
            slot -= 1
        return slot

    def head_root(self, node: int, now_ms: int, at_most: int | None = None) -> tuple[int, str]:
        slot = self.head_slot(node, now_ms)
        if at_most is not None:
            slot = min(slot, at_most)
        return slot, self.block_root(slot, node, now_ms)

    def attester_dependent_root(self, epoch: int, node: int, now_ms: int) -> str:
        return self.block_root(self.clock.first_slot(epoch - 1) - 1, node, now_ms)

    def proposer_dependent_root(self, epoch: int, node: int, now_ms: int) -> str:
        return self.block_root(self.clock.first_slot(epoch) - 1, node, now_ms)

    def justified_epoch(self, epoch: int) -> int:
        """The source epoch of attestations in `epoch`: the previous one, now and then the one before
        (never decreasing from one epoch to the next: honest attestations never surround)."""
        if epoch <= 1:
            return 0
        lag = (
            draw(self.params.seed, "justified", epoch) < 0.2 and self.justified_epoch(epoch - 1) <= epoch - 2
        )
        return epoch - 2 if lag else epoch - 1

    # ---- duties ------------------------------------------------------------------------------------

    def attester_duties(self, epoch: int, dependent_root: str) -> dict[int, AttesterDuty]:
        """Cluster validator index -> its attester duty in `epoch` (committees shuffled by the root)."""
        return self._attester_duties(epoch, dependent_root)

    @cached_property
    def _attester_cache(self) -> dict[tuple[int, str], dict[int, AttesterDuty]]:
        return {}

    def _attester_duties(self, epoch: int, dependent_root: str) -> dict[int, AttesterDuty]:
        key = (epoch, dependent_root)
        if key not in self._attester_cache:
            self._attester_cache[key] = attester_assignment(
                self.params, epoch, dependent_root, self.clock.first_slot(epoch)
            )
        return self._attester_cache[key]

    def attester_duties_at(self, epoch: int, node: int, now_ms: int) -> tuple[dict[int, AttesterDuty], str]:
        root = self.attester_dependent_root(epoch, node, now_ms)
        return self.attester_duties(epoch, root), root

    def proposer(self, slot: int, dependent_root: str) -> int:
        """The proposer index of `slot` (cluster validators are 0..V-1)."""
        p = self.params
        if draw(p.seed, "proposer-is-cluster", slot, dependent_root) < p.proposer_share:
            return int(draw(p.seed, "proposer", slot, dependent_root) * p.validators)
        return p.validators + int(draw(p.seed, "proposer-other", slot) * max(1, p.total - p.validators))

    def proposers_at(self, epoch: int, node: int, now_ms: int) -> tuple[dict[int, int], str]:
        """The epoch's proposers as `node`'s BN knows them at `now_ms`, and their dependent root. A
        reorg carried by block X changes the proposers of the slots after X only."""
        root = self.proposer_dependent_root(epoch, node, now_ms)
        first = self.clock.first_slot(epoch)
        proposers = {}
        for slot in range(first, first + self.preset.slots_per_epoch):
            seen = [
                r
                for r in self.reorgs
                if r.replaced == first - 1 and r.slot < slot and self.arrival_ms(node, r.slot) <= now_ms
            ]
            version_root = _hash_hex("block", self.params.seed, first - 1, len(seen)) if first > 0 else root
            proposers[slot] = self.proposer(slot, version_root)
        return proposers, root

    def proposer_of(self, slot: int) -> int:
        """The proposer the chain expects at `slot` (its duties as they stand when the slot starts)."""
        proposers, _ = self.proposers_at(self.clock.epoch_of(slot), 0, self.clock.slot_start_ms(slot))
        return proposers[slot]

    def pubkey(self, index: int) -> str:
        if index < self.params.validators:
            return self.pubkeys[index]
        return _hash_hex("pubkey", index) + "00" * 16  # someone else's: 48 bytes, never verified

    def sync_committee(self, period: int) -> dict[int, int]:
        """Cluster validator index -> its position in the sync committee of `period`."""
        p = self.params
        members = random.Random(f"sync/{p.seed}/{period}").sample(range(p.validators), p.sync_members)
        return {
            v: (k % self.preset.sync_committee_subnet_count) * self.preset.sync_subcommittee_size
            + k // self.preset.sync_committee_subnet_count
            for k, v in enumerate(members)
        }

    def sync_period(self, slot: int) -> int:
        return self.clock.epoch_of(slot) // self.preset.epochs_per_sync_committee_period

    # ---- the Beacon API of node `node`'s BN ---------------------------------------------------------

    def validators_info(self, pubkeys: tuple[str, ...]) -> tuple[ValidatorInfo, ...]:
        return tuple(ValidatorInfo(pk, self.index_of[pk]) for pk in pubkeys if pk in self.index_of)

    def attester_duties_json(
        self, epoch: int, indices: tuple[int, ...], node: int, now_ms: int
    ) -> tuple[list[Any], str]:
        duties, root = self.attester_duties_at(epoch, node, now_ms)
        out = []
        for index in indices:
            d = duties.get(index)
            if d is None:
                continue
            out.append(
                {
                    "pubkey": self.pubkeys[index],
                    "validator_index": str(index),
                    "committee_index": str(d.committee_index),
                    "committee_length": str(d.committee_length),
                    "committees_at_slot": str(d.committees_at_slot),
                    "validator_committee_index": str(d.validator_committee_index),
                    "slot": str(d.slot),
                }
            )
        return out, root

    def proposer_duties_json(self, epoch: int, node: int, now_ms: int) -> tuple[list[Any], str]:
        proposers, root = self.proposers_at(epoch, node, now_ms)
        return [
            {"pubkey": self.pubkey(index), "validator_index": str(index), "slot": str(slot)}
            for slot, index in sorted(proposers.items())
        ], root

    def sync_duties_json(self, epoch: int, indices: tuple[int, ...]) -> list[Any]:
        members = self.sync_committee(epoch // self.preset.epochs_per_sync_committee_period)
        return [
            {
                "pubkey": self.pubkeys[index],
                "validator_index": str(index),
                "validator_sync_committee_indices": [str(members[index])],
            }
            for index in indices
            if index in members
        ]

    def attestation_data(self, slot: int, committee_index: int, node: int, now_ms: int) -> dict[str, Any]:
        epoch = self.clock.epoch_of(slot)
        head_slot, head = self.head_root(node, now_ms, at_most=slot)
        first = self.clock.first_slot(epoch)
        target_root = self.block_root(first, node, now_ms) if head_slot >= first else head
        source = self.justified_epoch(epoch)
        source_root = self.block_root(self.clock.first_slot(source), node, now_ms) if source else ZERO_ROOT
        return {
            "slot": str(slot),
            "index": str(committee_index),
            "beacon_block_root": head,
            "source": {"epoch": str(source), "root": source_root},
            "target": {"epoch": str(epoch), "root": target_root},
        }

    def produce_block(
        self,
        slot: int,
        proposer_index: int,
        randao_reveal: str,
        node: int,
        now_ms: int,
        fee_recipient: str = "0x" + "00" * 20,
        blinded: bool = False,
    ) -> dict[str, Any]:
        """What `node`'s BN builds (produceBlockV3), read into the specs' own BeaconBlock container
        (which checks every field) and written back as Beacon-API JSON. With payloads (bellatrix), the
        execution payload pays `fee_recipient`; `blinded`: a builder's block, its payload as a header."""
        s = self.spec
        _, parent = self.head_root(node, now_ms, at_most=slot - 1)
        attestations = self.aggregates.get(slot - 1, [])[: s.MAX_ATTESTATIONS]
        bits = bytearray(self.preset.sync_committee_size // 8)
        signatures = []
        for c in self.contributions.get(slot - 1, []):
            if c["beacon_block_root"] != parent:
                continue
            sub = int(c["subcommittee_index"])
            raw = bytes.fromhex(c["aggregation_bits"][2:])
            fresh = [
                sub * self.preset.sync_subcommittee_size + i
                for i in range(self.preset.sync_subcommittee_size)
                if raw[i // 8] >> (i % 8) & 1
            ]
            if fresh and not any(bits[i // 8] >> (i % 8) & 1 for i in fresh):  # disjoint ones aggregate
                for i in fresh:
                    bits[i // 8] |= 1 << (i % 8)
                signatures.append(unhex(c["signature"]))
        sync_signature = hex0x(bls.aggregate(signatures)) if signatures else G2_POINT_AT_INFINITY
        block: dict[str, Any] = {
            "slot": str(slot),
            "proposer_index": str(proposer_index),
            "parent_root": parent,
            "state_root": _hash_hex("state", self.params.seed, slot, node),
            "body": {
                "randao_reveal": randao_reveal,
                "eth1_data": {
                    "deposit_root": _hash_hex("deposits", self.params.seed),
                    "deposit_count": str(self.params.total),
                    "block_hash": _hash_hex("eth1", self.params.seed, self.clock.epoch_of(slot)),
                },
                "graffiti": _hash_hex("graffiti", node, slot),
                "proposer_slashings": [],
                "attester_slashings": [],
                "attestations": attestations,
                "deposits": [],
                "voluntary_exits": [],
                "sync_aggregate": {
                    "sync_committee_bits": "0x" + bits.hex(),
                    "sync_committee_signature": sync_signature,
                },
            },
        }
        if self.fork in FORKS_WITH_PAYLOADS:
            payload = s.ExecutionPayload(
                fee_recipient=s.ExecutionAddress(bytes.fromhex(fee_recipient[2:])),
                block_number=slot,
                gas_limit=36_000_000,
                timestamp=(self.clock.slot_start_ms(slot)) // 1000,
                block_hash=bytes.fromhex(_hash_hex("payload", self.params.seed, slot)[2:]),
            )
            if blinded:
                fields = {
                    name: getattr(payload, name)
                    for name in s.ExecutionPayloadHeader.__annotations__
                    if name != "transactions_root"
                }
                header = s.ExecutionPayloadHeader(
                    **fields, transactions_root=payload.transactions.hash_tree_root()
                )
                block["body"]["execution_payload_header"] = ssz_json.to_json(header)
                blinded_type = _blinded_block_type(self.fork, self.preset.name)
                container = ssz_json.from_json(blinded_type, block)
                return {"version": self.fork, "blinded": True, "block": ssz_json.to_json(container)}
            block["body"]["execution_payload"] = ssz_json.to_json(payload)
        container = ssz_json.from_json(s.BeaconBlock, block)
        return {"version": self.fork, "blinded": False, "block": ssz_json.to_json(container)}

    def aggregate_attestation(self, slot: int, data_root: str) -> dict[str, Any] | None:
        """The BN's aggregate of the submitted attestations with this data (None: none yet)."""
        pool = self.attestation_pool.get((slot, data_root))
        if not pool:
            return None
        data = self.attestation_pool_data[(slot, data_root)]
        length = self.params.committee_length(slot, int(data["index"]))
        raw = bytearray(length // 8 + 1)
        for position in pool:
            raw[position // 8] |= 1 << (position % 8)
        raw[length // 8] |= 1 << (length % 8)
        signature = bls.aggregate([unhex(sig) for _, sig in sorted(pool.items())])
        return {"aggregation_bits": "0x" + raw.hex(), "data": data, "signature": hex0x(signature)}

    def sync_contribution(self, slot: int, subcommittee: int, root: str) -> dict[str, Any]:
        pool = self.sync_pool.get((slot, root), {})
        raw = bytearray(self.preset.sync_subcommittee_size // 8)
        signatures = []
        for position, sig in sorted(pool.items()):
            if position // self.preset.sync_subcommittee_size == subcommittee:
                i = position % self.preset.sync_subcommittee_size
                raw[i // 8] |= 1 << (i % 8)
                signatures.append(unhex(sig))
        signature = hex0x(bls.aggregate(signatures)) if signatures else G2_POINT_AT_INFINITY
        return {
            "slot": str(slot),
            "beacon_block_root": root,
            "subcommittee_index": str(subcommittee),
            "aggregation_bits": "0x" + raw.hex(),
            "signature": signature,
        }

    # ---- the judge ----------------------------------------------------------------------------------

    def _verify(self, pubkey: str, root: bytes, signature: Any) -> bool:
        if not isinstance(signature, str):
            return False
        key = (pubkey, root, signature)
        if key not in self.judge.verified:
            try:
                self.judge.verified[key] = bls.verify(unhex(pubkey), root, unhex(signature))
            except ValueError:
                self.judge.verified[key] = False
        return self.judge.verified[key]

    def verify_batch(self, kind: SubmissionKind, body: Any) -> None:
        """Verify the attestation signatures of a submission not verified yet in one batch (a pairing
        per distinct signing root: a committee's attestations cost about one), remembering each
        result for `submit`; bisection names the invalid ones. Anything malformed is left to `submit`,
        which verifies what is left one by one: every signature is still checked."""
        if kind is not SubmissionKind.ATTESTATIONS or not isinstance(body, list):
            return
        pending: dict[tuple[str, bytes, str], bls.SignedItem] = {}
        for obj in body:
            try:
                data, signature = obj["data"], obj["signature"]
                _, positions = bitlist_positions(obj["aggregation_bits"])
                if len(positions) != 1 or not isinstance(signature, str):
                    continue
                index = self._attester_at(int(data["slot"]), int(data["index"]), positions[0])
                if index is None:
                    continue
                key = (self.pubkeys[index], self._attestation_roots(data)[0], signature)
                if key not in self.judge.verified:
                    pending[key] = bls.SignedItem(unhex(key[0]), key[1], unhex(signature))
            except (KeyError, TypeError, ValueError, IndexError):
                continue
        if len(pending) < 2:
            return
        try:
            invalid = set(bls.find_invalid(list(pending.values())))
        except ValueError:  # a point that does not decode: `submit` names it, one by one
            return
        for position, key in enumerate(pending):
            self.judge.verified[key] = position not in invalid

    def submit(self, node: int, kind: SubmissionKind, body: Any, now_ms: int) -> tuple[bool, str]:
        """A node's BN receives a submission: verify, record, judge. (ok, error) as the BN answers."""
        objects = [body] if kind is SubmissionKind.BLOCK else body
        if not isinstance(objects, list):
            return self._invalid(node, now_ms, f"{kind.value}: body is not a list")
        errors = []
        for obj in objects:
            self.judge.submissions += 1
            try:
                problem = self._judge_one(kind, obj, now_ms)
            except (KeyError, TypeError, ValueError, IndexError) as error:
                problem = f"malformed: {error!r}"
            if problem is not None:
                errors.append(problem)
                self.judge.invalid.append(Violation(now_ms, node, f"{kind.value}: {problem}"))
        return (not errors, "; ".join(errors))

    def _invalid(self, node: int, now_ms: int, what: str) -> tuple[bool, str]:
        self.judge.invalid.append(Violation(now_ms, node, what))
        return False, what

    def _root(self, kind: Kind, message: Any) -> bytes:
        return signing_root(self.schedule, kind, message)

    def _attestation_roots(self, data: Any) -> tuple[bytes, str]:
        """(signing root, 0x hash_tree_root) of an AttestationData, remembered: a committee's
        attestations, and each node's copy of them, share one data (bounded: oldest dropped)."""
        key = json.dumps(data, sort_keys=True)
        roots = self._attestation_root_memo.get(key)
        if roots is None:
            roots = (
                self._root(Kind.ATTESTATION, data),
                "0x" + ssz_json.hash_tree_root(self.spec.AttestationData, data).hex(),
            )
            self._attestation_root_memo[key] = roots
            if len(self._attestation_root_memo) > ATTESTATION_ROOT_MEMO:
                del self._attestation_root_memo[next(iter(self._attestation_root_memo))]
        return roots

    def _mark_done(self, key: tuple[DutyId, str], now_ms: int) -> None:
        self.judge.done.add(key)
        self.judge.done_at.setdefault(key, now_ms)

    def _judge_one(self, kind: SubmissionKind, obj: Any, now_ms: int) -> str | None:
        if kind is SubmissionKind.ATTESTATIONS:
            data = obj["data"]
            slot, committee_index = int(data["slot"]), int(data["index"])
            length, positions = bitlist_positions(obj["aggregation_bits"])
            if len(positions) != 1:
                return "an unaggregated attestation needs exactly one bit"
            if committee_index >= self.params.committees_per_slot:
                return f"committee index {committee_index} at slot {slot}: the slot has {self.params.committees_per_slot}"
            if length != self.params.committee_length(slot, committee_index):
                return f"aggregation bits for {length} attesters, the committee has {self.params.committee_length(slot, committee_index)}"
            index = self._attester_at(slot, committee_index, positions[0])
            if index is None:
                return (
                    f"no cluster validator at slot {slot} committee {committee_index} position {positions[0]}"
                )
            root, data_root = self._attestation_roots(data)
            if not self._verify(self.pubkeys[index], root, obj["signature"]):
                return f"attestation signature of validator {index} does not verify"
            self._record_attestation(index, int(data["source"]["epoch"]), int(data["target"]["epoch"]), root)
            self.attestation_pool.setdefault((slot, data_root), {})[positions[0]] = obj["signature"]
            self.attestation_pool_data[(slot, data_root)] = data
            self._mark_done((DutyId(slot, DutyKind.ATTESTER), self.pubkeys[index]), now_ms)
            return None
        if kind is SubmissionKind.BLOCK:
            block = obj["message"]
            slot, index = int(block["slot"]), int(block["proposer_index"])
            if index >= self.params.validators:
                return f"block of a validator {index} outside the cluster"
            pubkey = self.pubkeys[index]
            randao = self._root(Kind.RANDAO_REVEAL, {"epoch": str(self.clock.epoch_of(slot))})
            if not self._verify(pubkey, randao, block["body"]["randao_reveal"]):
                return f"block {slot}: RANDAO reveal of validator {index} does not verify"
            blinded = "execution_payload_header" in block["body"]
            root = self._root(Kind.BLINDED_BLOCK if blinded else Kind.BLOCK, block)
            if not self._verify(pubkey, root, obj["signature"]):
                return f"block {slot}: signature of validator {index} does not verify"
            payload = block["body"].get("execution_payload_header" if blinded else "execution_payload")
            if payload is not None:  # who the block pays, and whether a builder built it
                self.judge.payments[slot] = (str(payload["fee_recipient"]), blinded)
            self._record_block(index, slot, root)
            self._mark_done((DutyId(slot, DutyKind.PROPOSER), pubkey), now_ms)
            return None
        if kind is SubmissionKind.SYNC_COMMITTEE_MESSAGES:
            slot, index, root_hex = int(obj["slot"]), int(obj["validator_index"]), obj["beacon_block_root"]
            members = self.sync_committee(self.sync_period(slot))
            if index not in members:
                return f"validator {index} is not in the sync committee"
            root = self._root(Kind.SYNC_COMMITTEE_MESSAGE, obj)
            if not self._verify(self.pubkeys[index], root, obj["signature"]):
                return f"sync committee message of validator {index} does not verify"
            self.sync_pool.setdefault((slot, root_hex), {})[members[index]] = obj["signature"]
            self._mark_done((DutyId(slot, DutyKind.SYNC_MESSAGE), self.pubkeys[index]), now_ms)
            return None
        if kind is SubmissionKind.AGGREGATE_AND_PROOFS:
            message = obj["message"]
            index = int(message["aggregator_index"])
            aggregate = message["aggregate"]
            slot = int(aggregate["data"]["slot"])
            if index >= self.params.validators:
                return f"aggregate of a validator {index} outside the cluster"
            pubkey = self.pubkeys[index]
            proof = self._root(Kind.AGGREGATION_SLOT, {"slot": str(slot)})
            if not self._verify(pubkey, proof, message["selection_proof"]):
                return f"selection proof of validator {index} does not verify"
            length = self.params.committee_length(slot, int(aggregate["data"]["index"]))
            if not is_aggregator(self.config, length, message["selection_proof"]):
                return f"validator {index} is not an aggregator at slot {slot}"
            root = self._root(Kind.AGGREGATE_AND_PROOF, message)
            if not self._verify(pubkey, root, obj["signature"]):
                return f"aggregate and proof of validator {index} does not verify"
            self.aggregates.setdefault(slot, []).append(aggregate)
            self._mark_done((DutyId(slot, DutyKind.AGGREGATOR), pubkey), now_ms)
            return None
        if kind is SubmissionKind.CONTRIBUTION_AND_PROOFS:
            message = obj["message"]
            index = int(message["aggregator_index"])
            contribution = message["contribution"]
            slot, sub = int(contribution["slot"]), int(contribution["subcommittee_index"])
            members = self.sync_committee(self.sync_period(slot))
            if index not in members or members[index] // self.preset.sync_subcommittee_size != sub:
                return f"validator {index} is not in sync subcommittee {sub}"
            pubkey = self.pubkeys[index]
            selection = {"slot": str(slot), "subcommittee_index": str(sub)}
            proof = self._root(Kind.SYNC_COMMITTEE_SELECTION_PROOF, selection)
            if not self._verify(pubkey, proof, message["selection_proof"]):
                return f"sync selection proof of validator {index} does not verify"
            if not is_sync_committee_aggregator(self.config, message["selection_proof"]):
                return f"validator {index} is not a sync aggregator"
            root = self._root(Kind.CONTRIBUTION_AND_PROOF, message)
            if not self._verify(pubkey, root, obj["signature"]):
                return f"contribution and proof of validator {index} does not verify"
            self.contributions.setdefault(slot, []).append(contribution)
            self._mark_done((DutyId(slot, DutyKind.SYNC_CONTRIBUTION), f"{pubkey}/{sub}"), now_ms)
            return None
        return f"unsupported submission {kind}"

    def _attester_at(self, slot: int, committee_index: int, position: int) -> int | None:
        """The cluster validator at a committee position (under the final duties of the epoch)."""
        epoch = self.clock.epoch_of(slot)
        seat = (slot, committee_index, position)
        index = self._seats(epoch, self.final_attester_root(epoch)).get(seat)
        if index is not None:
            return index
        # a duty of the assignment a reorg replaced: the validator's attestation still counts
        for root in self._all_attester_roots(epoch):
            index = self._seats(epoch, root).get(seat)
            if index is not None:
                return index
        return None

    @cached_property
    def _seat_cache(self) -> dict[tuple[int, str], dict[tuple[int, int, int], int]]:
        return {}

    def _seats(self, epoch: int, dependent_root: str) -> dict[tuple[int, int, int], int]:
        """(slot, committee index, position) -> cluster validator index, under one assignment (a
        lookup per submitted attestation, not a scan of every duty)."""
        key = (epoch, dependent_root)
        if key not in self._seat_cache:
            self._seat_cache[key] = {
                (d.slot, d.committee_index, d.validator_committee_index): index
                for index, d in self.attester_duties(epoch, dependent_root).items()
            }
        return self._seat_cache[key]

    def final_attester_root(self, epoch: int) -> str:
        return self.attester_dependent_root(epoch, 0, 2**62)

    def _all_attester_roots(self, epoch: int) -> list[str]:
        slot = self.clock.first_slot(epoch - 1) - 1
        versions = 1 + sum(1 for r in self.reorgs if r.replaced == slot)
        if slot < 0:
            return [self.block_root(slot, 0, 0)]
        return [_hash_hex("block", self.params.seed, slot, v) for v in range(versions)]

    def _record_attestation(self, index: int, source: int, target: int, root: bytes) -> None:
        history = self.judge.attestations.setdefault(index, [])
        if (source, target, root) in history:
            return
        for s, t, r in history:
            if is_slashable_attestation_pair(source, target, root, s, t, r):
                self.judge.slashable_pairs.append(
                    f"validator {index}: attestation (source {source}, target {target}, root 0x{root.hex()[:16]}) "
                    f"with (source {s}, target {t}, root 0x{r.hex()[:16]})"
                )
        history.append((source, target, root))

    def _record_block(self, index: int, slot: int, root: bytes) -> None:
        history = self.judge.blocks.setdefault(index, [])
        if (slot, root) in history:
            return
        for s, r in history:
            if is_slashable_block_pair(slot, root, s, r):
                self.judge.slashable_pairs.append(
                    f"validator {index}: block (slot {slot}, root 0x{root.hex()[:16]}) with (slot {s}, root 0x{r.hex()[:16]})"
                )
        history.append((slot, root))

    # ---- what the cluster had to do ------------------------------------------------------------------

    def expected_duties(self) -> list[tuple[DutyId, str]]:
        """Every (duty, validator key) of the cluster in epochs 0..epochs-1, under the final duties."""
        out: list[tuple[DutyId, str]] = []
        for epoch in range(self.epochs):
            duties = self.attester_duties(epoch, self.final_attester_root(epoch))
            for index, d in sorted(duties.items()):
                pubkey = self.pubkeys[index]
                out.append((DutyId(d.slot, DutyKind.ATTESTER), pubkey))
                proof = bls.sign(
                    self.secrets[index], self._root(Kind.AGGREGATION_SLOT, {"slot": str(d.slot)})
                )
                if is_aggregator(self.config, d.committee_length, hex0x(proof)):
                    out.append((DutyId(d.slot, DutyKind.AGGREGATOR), pubkey))
            first = self.clock.first_slot(epoch)
            for slot in range(first, first + self.preset.slots_per_epoch):
                proposer = self.proposer_of(slot)
                if proposer < self.params.validators:
                    out.append((DutyId(slot, DutyKind.PROPOSER), self.pubkeys[proposer]))
                for index, position in sorted(self.sync_committee(self.sync_period(slot)).items()):
                    pubkey = self.pubkeys[index]
                    out.append((DutyId(slot, DutyKind.SYNC_MESSAGE), pubkey))
                    sub = position // self.preset.sync_subcommittee_size
                    selection = {"slot": str(slot), "subcommittee_index": str(sub)}
                    root_bytes = self._root(Kind.SYNC_COMMITTEE_SELECTION_PROOF, selection)
                    if is_sync_committee_aggregator(
                        self.config, hex0x(bls.sign(self.secrets[index], root_bytes))
                    ):
                        out.append((DutyId(slot, DutyKind.SYNC_CONTRIBUTION), f"{pubkey}/{sub}"))
        return out
