"""Ethereum signing roots: which fork, which domain, which container, for every message covalidator signs.

Decides: the fork schedule of a network (from a beacon node's `/eth/v1/config/spec` JSON or a named
network), the fork in force at an epoch, and for each message kind (the table `KINDS`) the domain
type, the epoch that picks the fork version, and the consensus-spec container its Beacon-API JSON is
read as. The signing root is then the specs' own `compute_signing_root(object, compute_domain(...))`.

Exceptions to "the fork version at the message's epoch", as the specs and builder-specs define them:
- VoluntaryExit: from Deneb on (EIP-7044) the domain always uses CAPELLA_FORK_VERSION.
- ValidatorRegistration (builder-specs): DOMAIN_APPLICATION_BUILDER with the GENESIS fork version and
  an all-zero genesis validators root, whatever the fork.

Blinded blocks and validator registrations are builder-specs containers, absent from the consensus
specs' package: they are derived here from the specs' own types (the blinded body is the fork's
BeaconBlockBody with `execution_payload` replaced by the fork's `ExecutionPayloadHeader`), never
written out field by field.

Message JSON per kind follows the Beacon API (and, for the bare values, the remote-signer API's
shapes): attestation -> AttestationData; block / blinded_block -> BeaconBlock / BlindedBeaconBlock (or
a deneb+ BlockContents `{block, ...}`); block_header -> BeaconBlockHeader (whose root is the block's:
the remote signer API sends headers from bellatrix on); randao_reveal -> {epoch}; aggregation_slot -> {slot};
aggregate_and_proof -> AggregateAndProof; sync_committee_message -> {slot, beacon_block_root};
sync_committee_selection_proof -> SyncAggregatorSelectionData; contribution_and_proof ->
ContributionAndProof; voluntary_exit -> VoluntaryExit; validator_registration -> ValidatorRegistration.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cache, lru_cache
from typing import Any, Final

from ssz.container import Container

from covalidator.model.eth import ssz_json
from covalidator.model.eth.networks import Network
from covalidator.model.eth.specs import FAR_FUTURE_EPOCH, FORKS, spec
from covalidator.model.memo import Memo

# builder-specs: DOMAIN_APPLICATION_BUILDER = DomainType('0x00000001') (= the specs' application mask).
DOMAIN_APPLICATION_BUILDER: Final = bytes.fromhex("00000001")
# Forks after the last one covalidator knows; a schedule that activates one is refused from its epoch.
LATER_FORKS: Final = ("gloas", "heze")


class SigningError(ValueError):
    """A message that cannot be given a signing root (bad JSON, unsupported fork, bad config)."""


# ---- the fork schedule -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fork:
    name: str
    epoch: int
    version: bytes


@dataclass(frozen=True)
class ForkSchedule:
    forks: tuple[Fork, ...]  # ascending activation epochs, phase0 at 0 first
    genesis_validators_root: bytes
    preset: str = "mainnet"
    slots_per_epoch: int = 32
    unsupported_from: int = FAR_FUTURE_EPOCH  # first epoch of a fork newer than fulu

    def __post_init__(self) -> None:
        assert self.forks and self.forks[0].name == "phase0" and self.forks[0].epoch == 0
        assert [f.name for f in self.forks] == list(FORKS[: len(self.forks)])
        assert all(a.epoch <= b.epoch for a, b in zip(self.forks, self.forks[1:], strict=False))
        assert len(self.genesis_validators_root) == 32

    @property
    def genesis_fork_version(self) -> bytes:
        return self.forks[0].version

    def version(self, fork: str) -> bytes:
        return next(f.version for f in self.forks if f.name == fork)

    def fork_at_epoch(self, epoch: int) -> Fork:
        if epoch >= self.unsupported_from:
            raise SigningError(
                f"epoch {epoch} is after a fork newer than fulu (from {self.unsupported_from})"
            )
        active = [f for f in self.forks if f.epoch <= epoch]
        return active[-1]

    def epoch_at_slot(self, slot: int) -> int:
        return slot // self.slots_per_epoch

    @classmethod
    def from_network(cls, net: Network, genesis_validators_root: bytes | None = None) -> ForkSchedule:
        return cls(
            tuple(Fork(n, e, v) for n, e, v in net.forks if e != FAR_FUTURE_EPOCH or n == "phase0"),
            genesis_validators_root or net.genesis_validators_root,
            net.preset,
            net.slots_per_epoch,
        )

    @classmethod
    def from_spec_config(cls, config: Mapping[str, Any], genesis_validators_root: bytes) -> ForkSchedule:
        """From a beacon node's `/eth/v1/config/spec` (the envelope or its `data`) and its genesis."""
        data: Mapping[str, Any] = config.get("data", config)

        def number(key: str) -> int:
            value = data[key]
            if not isinstance(value, (str, int)) or not (str(value).isascii() and str(value).isdigit()):
                raise SigningError(f"config {key} is not a number: {value!r}")
            return int(value)

        def version(key: str) -> bytes:
            value = data[key]
            if not isinstance(value, str) or len(value) != 10 or not value.startswith("0x"):
                raise SigningError(f"config {key} is not a 4-byte 0x-hex version: {value!r}")
            return bytes.fromhex(value[2:])

        try:
            slots_per_epoch = number("SLOTS_PER_EPOCH")
            preset = str(data.get("PRESET_BASE", {32: "mainnet", 8: "minimal"}.get(slots_per_epoch, "")))
            preset = preset.strip("'\"")
            if preset not in ("mainnet", "minimal"):
                raise SigningError(
                    f"unsupported preset {preset or '(unknown)'} (SLOTS_PER_EPOCH={slots_per_epoch})"
                )
            forks = [Fork("phase0", 0, version("GENESIS_FORK_VERSION"))]
            for name in FORKS[1:]:
                key = name.upper()
                if f"{key}_FORK_EPOCH" not in data:
                    break  # an older node that does not know this fork: it is not scheduled
                epoch = number(f"{key}_FORK_EPOCH")
                if epoch == FAR_FUTURE_EPOCH:
                    break
                forks.append(Fork(name, epoch, version(f"{key}_FORK_VERSION")))
            later = [
                number(f"{n.upper()}_FORK_EPOCH") for n in LATER_FORKS if f"{n.upper()}_FORK_EPOCH" in data
            ]
        except KeyError as error:
            raise SigningError(f"config lacks {error.args[0]}") from None
        if len(genesis_validators_root) != 32:
            raise SigningError("genesis validators root must be 32 bytes")
        return cls(
            tuple(forks), genesis_validators_root, preset, slots_per_epoch, min([FAR_FUTURE_EPOCH, *later])
        )


# ---- domains and signing roots ----------------------------------------------------------------------


@cache  # a handful of (domain, fork, network) triples; recomputing them was a fifth of a root's cost
@lru_cache(maxsize=256)
def compute_domain(domain_type: bytes, fork_version: bytes, genesis_validators_root: bytes) -> bytes:
    """The specs' compute_domain (a pure function of its three values; a node uses a few of them, and
    each costs a ForkData hash_tree_root in the specs' SSZ: remembered)."""
    s = spec("phase0")
    return bytes(
        s.compute_domain(s.DomainType(domain_type), s.Version(fork_version), s.Root(genesis_validators_root))
    )


def compute_signing_root(ssz_object: Any, domain: bytes) -> bytes:
    s = spec("phase0")
    return bytes(s.compute_signing_root(ssz_object, s.Domain(domain)))


@cache
def _blinded(fork: str, preset: str) -> tuple[type[Any], type[Any]]:
    """(BlindedBeaconBlockBody, BlindedBeaconBlock) of a fork, derived from its spec containers."""
    s = spec(fork, preset)
    if "execution_payload" not in dict(s.BeaconBlockBody._FIELD_TYPES):
        raise SigningError(f"blinded_block messages do not exist in {fork}")
    body_fields = {
        ("execution_payload_header" if n == "execution_payload" else n): (
            s.ExecutionPayloadHeader if n == "execution_payload" else t
        )
        for n, t in s.BeaconBlockBody._FIELD_TYPES
    }
    body = type(
        "BlindedBeaconBlockBody", (Container,), {"__annotations__": body_fields, "__module__": __name__}
    )
    block_fields = {n: (body if n == "body" else t) for n, t in s.BeaconBlock._FIELD_TYPES}
    block = type(
        "BlindedBeaconBlock", (Container,), {"__annotations__": block_fields, "__module__": __name__}
    )
    return body, block


@cache
def _validator_registration() -> type[Any]:
    s = spec("bellatrix")
    fields = {
        "fee_recipient": s.ExecutionAddress,
        "gas_limit": s.Uint64,
        "timestamp": s.Uint64,
        "pubkey": s.BLSPubkey,
    }
    return type("ValidatorRegistrationV1", (Container,), {"__annotations__": fields, "__module__": __name__})


class Kind(StrEnum):
    ATTESTATION = "attestation"
    BLOCK = "block"
    BLINDED_BLOCK = "blinded_block"
    BLOCK_HEADER = "block_header"  # the remote signer's BLOCK_V2 from bellatrix on: same root as the block
    RANDAO_REVEAL = "randao_reveal"
    AGGREGATION_SLOT = "aggregation_slot"
    AGGREGATE_AND_PROOF = "aggregate_and_proof"
    SYNC_COMMITTEE_MESSAGE = "sync_committee_message"
    SYNC_COMMITTEE_SELECTION_PROOF = "sync_committee_selection_proof"
    CONTRIBUTION_AND_PROOF = "contribution_and_proof"
    VOLUNTARY_EXIT = "voluntary_exit"
    VALIDATOR_REGISTRATION = "validator_registration"


def _uint(message: Mapping[str, Any], *path: str) -> int:
    value: Any = message
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            raise SigningError(f"message lacks {'.'.join(path)}")
        value = value[key]
    if not isinstance(value, str) or not (value.isascii() and value.isdigit()) or len(value) > 78:
        raise SigningError(f"{'.'.join(path)} is not a decimal string: {str(value)[:40]!r}")
    return int(value)


@dataclass(frozen=True)
class KindRule:
    domain: str  # the spec's DOMAIN_* constant
    epoch: Callable[[ForkSchedule, Mapping[str, Any]], int]  # the epoch whose fork signs it
    container: Callable[[Any, str], Any]  # (spec module, preset) -> SSZ type the JSON is read as
    value: Callable[[Mapping[str, Any]], Any] = lambda m: m  # the JSON part that is the object


def _slot_epoch(*path: str) -> Callable[[ForkSchedule, Mapping[str, Any]], int]:
    return lambda schedule, m: schedule.epoch_at_slot(_uint(m, *path))


def _unwrap_block(message: Mapping[str, Any]) -> Any:
    # deneb+ produceBlockV3 returns BlockContents {block, kzg_proofs, blobs}; the signed object is the block.
    return message["block"] if "block" in message and "slot" not in message else message


KINDS: Final[Mapping[Kind, KindRule]] = {
    Kind.ATTESTATION: KindRule(
        "DOMAIN_BEACON_ATTESTER", lambda _, m: _uint(m, "target", "epoch"), lambda s, _: s.AttestationData
    ),
    Kind.BLOCK: KindRule(
        "DOMAIN_BEACON_PROPOSER",
        lambda sc, m: sc.epoch_at_slot(_uint(_unwrap_block(m), "slot")),
        lambda s, _: s.BeaconBlock,
        _unwrap_block,
    ),
    Kind.BLINDED_BLOCK: KindRule(
        "DOMAIN_BEACON_PROPOSER", _slot_epoch("slot"), lambda s, preset: _blinded(s.fork, preset)[1]
    ),
    Kind.BLOCK_HEADER: KindRule(
        "DOMAIN_BEACON_PROPOSER", _slot_epoch("slot"), lambda s, _: s.BeaconBlockHeader
    ),
    Kind.RANDAO_REVEAL: KindRule(
        "DOMAIN_RANDAO", lambda _, m: _uint(m, "epoch"), lambda s, _: s.Epoch, lambda m: m["epoch"]
    ),
    Kind.AGGREGATION_SLOT: KindRule(
        "DOMAIN_SELECTION_PROOF", _slot_epoch("slot"), lambda s, _: s.Slot, lambda m: m["slot"]
    ),
    Kind.AGGREGATE_AND_PROOF: KindRule(
        "DOMAIN_AGGREGATE_AND_PROOF",
        _slot_epoch("aggregate", "data", "slot"),
        lambda s, _: s.AggregateAndProof,
    ),
    Kind.SYNC_COMMITTEE_MESSAGE: KindRule(
        "DOMAIN_SYNC_COMMITTEE", _slot_epoch("slot"), lambda s, _: s.Root, lambda m: m["beacon_block_root"]
    ),
    Kind.SYNC_COMMITTEE_SELECTION_PROOF: KindRule(
        "DOMAIN_SYNC_COMMITTEE_SELECTION_PROOF",
        _slot_epoch("slot"),
        lambda s, _: s.SyncAggregatorSelectionData,
    ),
    Kind.CONTRIBUTION_AND_PROOF: KindRule(
        "DOMAIN_CONTRIBUTION_AND_PROOF",
        _slot_epoch("contribution", "slot"),
        lambda s, _: s.ContributionAndProof,
    ),
    Kind.VOLUNTARY_EXIT: KindRule(
        "DOMAIN_VOLUNTARY_EXIT", lambda _, m: _uint(m, "epoch"), lambda s, _: s.VoluntaryExit
    ),
    # Its domain is special-cased (builder domain, genesis fork version): see `signing_domain`.
    Kind.VALIDATOR_REGISTRATION: KindRule("", lambda _, m: 0, lambda s, _: _validator_registration()),
}


def message_epoch(schedule: ForkSchedule, kind: Kind, message: Mapping[str, Any]) -> int:
    """The epoch that picks the fork (and so the container and the fork version) of a message."""
    return KINDS[Kind(kind)].epoch(schedule, message)


def signing_domain(
    schedule: ForkSchedule, kind: Kind, message: Mapping[str, Any], current_epoch: int | None = None
) -> bytes:
    """The domain a message of `kind` is signed in. `current_epoch` (the chain's, when known) matters
    only for voluntary exits, whose fork is Capella's once the chain is at Deneb or later."""
    kind = Kind(kind)
    rule = KINDS[kind]
    epoch = rule.epoch(schedule, message)
    if kind is Kind.VALIDATOR_REGISTRATION:
        return compute_domain(DOMAIN_APPLICATION_BUILDER, schedule.genesis_fork_version, bytes(32))
    fork = schedule.fork_at_epoch(epoch)
    domain_type = getattr(spec(fork.name, schedule.preset), rule.domain, None)
    if domain_type is None:
        raise SigningError(f"{kind} messages do not exist in {fork.name} (epoch {epoch})")
    if kind is Kind.VOLUNTARY_EXIT:
        at = max(epoch, current_epoch if current_epoch is not None else epoch)
        if FORKS.index(schedule.fork_at_epoch(at).name) >= FORKS.index("deneb"):
            return compute_domain(
                bytes(domain_type), schedule.version("capella"), schedule.genesis_validators_root
            )
    return compute_domain(bytes(domain_type), fork.version, schedule.genesis_validators_root)


def container_of(schedule: ForkSchedule, kind: Kind, message: Mapping[str, Any]) -> Any:
    """The SSZ value of the message, read as its fork's spec container (strict: see `ssz_json`)."""
    kind = Kind(kind)
    rule = KINDS[kind]
    fork = schedule.fork_at_epoch(rule.epoch(schedule, message))
    s = spec(fork.name, schedule.preset)
    try:
        container = rule.container(s, schedule.preset)
    except AttributeError:
        raise SigningError(f"{kind} messages do not exist in {fork.name}") from None
    try:
        return ssz_json.from_json(container, rule.value(message))
    except KeyError as error:
        raise SigningError(f"message lacks {error.args[0]}") from None


def signing_root(
    schedule: ForkSchedule, kind: Kind, message: Mapping[str, Any], current_epoch: int | None = None
) -> bytes:
    """compute_signing_root(object, domain) for a Beacon-API JSON message of `kind`.

    Messages are remembered by their canonical JSON text (a pure function of it): a committee's
    validators sign one attestation data, a slot's selection proofs one slot, so a node computes each
    root once instead of once per validator and check. Large ones (blocks: ~25 ms of merkleization,
    needed by the validity check and again for the decided value) by the text's SHA-256."""
    if not isinstance(message, Mapping):
        raise SigningError(f"{kind} message must be a JSON object, got {type(message).__name__}")
    try:
        text = json.dumps(message, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return _signing_root(schedule, kind, message, current_epoch)
    if len(text) <= ROOT_MEMO_TEXT_LIMIT:
        return _signing_root_of_text(schedule, kind, text, current_epoch)
    key = (schedule, Kind(kind), hashlib.sha256(text.encode()).digest(), current_epoch)
    root = _LARGE_ROOTS.peek(key)
    if root is None:
        root = _signing_root(schedule, kind, message, current_epoch)
        _LARGE_ROOTS.put(key, root)
    return root


# A message text is remembered up to this size (an attestation data is ~400 bytes): at most 4,096
# entries of it, ~16 MB at worst.
ROOT_MEMO_TEXT_LIMIT: Final = 4096
# Larger messages (blocks): the roots of the last 256, by the SHA-256 of their text.
LARGE_ROOT_MEMO: Final = 256
_LARGE_ROOTS = Memo[tuple[ForkSchedule, Kind, bytes, int | None], bytes](None, LARGE_ROOT_MEMO)


@lru_cache(maxsize=4096)
def _signing_root_of_text(schedule: ForkSchedule, kind: Kind, text: str, current_epoch: int | None) -> bytes:
    return _signing_root(schedule, kind, json.loads(text), current_epoch)


def _signing_root(
    schedule: ForkSchedule, kind: Kind, message: Mapping[str, Any], current_epoch: int | None
) -> bytes:
    domain = signing_domain(schedule, kind, message, current_epoch)
    return compute_signing_root(container_of(schedule, kind, message), domain)


def registration_signing_root(genesis_fork_version: bytes, message: Mapping[str, Any]) -> bytes:
    """The signing root of a ValidatorRegistrationV1 (JSON) under the builder domain, from the genesis
    fork version alone (what a cluster lock pins): `signing_root` on a schedule of that version only
    (the builder domain uses nothing else of a schedule)."""
    schedule = ForkSchedule((Fork("phase0", 0, genesis_fork_version),), bytes(32))
    return signing_root(schedule, Kind.VALIDATOR_REGISTRATION, message)
