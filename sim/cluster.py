"""The whole-cluster simulator: N co-validators, their validator clients and beacon nodes, one chain.

Decides how a simulated cluster is wired and what counts as a failure; the protocol is the node
model's (`node.step`), the network the generic seeded engine's (`simulation`), the chain and judge
`sim_chain`'s, the validator clients `sim_vc`'s.

Each co-validator is a `NodeRuntime`, a tiny runtime around `node.step`: it feeds `Started` (on a
restart: a fresh `NodeState` and what its durable store kept: slashing records, decided values,
finished outcomes), and executes the actions in order:
  FetchValidators / FetchDuties / FetchBeaconData  answered by its BN's view of the chain, after a
                     small virtual latency (now and then an error, `bn_error_rate`);
  Broadcast / Send   over the simulated network (delays, drops, duplicates, partitions before GST);
  StartTimer         an engine timer (timers die with a crash);
  Persist            check-and-record in the node's durable store with the COMPLETE EIP-3076 check
                     (`slashing.check_attestation` / `check_block` over every record it holds),
                     answered by `Persisted` (with refusals) a moment later;
  ReplyToVC          to its simulated VC, which signs and posts back (`sim_vc`);
  SignWithShare      signer mode: signed with the node's share a moment later (`SharesSigned`);
  SubmitToBN         to the chain (the judge), answered by `BNSubmitted`;
  DutyOutcome, Metric, Log  collected.
A crash loses the node's memory and its pending I/O; the durable store and the VC survive.

Byzantine co-validators run the same node model with their own share and VC, and deviate on the
wire (`ByzantineRuntime`): as leader they propose slashable data (an attestation whose source
surrounds the validator's last one) or equivocate (different proposals to different peers,
PREPAREs/COMMITs for other values), they send invalid partial signatures, or they stay silent.

Invariants, checked after every event (the first violation stops the run; its seed replays it
event for event, and the number of events processed is the shortest failing prefix):
  slashable_pair        the chain holds two slashable messages of one validator;
  invalid_submission    an honest node submitted something the chain's BLS check refuses;
  double_submission     an honest node submitted twice for one (duty, validator) in one life, or a
                        different message after a restart;
  served_before_persisted  an honest node's ReplyToVC carried decided data that this life of the
                        node had not seen `Persisted` (or restored from its store) for, or data its
                        store does not hold;
  node_exception        `node.step` raised.

Figures: duties the chain expected (attester, aggregator, proposer, sync message, sync
contribution) and how many it received validly; for the others the reason most honest nodes gave;
consensus time (decided - duty start, virtual ms) percentiles.
"""

from __future__ import annotations

import math
import random
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from covalidator.model.cluster.config import Limits, NodeConfig, hex0x, unhex
from covalidator.model.crypto import bls
from covalidator.model.duty import DutyId, DutyKind
from covalidator.model.node.events import (
    BeaconDataFailed,
    BNSubmitted,
    Broadcast,
    DecidedRecord,
    DutiesFailed,
    DutiesFetched,
    DutiesKind,
    DutyOutcome,
    FetchBeaconData,
    FetchDuties,
    FetchValidators,
    HeadChanged,
    Log,
    Metric,
    NodeAction,
    NodeEvent,
    PartialSignatures,
    PassToBN,
    PeerMessage,
    PeerPayload,
    Persist,
    Persisted,
    ReplyToVC,
    Send,
    ShareSigned,
    SharesSigned,
    ShareToSign,
    SignWithShare,
    SlashingRecord,
    Started,
    StartTimer,
    SubmitToBN,
    Tick,
    TimerFired,
    TimerKey,
    ValidatorsResolved,
)
from covalidator.model.node.fetch import (
    AggregateCall,
    AttestationDataCall,
    BeaconCall,
    BlockCall,
    ContributionCall,
    assemble,
    calls,
)
from covalidator.model.node.guards import GUARDS, Guards
from covalidator.model.node.invariants import InvariantMonitor
from covalidator.model.node.state import NodeState
from covalidator.model.node.step import step
from covalidator.model.qbft.messages import Envelope, MsgType, canonical_json, make_value
from covalidator.model.qbft.rules import fault_tolerance, signing_threshold
from covalidator.model.slashing.rules import (
    SignedAttestation,
    SignedBlock,
    attestation_watermark,
    check_attestation,
    check_block,
)
from covalidator.sim.chain import ChainParams, SimChain, draw
from covalidator.sim.network import (
    Crash,
    Effect,
    EventRecord,
    NetBroadcast,
    NetSend,
    NetTimer,
    NetworkConfig,
    Partition,
    SimNode,
    Simulator,
)
from covalidator.sim.vc import HTTP_MS, SIGN_MS, SimVC, VCAction, VCBehaviour

BN_MS = (5, 40)  # a BN answer's latency
STORE_MS = 2  # an fsync'ed write
PREFIX_TAIL = 60  # events of a failing prefix kept for the report


class ByzantineBehaviour(StrEnum):
    SLASHABLE = "slashable"  # as leader: propose data that is slashable (or malformed) for the duty
    EQUIVOCATE = "equivocate"  # as leader: different proposals to different peers; votes for others
    INVALID_PARTIALS = "invalid_partials"  # partial signatures that do not verify
    SILENT = "silent"  # sends nothing
    # as leader: a vote surrounding each validator's latest attestation where this node's own view
    # cannot see it yet (an earlier duty still undecided here): the attack the ordering rule stops
    SURROUND_UNSEEN = "surround_unseen"
    MIXED = "mixed"  # draws one of the first four per duty


BYZANTINE_BEHAVIOURS = (
    ByzantineBehaviour.SLASHABLE,
    ByzantineBehaviour.EQUIVOCATE,
    ByzantineBehaviour.INVALID_PARTIALS,
    ByzantineBehaviour.SILENT,
)


@dataclass(frozen=True)
class ClusterScenario:
    nodes: int = 4
    validators: int = 64
    epochs: int = 8
    byzantine: int = 0
    crash: int = 0
    partition: bool = False
    seed: int = 0
    byzantine_behaviour: ByzantineBehaviour = ByzantineBehaviour.MIXED
    faulty_vcs: tuple[tuple[int, VCBehaviour], ...] = ()  # (node, behaviour); node 0: drawn
    sync_members: int = 4
    committee_size: int = 64
    proposer_share: float = 0.5
    late_block_rate: float = 0.05
    reorg_rate: float = 0.25
    bn_error_rate: float = 0.0
    drop_rate: float = 0.1
    duplicate_rate: float = 0.03
    late_rate: float = 0.1
    max_gst_ms: int = 30_000
    round_duration_ms: int = 1_000
    slot_ms: int = 6_000
    store_ms: int = STORE_MS  # how long a Persist takes to be durable
    vc_jitter_ms: int = 0  # each VC request and submission up to this much later (seeded)
    signer: bool = False  # signer mode: nodes hold their shares, VCs hold no key and ask the node to sign
    guards: Guards = GUARDS  # the node's guards (another set only to plant a bug: proofs/mutants.py)
    store_recheck: bool = True  # False: the durable store records what it is given (a planted bug)
    planted_bug: str = "none"  # the name of the planted bug, for the report
    # a scenario written out rather than drawn from the seed (the seed still draws the rest):
    byzantine_nodes: tuple[int, ...] = ()  # which nodes are the Byzantine ones
    partitions: tuple[Partition, ...] = ()  # these partitions instead of a drawn one; GST at their end

    def __post_init__(self) -> None:
        assert self.nodes >= 1 and self.byzantine >= 0 and self.crash >= 0
        assert self.byzantine + self.crash <= self.nodes
        assert not self.byzantine_nodes or len(self.byzantine_nodes) == self.byzantine
        assert self.epochs >= 1 and self.validators >= 1

    @property
    def threshold(self) -> int:
        return int(signing_threshold(self.nodes))

    @property
    def faults(self) -> int:
        return self.byzantine + self.crash + len(self.faulty_vcs)

    @property
    def within_tolerance(self) -> bool:
        return self.faults <= int(fault_tolerance(self.nodes))

    def chain_params(self) -> ChainParams:
        return ChainParams(
            validators=self.validators,
            nodes=self.nodes,
            threshold=self.threshold,
            committee_size=self.committee_size,
            sync_members=self.sync_members,
            proposer_share=self.proposer_share,
            late_block_rate=self.late_block_rate,
            reorg_rate=self.reorg_rate,
            slot_ms=self.slot_ms,
            seed=self.seed,
        )


@dataclass(frozen=True)
class ClusterPlan:
    byzantine: tuple[int, ...]
    crashes: tuple[Crash, ...]
    vcs: dict[int, VCBehaviour]
    network: NetworkConfig
    end_ms: int
    stable_ms: int  # from here on: no drops, no partitions, every fault bounded (the 99% figure)


def plan_cluster(scenario: ClusterScenario, chain: SimChain) -> ClusterPlan:
    rng = random.Random(f"cluster/{scenario.seed}")
    n = scenario.nodes
    ids = list(range(1, n + 1))
    clock = chain.clock
    end_ms = clock.slot_start_ms(clock.first_slot(scenario.epochs) + 2)
    byzantine = tuple(sorted(rng.sample(ids, scenario.byzantine)))
    if scenario.byzantine_nodes:
        byzantine = tuple(sorted(scenario.byzantine_nodes))
    honest = [i for i in ids if i not in byzantine]
    gst = rng.randint(0, scenario.max_gst_ms)
    partitions: tuple[Partition, ...] = ()
    if scenario.partition and n > 1:
        gst = max(gst, 3 * clock.slot_ms)
        group = frozenset(rng.sample(ids, rng.randint(1, n // 2)))
        start = rng.randint(0, gst // 2)
        partitions = (Partition(start, gst, group),)
    if scenario.partitions:
        partitions = scenario.partitions
        gst = max(p.end_ms for p in partitions)
    crashes = []
    for node in sorted(rng.sample(honest, scenario.crash)):
        at = rng.randint(
            chain.params.genesis_ms, max(chain.params.genesis_ms + 1, end_ms - 4 * clock.slot_ms)
        )
        crashes.append(Crash(node, at, at + rng.randint(clock.slot_ms // 2, 3 * clock.slot_ms)))
    vcs: dict[int, VCBehaviour] = {}
    for node, behaviour in scenario.faulty_vcs:
        if node == 0:
            node = rng.choice([i for i in honest if i not in vcs])
        vcs[node] = behaviour
    network = NetworkConfig(
        n=n,
        drop_rate=scenario.drop_rate,
        duplicate_rate=scenario.duplicate_rate,
        late_rate=scenario.late_rate,
        late_max_ms=2 * scenario.round_duration_ms,
        gst_ms=gst,
        partitions=partitions,
        crashes=tuple(crashes),
    )
    return ClusterPlan(byzantine, tuple(crashes), vcs, network, end_ms, gst)


# ---- the durable store of one node ---------------------------------------------------------------------


@dataclass
class DurableStore:
    """What survives a crash: the slashing DB (complete: every record), decided values, outcomes."""

    attestations: dict[str, list[SignedAttestation]] = field(default_factory=dict)
    blocks: dict[str, list[SignedBlock]] = field(default_factory=dict)
    decided: dict[DutyId, DecidedRecord] = field(default_factory=dict)
    finished: set[tuple[DutyId, str]] = field(default_factory=set)
    recheck: bool = True  # False only in a planted bug

    def persist(self, action: Persist) -> tuple[tuple[str, str], ...]:
        """Check every record against the complete history, record the accepted ones, keep the value.
        One transaction: the refusals are what `Persisted` carries."""
        refused: list[tuple[str, str]] = []
        for r in action.records:
            root = unhex(r.signing_root) if r.signing_root is not None else None
            if r.slot is not None:
                block = SignedBlock(r.slot, root)
                history = self.blocks.setdefault(r.pubkey, [])
                verdict = check_block(block, history, min((b.slot for b in history), default=None))
                if verdict.safe or not self.recheck:
                    if not verdict.repeat:
                        history.append(block)
                else:
                    refused.append((r.pubkey, verdict.describe()))
            elif r.source_epoch is not None and r.target_epoch is not None:
                att = SignedAttestation(r.source_epoch, r.target_epoch, root)
                atts = self.attestations.setdefault(r.pubkey, [])
                verdict = check_attestation(att, atts, attestation_watermark(atts))
                if verdict.safe or not self.recheck:
                    if not verdict.repeat:
                        atts.append(att)
                else:
                    refused.append((r.pubkey, verdict.describe()))
        self.decided[action.duty] = DecidedRecord(action.duty, action.value, action.value_hash)
        return tuple(refused)

    def started(self, now_ms: int, horizon_ms: int) -> Started:
        slashing = [
            SlashingRecord(
                pk,
                source_epoch=a.source_epoch,
                target_epoch=a.target_epoch,
                signing_root=_hex(a.signing_root),
            )
            for pk, atts in sorted(self.attestations.items())
            for a in atts
        ] + [
            SlashingRecord(pk, slot=b.slot, signing_root=_hex(b.signing_root))
            for pk, blocks in sorted(self.blocks.items())
            for b in blocks
        ]
        decided = tuple(d for duty, d in sorted(self.decided.items()) if duty.slot >= horizon_ms)
        return Started(
            now_ms, tuple(slashing), decided, tuple(sorted(self.finished, key=lambda x: (x[0], x[1])))
        )


def _hex(root: bytes | None) -> str | None:
    return None if root is None else hex0x(root)


# ---- what the nodes share: the chain, the figures, the violations -------------------------------------


@dataclass
class RunFigures:
    outcomes: dict[tuple[DutyId, str], dict[int, str]] = field(default_factory=dict)  # -> node -> reason
    consensus_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    bn_refusals: int = 0
    double_submissions: int = 0
    served_before_persisted: int = 0
    node_exceptions: int = 0


class ClusterRun:
    def __init__(self, scenario: ClusterScenario) -> None:
        self.scenario = scenario
        self.chain = SimChain(scenario.chain_params(), scenario.epochs)
        self.plan = plan_cluster(scenario, self.chain)
        self.figures = RunFigures()
        self.violations: list[str] = []
        self.submitted: dict[tuple[int, DutyId, str], str] = {}  # (node, duty, pubkey) -> body (all lives)

    def violation(self, what: str) -> None:
        self.violations.append(what)


class NodeRuntime:
    """One honest co-validator: `node.step` plus the I/O the runtime would do (a `SimNode`)."""

    def __init__(self, run: ClusterRun, index: int, vc: SimVC) -> None:
        self.run = run
        self.index = index
        self.chain = run.chain
        self.vc = vc
        self.store = DurableStore(recheck=run.scenario.store_recheck)
        self.config = NodeConfig(
            share_index=index,
            threshold=run.scenario.threshold,
            validators=self.chain.keys,
            chain=self.chain.config,
            round_duration_ms=run.scenario.round_duration_ms,
            limits=Limits(),
            guards=run.scenario.guards,
            signs_own_partials=run.scenario.signer,
        )
        self.state: NodeState | None = None
        self.now = 0
        self.life = 0
        self._effects: list[Effect[PeerPayload]] = []
        self._pending: dict[int, Callable[[int], NodeEvent | None]] = {}
        self._seq = 0
        self.monitor = InvariantMonitor(stored=self._stored)  # persist before serve, one submission
        self._steps = 0
        self.honest = True
        self.trace: list[tuple[NodeEvent, list[NodeAction]]] | None = None  # (event, actions) per step

    # ---- SimNode ------------------------------------------------------------------------------------

    def start(self, now_ms: int) -> Iterable[Effect[PeerPayload]]:
        return self._boot(now_ms)

    def restart(self, now_ms: int) -> Iterable[Effect[PeerPayload]]:
        return self._boot(now_ms)

    def crash(self, now_ms: int) -> None:
        self.state = None
        self._pending.clear()
        self.vc.lost_requests()

    def deliver(self, now_ms: int, sender: int, payload: PeerPayload) -> Iterable[Effect[PeerPayload]]:
        self.now = now_ms
        return self._feed(PeerMessage(sender, payload))

    def timer(self, now_ms: int, tag: Hashable) -> Iterable[Effect[PeerPayload]]:
        self.now = now_ms
        assert isinstance(tag, tuple)
        what = tag[0]
        if what == "node":
            return self._feed(TimerFired(tag[1], now_ms))
        if what == "io":
            make = self._pending.pop(tag[1], None)
            self._effects = []
            event = make(now_ms) if make is not None else None  # a VC reply acts here
            effects = self._take()
            return effects + self._feed(event) if event is not None else effects
        if what == "vc":
            slot, third = tag[1], tag[2]
            self._effects = []
            self._vc_actions(self.vc.on_slot(slot, third, now_ms))
            self._arm_vc(now_ms + 1)
            return self._take()
        if what == "head":
            return self._head(tag[1])
        raise AssertionError(f"unknown timer {tag!r}")

    # ---- booting, heads, the VC's clock -----------------------------------------------------------

    def _boot(self, now_ms: int) -> list[Effect[PeerPayload]]:
        self.now = now_ms
        self.life += 1
        self.state = NodeState(self.config)
        self._pending.clear()
        horizon = self.chain.clock.slot_at(now_ms) - 2
        started = self.store.started(now_ms, horizon)
        effects = self._feed(started)
        self._effects = effects
        slot = max(0, self.chain.clock.slot_at(now_ms))
        if self.chain.arrival_ms(self.index, slot) <= now_ms:
            slot += 1
        self._effects.append(NetTimer(self.chain.arrival_ms(self.index, slot), ("head", slot)))
        self._arm_vc(now_ms)
        return self._take()

    def _arm_vc(self, from_ms: int) -> None:
        """The VC's next moment (slot start, 1/3, 2/3) at or after `from_ms`."""
        clock = self.chain.clock
        slot = clock.slot_at(from_ms)
        while True:
            for third in range(3):
                at = clock.slot_start_ms(slot) + clock.slot_ms * third // 3
                if at >= from_ms and at >= self.chain.params.genesis_ms:
                    self._effects.append(NetTimer(at, ("vc", slot, third)))
                    return
            slot += 1

    def _head(self, slot: int) -> list[Effect[PeerPayload]]:
        chain = self.chain
        epoch = chain.clock.epoch_of(slot)
        event = HeadChanged(
            slot,
            chain.block_root(slot, self.index, self.now),
            chain.attester_dependent_root(epoch, self.index, self.now),
            chain.proposer_dependent_root(epoch, self.index, self.now),
        )
        following: list[Effect[PeerPayload]] = [
            NetTimer(chain.arrival_ms(self.index, slot + 1), ("head", slot + 1))
        ]
        return following + self._feed(event)

    def _take(self) -> list[Effect[PeerPayload]]:
        effects, self._effects = self._effects, []
        return effects

    # ---- one step -----------------------------------------------------------------------------------

    def _feed(self, event: NodeEvent) -> list[Effect[PeerPayload]]:
        saved, self._effects = self._effects, []
        if self.state is None:
            self._effects = saved
            return []
        try:
            if self.now > self.state.now_ms and not isinstance(event, (Started, TimerFired)):
                # time passed: the runtime says so before the event (only Tick and TimerFired carry it)
                self.state, ticked = step(self.state, Tick(self.now))
                self._observe(Tick(self.now), ticked)
                for action in ticked:
                    self._execute(action)
            self.state, actions = step(self.state, event)
            self._observe(event, actions)
        except Exception:
            self.run.figures.node_exceptions += 1
            self.run.violation(
                f"node_exception: node {self.index} on {type(event).__name__}: {traceback.format_exc(limit=6)}"
            )
            self._effects = saved
            return []
        for action in actions:
            self._execute(action)
        effects = saved + self._effects
        self._effects = []
        return effects

    def _observe(self, event: NodeEvent, actions: tuple[NodeAction, ...]) -> None:
        """Record the step (when traced) and check the node's invariants on it: an honest node's
        violation stops the run."""
        if self.trace is not None:
            self.trace.append((event, list(actions)))
        before = len(self.monitor.violations)
        self.monitor.observe(self._steps, event, actions)
        self._steps += 1
        if self.honest:
            for violation in self.monitor.violations[before:]:
                name, _, what = violation.partition(": ")
                if name == "served_before_persisted":
                    self.run.figures.served_before_persisted += 1
                else:
                    self.run.figures.double_submissions += 1
                self.run.violation(f"{name}: node {self.index} {what}")

    def _stored(self, duty: DutyId) -> list[Any]:
        """What this node's store holds for the duty: its decided values."""
        decided = self.store.decided.get(duty)
        return list(decided.value.values()) if decided is not None and isinstance(decided.value, dict) else []

    def _io(self, delay_ms: int, make: Callable[[int], NodeEvent | None]) -> None:
        self._seq += 1
        self._pending[self._seq] = make
        self._effects.append(NetTimer(self.now + delay_ms, ("io", self._seq)))

    def _bn_delay(self, *parts: object) -> int:
        low, high = BN_MS
        return low + int(draw(self.run.scenario.seed, "bn-delay", self.index, *parts) * (high - low))

    def _execute(self, action: NodeAction) -> None:
        match action:
            case FetchValidators(pubkeys=pubkeys):
                self._io(
                    self._bn_delay("validators", self.now),
                    lambda now: ValidatorsResolved(self.chain.validators_info(pubkeys)),
                )
            case FetchDuties():
                self._io(
                    self._bn_delay("duties", action.kind, action.epoch, self.now),
                    lambda now: self._duties(action, now),
                )
            case FetchBeaconData():
                self._io(
                    self._bn_delay("data", action.duty, self.now), lambda now: self._beacon_data(action, now)
                )
            case Broadcast(payload=payload):
                self._effects.extend(self._outgoing(None, payload))
            case Send(to=to, payload=payload):
                self._effects.extend(self._outgoing(to, payload))
            case StartTimer(key=key, at_ms=at_ms):
                self._effects.append(NetTimer(at_ms, ("node", key)))
            case Persist():
                refused = self.store.persist(action)
                self._io(self.run.scenario.store_ms, lambda now: Persisted(action.duty, refused))
            case ReplyToVC() | PassToBN():
                self._vc_reply(action)
            case SignWithShare(items=items):
                signed = SharesSigned(tuple(ShareSigned(item, self._share_sign(item)) for item in items))
                self._io(SIGN_MS, lambda now: signed)
            case SubmitToBN():
                self._submit(action)
            case DutyOutcome():
                self.store.finished.add((action.duty, action.pubkey))
                if self.honest:
                    per_node = self.run.figures.outcomes.setdefault((action.duty, action.pubkey), {})
                    per_node[self.index] = "" if action.ok else action.reason
            case Metric(name=name, value=value):
                if name == "consensus_duration_ms" and self.honest:
                    self.run.figures.consensus_ms.append(value)
            case Log(level=level, message=message, fields=fields):
                if level == "error" and self.honest and len(self.run.figures.errors) < 50:
                    self.run.figures.errors.append(f"node {self.index}: {message} {dict(fields)}")

    # ---- the BN -------------------------------------------------------------------------------------

    def _bn_fails(self, *parts: object) -> bool:
        rate = self.run.scenario.bn_error_rate
        return rate > 0 and draw(self.run.scenario.seed, "bn-error", self.index, *parts) < rate

    def _duties(self, action: FetchDuties, now: int) -> NodeEvent:
        chain = self.chain
        if self._bn_fails("duties", action.kind, action.epoch, now):
            return DutiesFailed(action.kind, action.epoch, "simulated BN error")
        if action.kind is DutiesKind.ATTESTER:
            duties, root = chain.attester_duties_json(action.epoch, action.indices, self.index, now)
        elif action.kind is DutiesKind.PROPOSER:
            duties, root = chain.proposer_duties_json(action.epoch, self.index, now)
        else:
            duties, root = chain.sync_duties_json(action.epoch, action.indices), ""
        return DutiesFetched(action.kind, action.epoch, tuple(duties), root)

    def _beacon_data(self, action: FetchBeaconData, now: int) -> NodeEvent:
        """The node's BN answers the request's calls from the chain as this node sees it (node/fetch.py
        makes the calls and reads the answers, as for the runtime's BN)."""
        if self._bn_fails("data", action.duty, now):
            return BeaconDataFailed(action.duty, "simulated BN error")
        answers = [self._answer(call, now) for call in calls(action.request)]
        event: NodeEvent = assemble(action.duty, action.request, answers)
        return event

    def _answer(self, call: BeaconCall, now: int) -> Any:
        chain = self.chain
        match call:
            case AttestationDataCall(slot=slot, committee_index=ci):
                return chain.attestation_data(slot, ci, self.index, now)
            case BlockCall(slot=slot, randao_reveal=reveal):
                proposers, _ = chain.proposers_at(chain.clock.epoch_of(slot), self.index, now)
                return chain.produce_block(slot, proposers[slot], reveal, self.index, now)
            case AggregateCall(slot=slot, attestation_data_root=root):
                return chain.aggregate_attestation(slot, root)
            case ContributionCall(slot=slot, subcommittee_index=sub, beacon_block_root=root):
                return chain.sync_contribution(slot, sub, root)

    def _submit(self, action: SubmitToBN) -> None:
        invalid_before = len(self.chain.judge.invalid)
        ok, error = self.chain.submit(self.index, action.kind, action.body, self.now)
        if not ok:
            self.run.figures.bn_refusals += 1
            if self.honest:
                for v in self.chain.judge.invalid[invalid_before:]:
                    self.run.violation(f"invalid_submission: node {self.index} at {v.at_ms} ms: {v.what}")
        self._io(
            self._bn_delay("submit", action.duty, self.now),
            lambda now: BNSubmitted(action.duty, action.pubkeys, ok, error),
        )

    def _share_sign(self, item: ShareToSign) -> str:
        """Signer mode: what the runtime's ShareSigner does, with this node's share of the validator."""
        validator = self.chain.pubkeys.index(item.key.split("/", 1)[0])
        return hex0x(bls.sign(self.chain.shares[validator][self.index], unhex(item.signing_root)))

    # ---- the VC ---------------------------------------------------------------------------------------

    def _vc_reply(self, reply: ReplyToVC | PassToBN) -> None:
        def deliver(now: int) -> NodeEvent | None:
            self._vc_actions(self.vc.on_reply(reply, now))
            return None

        self._io(HTTP_MS, deliver)

    def _vc_actions(self, actions: list[VCAction]) -> None:
        for action in actions:
            event = action.event
            self._io(action.delay_ms, lambda now, event=event: event)  # type: ignore[misc]

    # ---- the wire (Byzantine nodes override) ----------------------------------------------------------

    def _outgoing(self, to: int | None, payload: PeerPayload) -> list[Effect[PeerPayload]]:
        return [NetBroadcast(payload) if to is None else NetSend(to, payload)]


class ByzantineRuntime(NodeRuntime):
    """A co-validator that runs the node model with its share and deviates on the wire."""

    def __init__(self, run: ClusterRun, index: int, vc: SimVC, behaviour: ByzantineBehaviour) -> None:
        super().__init__(run, index, vc)
        self.behaviour = behaviour
        self.honest = False
        self.peers = [i for i in range(1, run.scenario.nodes + 1) if i != index]

    def _behaviour(self, duty: DutyId) -> ByzantineBehaviour:
        if self.behaviour is not ByzantineBehaviour.MIXED:
            return self.behaviour
        pick = draw(self.run.scenario.seed, "byzantine", self.index, duty.slot, int(duty.kind))
        return BYZANTINE_BEHAVIOURS[int(pick * len(BYZANTINE_BEHAVIOURS))]

    def _outgoing(self, to: int | None, payload: PeerPayload) -> list[Effect[PeerPayload]]:
        targets = self.peers if to is None else [to]
        if payload.qbft is not None:
            env = payload.qbft
            behaviour = self._behaviour(env.message.instance)
            if behaviour is ByzantineBehaviour.SILENT:
                return []
            if env.message.sender != self.index:
                return super()._outgoing(to, payload)
            if env.message.type == MsgType.PRE_PREPARE and env.body is not None:
                if behaviour is ByzantineBehaviour.SURROUND_UNSEEN:
                    return [NetSend(t, PeerPayload(qbft=self._surround_unseen(env))) for t in targets]
                if behaviour is ByzantineBehaviour.SLASHABLE:
                    bad = self._mutated(env, slashable=True)
                    return [NetSend(t, PeerPayload(qbft=bad)) for t in targets]
                if behaviour is ByzantineBehaviour.EQUIVOCATE:
                    other = self._mutated(env, slashable=False)
                    return [
                        NetSend(t, PeerPayload(qbft=env if k % 2 else other)) for k, t in enumerate(targets)
                    ]
            if (
                env.message.type in (MsgType.PREPARE, MsgType.COMMIT)
                and behaviour is ByzantineBehaviour.EQUIVOCATE
            ):
                fake = make_value(canonical_json({"equivocation": self.index, "round": env.message.round}))
                variant = Envelope(replace(env.message, value_hash=fake.hash))
                return [
                    NetSend(t, PeerPayload(qbft=env if k % 2 else variant)) for k, t in enumerate(targets)
                ]
            return super()._outgoing(to, payload)
        assert payload.partials is not None
        behaviour = self._behaviour(payload.partials.duty)
        if behaviour is ByzantineBehaviour.SILENT:
            return []
        if behaviour is ByzantineBehaviour.INVALID_PARTIALS:
            batch = payload.partials
            forged = tuple(
                replace(p, signature=hex0x(bls.sign(0xBAD + self.index, unhex(p.signing_root))))
                for p in batch.partials
            )
            return [NetSend(t, PeerPayload(partials=PartialSignatures(batch.duty, forged))) for t in targets]
        return super()._outgoing(to, payload)

    def _surround_unseen(self, env: Envelope) -> Envelope:
        """Source epoch 0 for every validator whose new vote this node's own slashing view accepts
        (so an honest node whose view is as old as ours would accept it too); others as proposed."""
        import json

        assert env.body is not None and self.state is not None
        if env.message.instance.kind is not DutyKind.ATTESTER:
            return env
        value = json.loads(env.body)
        for key, data in value.items():
            target = int(data["target"]["epoch"])
            if self.state.slashing.check_attestation(key, SignedAttestation(0, target)).safe:
                data["source"] = {"epoch": "0", "root": "0x" + "00" * 32}
        new = make_value(canonical_json(value))
        return Envelope(replace(env.message, value_hash=new.hash), new.body, env.justification)

    def _mutated(self, env: Envelope, slashable: bool) -> Envelope:
        """The proposal with other data: slashable (a surrounding source) or merely different."""
        import json

        assert env.body is not None
        value = json.loads(env.body)
        duty = env.message.instance
        for key, data in value.items():
            if not isinstance(data, dict):
                continue
            if duty.kind is DutyKind.ATTESTER:
                if slashable:
                    data["source"] = {"epoch": "0", "root": "0x" + "00" * 32}
                else:
                    data["beacon_block_root"] = "0x" + "ee" * 32
            elif duty.kind is DutyKind.PROPOSER and isinstance(data.get("block"), dict):
                block = data["block"]
                if slashable:
                    block["slot"] = str(int(block["slot"]) + 1)  # malformed for the duty
                else:
                    block["body"]["graffiti"] = "0x" + "ee" * 32
            elif "slot" in data:
                data["slot"] = str(int(data["slot"]) + 1)
            value[key] = data
        new = make_value(canonical_json(value))
        return Envelope(replace(env.message, value_hash=new.hash), new.body, env.justification)


# ---- running it ---------------------------------------------------------------------------------------


@dataclass
class ClusterResult:
    scenario: ClusterScenario
    violation: str | None
    events: int
    prefix_tail: list[str]
    end_ms: int
    wall_s: float
    messages: int
    dropped: int
    duties: int
    succeeded: int
    failed_by_reason: dict[str, int]
    failed_by_kind: dict[str, int]
    succeeded_by_kind: dict[str, int]
    stable_duties: int
    stable_succeeded: int
    slashable_pairs: list[str]
    invalid_submissions: list[str]
    byzantine_invalid_submissions: int
    double_submissions: int
    served_before_persisted: int
    consensus_ms: list[float]
    plan: ClusterPlan
    errors: list[str]
    vc_errors: dict[str, int]
    bls_backend: str
    trace: list[tuple[NodeEvent, list[NodeAction]]] = field(default_factory=list)  # `trace_node`'s steps

    def percentile(self, p: float) -> float:
        values = sorted(self.consensus_ms)
        if not values:
            return 0.0
        return values[max(0, math.ceil(p / 100 * len(values)) - 1)]

    @property
    def success_pct(self) -> float:
        return 100.0 * self.succeeded / self.duties if self.duties else 100.0

    @property
    def stable_success_pct(self) -> float:
        return 100.0 * self.stable_succeeded / self.stable_duties if self.stable_duties else 100.0

    def to_json_dict(self) -> dict[str, Any]:
        s = self.scenario
        return {
            "nodes": s.nodes,
            "validators": s.validators,
            "epochs": s.epochs,
            "byzantine": s.byzantine,
            "crash": s.crash,
            "partition": s.partition,
            "seed": s.seed,
            "byzantine_nodes": list(self.plan.byzantine),
            "crashes": [
                {"node": c.node, "at_ms": c.at_ms, "restart_ms": c.restart_ms} for c in self.plan.crashes
            ],
            "faulty_vcs": {str(k): v.value for k, v in sorted(self.plan.vcs.items())},
            "gst_ms": self.plan.network.gst_ms,
            "within_tolerance": s.within_tolerance,
            "planted_bug": s.planted_bug,
            "duties": self.duties,
            "succeeded": self.succeeded,
            "success_pct": round(self.success_pct, 3),
            "duties_after_stable": self.stable_duties,
            "succeeded_after_stable": self.stable_succeeded,
            "success_pct_after_stable": round(self.stable_success_pct, 3),
            "failed_by_reason": dict(sorted(self.failed_by_reason.items())),
            "failed_by_kind": dict(sorted(self.failed_by_kind.items())),
            "succeeded_by_kind": dict(sorted(self.succeeded_by_kind.items())),
            "slashable_pairs": len(self.slashable_pairs),
            "slashable_pair_list": self.slashable_pairs[:10],
            "invalid_submissions": len(self.invalid_submissions),
            "invalid_submission_list": self.invalid_submissions[:10],
            "byzantine_invalid_submissions": self.byzantine_invalid_submissions,
            "double_submissions": self.double_submissions,
            "served_before_persisted": self.served_before_persisted,
            "consensus_ms_p50": self.percentile(50),
            "consensus_ms_p99": self.percentile(99),
            "consensus_decisions": len(self.consensus_ms),
            "events": self.events,
            "messages": self.messages,
            "virtual_ms": self.end_ms,
            "wall_s": round(self.wall_s, 2),
            "bls_backend": self.bls_backend,
            "vc_errors": dict(sorted(self.vc_errors.items())),
            "node_errors": self.errors[:10],
            "violation": self.violation,
            "failing_prefix_events": self.events if self.violation else 0,
            "failing_prefix_tail": self.prefix_tail if self.violation else [],
        }


def describe_event(record: EventRecord[PeerPayload]) -> str:
    head = f"#{record.index} t={record.at_ms}ms n{record.node}"
    if record.kind == "deliver":
        payload = record.payload
        if payload is not None and payload.qbft is not None:
            return f"{head} <- n{record.sender}: {payload.qbft.message.instance} {payload.qbft!r}"
        if payload is not None and payload.partials is not None:
            batch = payload.partials
            return f"{head} <- n{record.sender}: partials {batch.duty} x{len(batch.partials)}"
        return f"{head} <- n{record.sender}: {payload!r}"
    if record.kind == "timer":
        tag = record.tag
        if isinstance(tag, tuple) and tag and tag[0] == "node" and isinstance(tag[1], TimerKey):
            key = tag[1]
            return f"{head} timer {key.purpose} {key.duty} r{key.round} req{key.request_id}"
        return f"{head} timer {tag!r}"
    return f"{head} {record.kind}"


def run_cluster(
    scenario: ClusterScenario,
    *,
    on_slot: Callable[[int, int], None] | None = None,
    max_events: int = 20_000_000,
    trace_node: int | None = None,
) -> ClusterResult:
    """Simulate the scenario; deterministic in its seed. `on_slot(slot, violations)` reports progress.
    `max_events` stops early (one event fewer than a failing prefix shows that prefix is the shortest).
    `trace_node` records that node's every step (event, actions) into `ClusterResult.trace` (a life
    begins at its `Started`), as the runtime's trace recorder would."""
    started = time.perf_counter()
    return _run(ClusterRun(scenario), on_slot, max_events, started, trace_node)


def build_nodes(run: ClusterRun) -> dict[int, NodeRuntime]:
    """The co-validators of the run's plan, honest or Byzantine, each with its VC."""
    scenario, plan = run.scenario, run.plan
    runtimes: dict[int, NodeRuntime] = {}
    for i in range(1, scenario.nodes + 1):
        vc = SimVC(
            run.chain, i, plan.vcs.get(i, VCBehaviour.HONEST), scenario.vc_jitter_ms, signer=scenario.signer
        )
        if i in plan.byzantine:
            runtimes[i] = ByzantineRuntime(run, i, vc, scenario.byzantine_behaviour)
        else:
            runtimes[i] = NodeRuntime(run, i, vc)
    return runtimes


def _run(
    run: ClusterRun,
    on_slot: Callable[[int, int], None] | None,
    max_events: int,
    started: float,
    trace_node: int | None,
) -> ClusterResult:
    scenario, plan, chain = run.scenario, run.plan, run.chain
    runtimes = build_nodes(run)
    nodes: dict[int, SimNode[PeerPayload]] = dict(runtimes)
    if trace_node is not None:
        runtimes[trace_node].trace = []
    tail: deque[str] = deque(maxlen=PREFIX_TAIL)
    slot_seen = [-1]
    count = [0]

    def check(record: EventRecord[PeerPayload]) -> str | None:
        count[0] = record.index + 1
        tail.append(describe_event(record))
        slot = chain.clock.slot_at(record.at_ms) if record.at_ms >= chain.params.genesis_ms else -1
        if slot != slot_seen[0]:
            slot_seen[0] = slot
            if on_slot is not None:
                on_slot(slot, len(run.violations))
        if chain.judge.slashable_pairs and not any(v.startswith("slashable_pair") for v in run.violations):
            run.violation("slashable_pair: " + chain.judge.slashable_pairs[0])
        return run.violations[0] if run.violations else None

    simulator = Simulator(
        nodes,
        plan.network,
        random.Random(f"net/{scenario.seed}"),
        check=check,
        keep_events=False,
        max_events=max_events,
    )
    outcome = simulator.run(plan.end_ms)
    result = _summarise(
        run,
        runtimes,
        outcome.violation,
        count[0],
        list(tail),
        outcome.end_ms,
        outcome.stats.sent,
        outcome.stats.dropped,
        started,
    )
    if trace_node is not None:
        result.trace = runtimes[trace_node].trace or []
    return result


def _summarise(
    run: ClusterRun,
    runtimes: dict[int, NodeRuntime],
    violation: str | None,
    events: int,
    tail: list[str],
    end_ms: int,
    messages: int,
    dropped: int,
    started: float,
) -> ClusterResult:
    chain, plan = run.chain, run.plan
    expected = chain.expected_duties()
    done = chain.judge.done
    failed_by_reason: Counter[str] = Counter()
    failed_by_kind: Counter[str] = Counter()
    succeeded_by_kind: Counter[str] = Counter()
    stable_duties = stable_ok = succeeded = 0
    for duty, key in expected:
        kind = duty.kind.name.lower()
        ok = (duty, key) in done
        stable = chain.clock.slot_start_ms(duty.slot) >= plan.stable_ms + chain.clock.slot_ms
        if stable:
            stable_duties += 1
            stable_ok += ok
        if ok:
            succeeded += 1
            succeeded_by_kind[kind] += 1
            continue
        failed_by_kind[kind] += 1
        reasons = run.figures.outcomes.get((duty, key.split("/", 1)[0]), {})
        failures = Counter(r for r in reasons.values() if r)
        if failures:
            reason = failures.most_common(1)[0][0]
        elif reasons:
            reason = "succeeded_at_nodes_not_on_chain"
        else:
            reason = "no_outcome"
        failed_by_reason[reason] += 1
    honest = {i for i in runtimes if i not in plan.byzantine}
    vc_errors: Counter[str] = Counter()
    for i, r in runtimes.items():
        if i in honest:
            vc_errors.update(r.vc.stats.errors)
    return ClusterResult(
        scenario=run.scenario,
        violation=violation,
        events=events,
        prefix_tail=tail,
        end_ms=end_ms,
        wall_s=time.perf_counter() - started,
        messages=messages,
        dropped=dropped,
        duties=len(expected),
        succeeded=succeeded,
        failed_by_reason=dict(failed_by_reason),
        failed_by_kind=dict(failed_by_kind),
        succeeded_by_kind=dict(succeeded_by_kind),
        stable_duties=stable_duties,
        stable_succeeded=stable_ok,
        slashable_pairs=list(chain.judge.slashable_pairs),
        invalid_submissions=[
            f"node {v.node} at {v.at_ms} ms: {v.what}" for v in chain.judge.invalid if v.node in honest
        ],
        byzantine_invalid_submissions=sum(1 for v in chain.judge.invalid if v.node not in honest),
        double_submissions=run.figures.double_submissions,
        served_before_persisted=run.figures.served_before_persisted,
        consensus_ms=run.figures.consensus_ms,
        plan=plan,
        errors=run.figures.errors,
        vc_errors=dict(vc_errors),
        bls_backend=bls.backend_name(),
    )
