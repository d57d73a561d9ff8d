"""The vocabulary between the node model and its drivers (runtime, simulator, tests, replay).

Decides what can happen to a co-validator (events, in) and what it can ask for (actions, out); holds
no logic. Every type is a frozen dataclass that round-trips through dataclasses-json, so a trace of
events replays into the same actions. Beacon-API objects travel as their JSON (`Json`), exactly as the
Beacon API spells them; pubkeys as "0x" hex (group pubkeys unless a field says share).

Events (what the world tells the node):
  Started        the node (re)started: time, and what its durable store holds (slashing records,
                 decided values, finished duties). Everything else was lost.
  Tick           time passed (the runtime also fires StartTimer deadlines as TimerFired).
  ValidatorsResolved  the BN's indices and statuses for the cluster's validators.
  DutiesFetched / DutiesFailed        the BN's duties for an epoch (or sync period).
  BeaconDataFetched / BeaconDataFailed  what this node's BN proposes for a duty.
  PeerMessage    an authenticated message from co-validator `sender` (QBFT or partial signatures).
  VCRequest      the VC asks for data to sign (attestation data, a block, an aggregate, a contribution)
                 or for combined selection proofs; it waits for a ReplyToVC with the same request id.
  VCSubmission   the VC posts signed objects (its partial signatures).
  SignRequest    the VC asks the node's Remote Signing API to sign (signer mode): the identifier of
                 the path and the JSON body as the API spells them; answered with a ReplyToVC.
  SharesSigned   the runtime signed what a SignWithShare asked, with this node's share keys.
  Persisted      the store committed (fsync'ed) a Persist; `refused` lists validators whose messages the
                 store's slashing check refused (they are never served).
  BNSubmitted    the BN's answer to a SubmitToBN.
  HeadChanged    a new head, with the dependent roots that say whether duties must be fetched again.
  TimerFired     a StartTimer deadline passed.

Actions (what the node asks the runtime to do, in order):
  FetchValidators, FetchDuties, FetchBeaconData (a typed request per duty kind: node/fetch.py),
  Broadcast, Send, StartTimer, Persist, ReplyToVC, PassToBN (the BN answers the VC's request itself),
  SignWithShare (signer mode: sign these roots with this node's share keys; answered by SharesSigned),
  SubmitToBN, DutyOutcome (a duty ended for a validator: success or a named reason), Log, Metric.

Encoding to and from trace JSON: node/codec.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from dataclasses_json import DataClassJsonMixin, config

from covalidator.model.duty import DutiesKind, DutyId, DutyKind, SubmissionKind, VCRequestKind
from covalidator.model.node.requests import BeaconRequest, request_from_json, request_to_json
from covalidator.model.qbft.messages import Envelope

__all__ = ["DutiesKind", "SubmissionKind", "VCRequestKind"]  # the duty vocabulary, re-exported

Json = Any  # a JSON value: dict / list / str / int / bool / None


# --------------------------------------------------------------------------------------------------
# Peer payloads.


@dataclass(frozen=True)
class PartialSignature(DataClassJsonMixin):
    pubkey: str  # the group pubkey of the validator
    signing_root: str  # 0x hex of the root the partial signs
    signature: str  # 0x hex of the partial signature
    message: Json = None  # the signed object for duties without consensus (RANDAO epoch, selection, root)


@dataclass(frozen=True)
class PartialSignatures(DataClassJsonMixin):
    duty: DutyId
    partials: tuple[PartialSignature, ...]
    # the sender is still waiting to combine these (signer mode, sent again): peers answer with theirs
    waiting: bool = False


@dataclass(frozen=True)
class PoolPartial(DataClassJsonMixin):
    """One operator's partial over a message without a slot (node/pool.py): a voluntary exit or a
    builder registration. Carries its own share index, so a node may relay what it holds (each is
    verified against that share's pubkey, whoever sends it)."""

    kind: DutyKind  # VOLUNTARY_EXIT or BUILDER_REGISTRATION
    pubkey: str  # the validator's group pubkey
    message: Json  # VoluntaryExit / ValidatorRegistrationV1, Beacon-API JSON
    signing_root: str
    share: int  # the signer's share index
    signature: str


@dataclass(frozen=True)
class PeerPayload(DataClassJsonMixin):
    """Exactly one of the three is set."""

    qbft: Envelope | None = None
    partials: PartialSignatures | None = None
    pool: tuple[PoolPartial, ...] | None = None


# --------------------------------------------------------------------------------------------------
# Events.


@dataclass(frozen=True)
class SlashingRecord(DataClassJsonMixin):
    """One message of a validator's slashing history (what the store holds)."""

    pubkey: str
    slot: int | None = None  # a block
    source_epoch: int | None = None  # an attestation
    target_epoch: int | None = None
    signing_root: str | None = None


@dataclass(frozen=True)
class DecidedRecord(DataClassJsonMixin):
    duty: DutyId
    value: Json  # the decided map pubkey -> data
    value_hash: str


@dataclass(frozen=True)
class Started(DataClassJsonMixin):
    now_ms: int
    slashing: tuple[
        SlashingRecord, ...
    ] = ()  # recent records of the cluster's validators (at least the latest)
    decided: tuple[DecidedRecord, ...] = ()
    finished: tuple[tuple[DutyId, str], ...] = ()  # (duty, pubkey) whose outcome is already recorded
    pool: tuple[PoolPartial, ...] = ()  # partials over exits and registrations (node/pool.py)


@dataclass(frozen=True)
class Tick(DataClassJsonMixin):
    now_ms: int


@dataclass(frozen=True)
class ValidatorInfo(DataClassJsonMixin):
    pubkey: str
    index: int
    status: str = "active_ongoing"


@dataclass(frozen=True)
class ValidatorsResolved(DataClassJsonMixin):
    validators: tuple[ValidatorInfo, ...]


@dataclass(frozen=True)
class DutiesFetched(DataClassJsonMixin):
    kind: DutiesKind
    epoch: int
    duties: tuple[Json, ...]  # Beacon-API AttesterDuty / ProposerDuty / SyncDuty objects
    dependent_root: str = ""


@dataclass(frozen=True)
class DutiesFailed(DataClassJsonMixin):
    kind: DutiesKind
    epoch: int
    error: str


@dataclass(frozen=True)
class BeaconDataFetched(DataClassJsonMixin):
    duty: DutyId
    data: Json  # per kind: see FetchBeaconData


@dataclass(frozen=True)
class BeaconDataFailed(DataClassJsonMixin):
    duty: DutyId
    error: str


@dataclass(frozen=True)
class PeerMessage(DataClassJsonMixin):
    sender: int  # share index 1..N, authenticated by the transport
    payload: PeerPayload


@dataclass(frozen=True)
class VCRequest(DataClassJsonMixin):
    request_id: int
    kind: VCRequestKind
    params: Json


@dataclass(frozen=True)
class VCSubmission(DataClassJsonMixin):
    request_id: int
    kind: SubmissionKind
    objects: tuple[Json, ...]
    version: str = ""  # the Eth-Consensus-Version header, when the VC sent one


@dataclass(frozen=True)
class SignRequest(DataClassJsonMixin):
    request_id: int
    identifier: str  # the path's public key, as the VC sent it
    body: Json  # the request body as parsed JSON (anything: the model checks it)


@dataclass(frozen=True)
class ShareToSign(DataClassJsonMixin):
    duty: DutyId
    key: str  # the validator's key in the duty record (group pubkey, or "pubkey/subcommittee")
    signing_root: str  # 0x hex
    message: Json = None  # the signed object, for duties without consensus


@dataclass(frozen=True)
class ShareSigned(DataClassJsonMixin):
    item: ShareToSign
    signature: str  # 0x hex: this node's partial signature over item.signing_root


@dataclass(frozen=True)
class SharesSigned(DataClassJsonMixin):
    signed: tuple[ShareSigned, ...]


@dataclass(frozen=True)
class Persisted(DataClassJsonMixin):
    duty: DutyId
    refused: tuple[tuple[str, str], ...] = ()  # (pubkey, the store's refusal)


@dataclass(frozen=True)
class BNSubmitted(DataClassJsonMixin):
    duty: DutyId
    pubkeys: tuple[str, ...]
    ok: bool
    error: str = ""


@dataclass(frozen=True)
class HeadChanged(DataClassJsonMixin):
    slot: int
    block_root: str
    previous_duty_dependent_root: str = ""
    current_duty_dependent_root: str = ""


class TimerPurpose(StrEnum):
    EPOCH = "epoch"  # an epoch boundary: fetch duties, prune memory
    START = "start"  # a duty's start (per kind: model/duty.py)
    DEADLINE = "deadline"  # a duty's deadline
    REFETCH = "refetch"  # ask the BN again for a duty's data
    QBFT_ROUND = "qbft_round"  # a QBFT round's end
    QBFT_EXPIRY = "qbft_expiry"  # a QBFT instance's end
    REQUEST = "request"  # a held VC request's deadline


@dataclass(frozen=True)
class TimerKey(DataClassJsonMixin):
    purpose: TimerPurpose
    duty: DutyId | None = None
    round: int = 0
    request_id: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "purpose", TimerPurpose(self.purpose))  # its name, from JSON or a caller


@dataclass(frozen=True)
class TimerFired(DataClassJsonMixin):
    key: TimerKey
    now_ms: int


NodeEvent = (
    Started
    | Tick
    | ValidatorsResolved
    | DutiesFetched
    | DutiesFailed
    | BeaconDataFetched
    | BeaconDataFailed
    | PeerMessage
    | VCRequest
    | VCSubmission
    | SignRequest
    | SharesSigned
    | Persisted
    | BNSubmitted
    | HeadChanged
    | TimerFired
)

# --------------------------------------------------------------------------------------------------
# Actions.


@dataclass(frozen=True)
class FetchValidators(DataClassJsonMixin):
    pubkeys: tuple[str, ...]


@dataclass(frozen=True)
class FetchDuties(DataClassJsonMixin):
    kind: DutiesKind
    epoch: int
    indices: tuple[int, ...]


@dataclass(frozen=True)
class FetchBeaconData(DataClassJsonMixin):
    """Ask this node's BN for the data of a duty: one typed request per duty kind, and what the answer
    is, in node/fetch.py (which also turns the request into BN calls, for the runtime and the simulator)."""

    duty: DutyId
    request: BeaconRequest = field(metadata=config(encoder=request_to_json, decoder=request_from_json))


@dataclass(frozen=True)
class Broadcast(DataClassJsonMixin):
    payload: PeerPayload


@dataclass(frozen=True)
class Send(DataClassJsonMixin):
    to: int  # share index
    payload: PeerPayload


@dataclass(frozen=True)
class StartTimer(DataClassJsonMixin):
    key: TimerKey
    at_ms: int


@dataclass(frozen=True)
class Persist(DataClassJsonMixin):
    """Record durably BEFORE anything later in the same step runs: the decided value, and the
    slashing records (check-and-record in one transaction; the store answers with Persisted). If the
    store cannot commit, the runner retries it and the step's other actions still run: nothing the
    model emits may depend on this being durable except through Persisted (serving and signing wait
    for it; `covalidator prove`'s persist_before_serve)."""

    duty: DutyId
    value: Json
    value_hash: str
    records: tuple[SlashingRecord, ...] = ()


@dataclass(frozen=True)
class PersistPool(DataClassJsonMixin):
    """Record these partials durably BEFORE anything later in the same step runs (an exit's partials
    must survive restarts: gathering M operators may take days). No answer event."""

    partials: tuple[PoolPartial, ...]


@dataclass(frozen=True)
class ReplyToVC(DataClassJsonMixin):
    request_id: int
    status: int  # HTTP status
    body: Json
    version: str = ""  # Eth-Consensus-Version, where the endpoint has one
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class SignWithShare(DataClassJsonMixin):
    """Sign each root with this node's share of the item's validator (signer mode: the node holds its
    share keys); the runtime answers with one SharesSigned event."""

    items: tuple[ShareToSign, ...]


@dataclass(frozen=True)
class PassToBN(DataClassJsonMixin):
    """Not the cluster's to answer: the VC's request goes to the BN as it is (an aggregation request of
    a VC whose selection proofs were never combined)."""

    request_id: int


@dataclass(frozen=True)
class SubmitToBN(DataClassJsonMixin):
    duty: DutyId
    kind: SubmissionKind
    body: Json  # the JSON list (or object, for blocks) to post
    version: str = ""
    pubkeys: tuple[str, ...] = ()


@dataclass(frozen=True)
class DutyOutcome(DataClassJsonMixin):
    duty: DutyId
    pubkey: str
    ok: bool
    reason: str = ""  # a named reason when not ok (see model/outcomes.py)
    missing_peers: tuple[int, ...] = ()  # share indices whose partials never arrived


@dataclass(frozen=True)
class Log(DataClassJsonMixin):
    level: str
    message: str
    fields: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Metric(DataClassJsonMixin):
    name: str
    labels: tuple[tuple[str, str], ...] = ()
    value: float = 1.0  # counters: increment; histograms: observation


NodeAction = (
    FetchValidators
    | FetchDuties
    | FetchBeaconData
    | Broadcast
    | Send
    | StartTimer
    | Persist
    | PersistPool
    | ReplyToVC
    | PassToBN
    | SignWithShare
    | SubmitToBN
    | DutyOutcome
    | Log
    | Metric
)

EVENT_TYPES: dict[str, type[DataClassJsonMixin]] = {
    cls.__name__: cls
    for cls in (
        Started,
        Tick,
        ValidatorsResolved,
        DutiesFetched,
        DutiesFailed,
        BeaconDataFetched,
        BeaconDataFailed,
        PeerMessage,
        VCRequest,
        VCSubmission,
        SignRequest,
        SharesSigned,
        Persisted,
        BNSubmitted,
        HeadChanged,
        TimerFired,
    )
}
ACTION_TYPES: dict[str, type[DataClassJsonMixin]] = {
    cls.__name__: cls
    for cls in (
        FetchValidators,
        FetchDuties,
        FetchBeaconData,
        Broadcast,
        Send,
        StartTimer,
        Persist,
        PersistPool,
        ReplyToVC,
        PassToBN,
        SignWithShare,
        SubmitToBN,
        DutyOutcome,
        Log,
        Metric,
    )
}
