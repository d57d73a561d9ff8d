"""One co-validator (share index 1 of a 3-of-4 cluster, or N nodes with the least safe M, on the
simulated chain's keys), driven event
by event: the guard tests hand it exactly the duties, peer messages, store answers and VC calls a
case needs, with real BLS partials from the other shares, and read what it does.

Timers the node asks for are kept and fired in time order by `advance`, as the runtime would.
"""

from __future__ import annotations

import heapq
from typing import Any

from covalidator.model.cluster.config import NodeConfig, hex0x, unhex
from covalidator.model.crypto import bls
from covalidator.model.duty import DutyId, DutyKind
from covalidator.model.eth.signing import Kind, signing_root
from covalidator.model.node.events import (
    DutiesFetched,
    DutiesKind,
    NodeAction,
    NodeEvent,
    PartialSignature,
    PartialSignatures,
    PeerMessage,
    PeerPayload,
    Persist,
    Persisted,
    ReplyToVC,
    Started,
    StartTimer,
    SubmitToBN,
    TimerFired,
    TimerKey,
    VCRequest,
    VCRequestKind,
    VCSubmission,
)
from covalidator.model.node.guards import GUARDS, Guards
from covalidator.model.node.state import NodeState
from covalidator.model.node.step import step
from covalidator.model.qbft.messages import Envelope, Message, MsgType, canonical_json, make_value
from covalidator.model.qbft.rules import smallest_safe_threshold
from covalidator.sim.chain import ChainParams, SimChain

ME = 1
N, M = 4, 3
ROOT_A = "0x" + "aa" * 32
ROOT_B = "0x" + "bb" * 32
ZERO = "0x" + "00" * 32


class OneNode:
    def __init__(
        self, validators: int = 2, guards: Guards = GUARDS, nodes: int = N, signer: bool = False
    ) -> None:
        self.n = nodes
        self.m = smallest_safe_threshold(nodes)
        self.chain = SimChain(
            ChainParams(validators=validators, nodes=nodes, threshold=self.m, sync_members=0, reorg_rate=0.0),
            4,
        )
        self.config = NodeConfig(
            ME, self.m, self.chain.keys, self.chain.config, guards=guards, signs_own_partials=signer
        )
        self.state = NodeState(self.config)
        self.clock = self.chain.clock
        self.now = 0
        self.timers: list[tuple[int, int, TimerKey]] = []
        self._seq = 0
        self.request_id = 0
        self.actions: list[NodeAction] = []  # everything the node did, in order

    # ---- feeding ------------------------------------------------------------------------------------

    def feed(self, event: NodeEvent) -> list[NodeAction]:
        self.state, actions = step(self.state, event)
        for action in actions:
            if isinstance(action, StartTimer):
                self._seq += 1
                heapq.heappush(self.timers, (action.at_ms, self._seq, action.key))
        self.actions.extend(actions)
        return list(actions)

    def advance(self, to_ms: int) -> list[NodeAction]:
        """Fire, in time order, every timer due by `to_ms`."""
        out: list[NodeAction] = []
        while self.timers and self.timers[0][0] <= to_ms:
            at, _, key = heapq.heappop(self.timers)
            self.now = max(self.now, at)
            out += self.feed(TimerFired(key, self.now))
        self.now = max(self.now, to_ms)
        return out

    def start(self) -> None:
        """Started a slot before genesis, validators resolved (index i = validator i)."""
        self.now = self.clock.genesis_time_ms - self.clock.slot_ms
        self.feed(Started(self.now))
        from covalidator.model.node.events import ValidatorsResolved

        self.feed(ValidatorsResolved(self.chain.validators_info(tuple(self.chain.pubkeys))))

    def pubkey(self, validator: int) -> str:
        return self.chain.pubkeys[validator]

    # ---- duties and data ----------------------------------------------------------------------------

    def attester_duty(self, validator: int, slot: int, committee_index: int = 0) -> dict[str, Any]:
        return {
            "pubkey": self.pubkey(validator),
            "validator_index": str(validator),
            "committee_index": str(committee_index),
            "committee_length": "4",
            "committees_at_slot": "1",
            "validator_committee_index": str(validator % 4),
            "slot": str(slot),
        }

    def attester_duties(self, epoch: int, *duties: dict[str, Any]) -> list[NodeAction]:
        return self.feed(DutiesFetched(DutiesKind.ATTESTER, epoch, tuple(duties), ROOT_A))

    def proposer_duties(self, epoch: int, *duties: dict[str, Any]) -> list[NodeAction]:
        return self.feed(DutiesFetched(DutiesKind.PROPOSER, epoch, tuple(duties), ROOT_A))

    def attestation_data(self, slot: int, source: int, root: str = ROOT_A, index: int = 0) -> dict[str, Any]:
        epoch = self.clock.epoch_of(slot)
        return {
            "slot": str(slot),
            "index": str(index),
            "beacon_block_root": root,
            "source": {"epoch": str(source), "root": ZERO},
            "target": {"epoch": str(epoch), "root": root},
        }

    def duty_start(self, duty: DutyId) -> int:
        return self.clock.duty_start_ms(duty)

    # ---- peers --------------------------------------------------------------------------------------

    def decided_by_peers(self, duty: DutyId, value: dict[str, Any], round: int = 1) -> list[NodeAction]:
        """Peers 2..4 committed `value` in `round`: a DECIDED with their commit certificate."""
        decided = make_value(canonical_json(value))
        commits = tuple(
            Message(MsgType.COMMIT, duty, sender, round, decided.hash) for sender in range(2, self.n + 1)
        )
        envelope = Envelope(Message(MsgType.DECIDED, duty, 2, round, decided.hash), decided.body, commits)
        return self.feed(PeerMessage(2, PeerPayload(qbft=envelope)))

    def partial(
        self, share: int, validator: int, kind: Kind, message: Any, carry: bool = False
    ) -> PartialSignature:
        """Share `share`'s partial over `message`; `carry` puts the message in it (duties without
        consensus: a peer's partial names what it signed)."""
        root = signing_root(self.chain.schedule, kind, message)
        signature = bls.sign(self.chain.shares[validator][share], root)
        return PartialSignature(
            self.pubkey(validator), hex0x(root), hex0x(signature), message if carry else None
        )

    def peer_partials(self, duty: DutyId, sender: int, partials: list[PartialSignature]) -> list[NodeAction]:
        return self.feed(PeerMessage(sender, PeerPayload(partials=PartialSignatures(duty, tuple(partials)))))

    # ---- the store and the VC -----------------------------------------------------------------------

    def persisted(self, duty: DutyId, refused: tuple[tuple[str, str], ...] = ()) -> list[NodeAction]:
        return self.feed(Persisted(duty, refused))

    def vc_request(self, kind: VCRequestKind, params: dict[str, Any]) -> tuple[int, list[NodeAction]]:
        self.request_id += 1
        return self.request_id, self.feed(VCRequest(self.request_id, kind, params))

    def vc_attestation(self, validator: int, data: dict[str, Any]) -> list[NodeAction]:
        """The VC posts its partial (share 1) over `data` as a single-bit attestation."""
        from covalidator.model.eth.beacon_data import bitlist_single
        from covalidator.model.node.events import SubmissionKind

        signature = self.partial(ME, validator, Kind.ATTESTATION, data).signature
        attestation = {
            "aggregation_bits": bitlist_single(4, validator % 4),
            "data": data,
            "signature": signature,
        }
        self.request_id += 1
        return self.feed(VCSubmission(self.request_id, SubmissionKind.ATTESTATIONS, (attestation,)))

    # ---- signer mode --------------------------------------------------------------------------------

    def sign_request(self, validator: int | str, body: dict[str, Any]) -> tuple[int, list[NodeAction]]:
        """The VC asks the Remote Signing API to sign `body` for a validator (index or identifier)."""
        from covalidator.model.node.events import SignRequest

        identifier = self.pubkey(validator) if isinstance(validator, int) else validator
        self.request_id += 1
        return self.request_id, self.feed(SignRequest(self.request_id, identifier, body))

    def sign_with_shares(self, actions: list[NodeAction]) -> list[NodeAction]:
        """Do what the runtime does with SignWithShare: sign with this node's shares, feed SharesSigned."""
        from covalidator.model.node.events import ShareSigned, SharesSigned, SignWithShare

        signed = []
        for action in of_type(actions, SignWithShare):
            for item in action.items:
                validator = self.chain.pubkeys.index(item.key.split("/", 1)[0])
                signature = bls.sign(self.chain.shares[validator][ME], unhex(item.signing_root))
                signed.append(ShareSigned(item, hex0x(signature)))
        return self.feed(SharesSigned(tuple(signed))) if signed else []

    def fork_info(self, slot: int) -> dict[str, Any]:
        from covalidator.model.eth.remote_signing import fork_info

        return fork_info(self.chain.schedule, self.clock.epoch_of(slot))


def of_type[T](actions: list[NodeAction], kind: type[T]) -> list[T]:
    return [a for a in actions if isinstance(a, kind)]


def replies(actions: list[NodeAction], request_id: int) -> list[ReplyToVC]:
    return [a for a in of_type(actions, ReplyToVC) if a.request_id == request_id]


def submissions(actions: list[NodeAction], duty: DutyId) -> list[SubmitToBN]:
    return [a for a in of_type(actions, SubmitToBN) if a.duty == duty]


def persists(actions: list[NodeAction], duty: DutyId) -> list[Persist]:
    return [a for a in of_type(actions, Persist) if a.duty == duty]


def verifies(group_pubkey: str, root: bytes, signature: str) -> bool:
    return bls.verify(unhex(group_pubkey), root, unhex(signature))


ATTESTER = DutyKind.ATTESTER
