"""A simulated validator client: one per co-validator, holding that node's SHARE of every validator.

Decides what a DV-aware validator client does against its covalidator node, as the Beacon API's
validator flow says, in virtual time:

  slot start  proposer: its RANDAO partial goes in the block request (produceBlockV3); the returned
              block is signed and posted. Selection proofs: beacon_committee_selections (every
              attester duty of the slot) and sync_committee_selections (every sync member and
              subcommittee), with partial proofs; the node answers with the COMBINED proofs.
  1/3         attestation_data per committee, signed and posted; sync committee messages over the
              head root its BN shows.
  2/3         where the combined proof selects the validator: aggregate_attestation, signed as an
              AggregateAndProof; sync_committee_contribution, signed as a ContributionAndProof.

Signer mode (`signer=True`): the VC holds no key. Every signature is a Remote Signing API request to
its node (`SignRequest`, body from `eth.remote_signing`), answered with the cluster's GROUP signature:
the RANDAO reveal before the block request, selection proofs (AGGREGATION_SLOT,
SYNC_COMMITTEE_SELECTION_PROOF) at the slot's start instead of the selections endpoints, and each
attestation, sync committee message, block, AggregateAndProof and ContributionAndProof before it is
posted (one object per post, as its signature arrives).

Faulty behaviours: `slow` (every request and submission late, by more than a second), `missing`
(never asks, never signs), `other_data` (signs something other than what the node served). The VC
is a separate process: it survives its node's crash (its in-flight requests are lost).

It knows its duties from its BN (the simulated chain's view for its node), like a real VC.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from covalidator.model.cluster.config import hex0x
from covalidator.model.crypto import bls
from covalidator.model.eth import remote_signing, ssz_json, vc_flow
from covalidator.model.eth.beacon_data import is_aggregator, is_sync_committee_aggregator
from covalidator.model.eth.signing import Kind, signing_root
from covalidator.model.eth.vc_flow import AttesterDuty
from covalidator.model.node.events import (
    PassToBN,
    ReplyToVC,
    SignRequest,
    SubmissionKind,
    VCRequest,
    VCRequestKind,
    VCSubmission,
)
from covalidator.sim.chain import SimChain, _hash_hex, draw

HTTP_MS = 3  # one request or reply between the VC and its node
SIGN_MS = 8  # the VC's signing (and its remote signer)
SLOW_MS = 1_400  # extra delay of a slow VC on every request and submission


class VCBehaviour(StrEnum):
    HONEST = "honest"
    SLOW = "slow"
    MISSING = "missing"
    OTHER_DATA = "other_data"


VCEvent = VCRequest | VCSubmission | SignRequest
Then = Callable[[str], list["VCAction"]]  # signer mode: what to do with a group signature


@dataclass(frozen=True)
class VCAction:
    """Hand `event` to the node `delay_ms` from now."""

    delay_ms: int
    event: VCEvent


@dataclass
class VCStats:
    requests: int = 0
    submissions: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # request kind / submission kind -> non-200s


@dataclass
class _Pending:
    kind: str  # a VCRequestKind value, or "submit:<kind>"
    slot: int
    context: Any = None


class SimVC:
    def __init__(
        self,
        chain: SimChain,
        node: int,
        behaviour: VCBehaviour = VCBehaviour.HONEST,
        jitter_ms: int = 0,
        signer: bool = False,
    ) -> None:
        self.chain = chain
        self.signer = signer  # signer mode: no key here, the node signs
        self.node = node  # share index
        self.behaviour = behaviour
        self.jitter_ms = jitter_ms  # each request and submission up to this much later (seeded)
        self.secrets = {chain.pubkeys[v]: chain.shares[v][node] for v in range(chain.params.validators)}
        self.next_id = node * 10_000_000
        self.pending: dict[int, _Pending] = {}
        self.data_roots: dict[tuple[int, int], str] = {}  # (slot, committee) -> attestation data root
        self.proofs: dict[tuple[int, int], str] = {}  # (slot, validator index) -> combined proof
        self.sync_proofs: dict[tuple[int, int, int], str] = {}  # (slot, index, subcommittee) -> proof
        self.sync_roots: dict[int, str] = {}  # slot -> the block root its sync messages signed
        self.stats = VCStats()

    # ---- helpers ----------------------------------------------------------------------------------------

    def _sign(self, pubkey: str, kind: Kind, message: Any) -> str:
        return hex0x(bls.sign(self.secrets[pubkey], signing_root(self.chain.schedule, kind, message)))

    def _sign_as(self, index: int, kind: Kind, message: Mapping[str, Any]) -> str:
        """`vc_flow.Sign`: sign as the validator at `index` (with this node's share)."""
        return self._sign(self.chain.pubkeys[index], kind, message)

    def _delay(self, base: int) -> int:
        jitter = 0
        if self.jitter_ms:
            jitter = int(draw(self.chain.params.seed, "vc-jitter", self.node, self.next_id) * self.jitter_ms)
        return base + jitter + (SLOW_MS if self.behaviour is VCBehaviour.SLOW else 0)

    def _request(self, kind: VCRequestKind, slot: int, params: Any, context: Any = None) -> VCAction:
        self.next_id += 1
        self.pending[self.next_id] = _Pending(kind.value, slot, context)
        self.stats.requests += 1
        return VCAction(self._delay(HTTP_MS), VCRequest(self.next_id, kind, params))

    def _submit(self, kind: SubmissionKind, slot: int, objects: list[Any]) -> VCAction:
        self.next_id += 1
        self.pending[self.next_id] = _Pending("submit:" + kind.value, slot)
        self.stats.submissions += 1
        return VCAction(self._delay(SIGN_MS + HTTP_MS), VCSubmission(self.next_id, kind, tuple(objects)))

    def _ask_signer(
        self, slot: int, index: int, kind: Kind, message: Mapping[str, Any], then: Then
    ) -> VCAction:
        """Signer mode: ask the node's Remote Signing API to sign `message` as validator `index`."""
        self.next_id += 1
        self.pending[self.next_id] = _Pending("sign:" + kind.value, slot, then)
        self.stats.requests += 1
        body = remote_signing.sign_request(self.chain.schedule, kind, message)
        return VCAction(self._delay(HTTP_MS), SignRequest(self.next_id, self.chain.pubkeys[index], body))

    def _signed(
        self, slot: int, submission: SubmissionKind, build: Callable[[vc_flow.Sign], list[dict[str, Any]]]
    ) -> list[VCAction]:
        """Objects that each carry one signature, posted: signed here with the share, or (signer mode)
        each posted once the node's signer API answers with its group signature."""
        if not self.signer:
            return [self._submit(submission, slot, build(self._sign_as))]
        objects, asks = vc_flow.unsigned(build)
        return [
            self._ask_signer(
                slot,
                index,
                kind,
                message,
                lambda sig, obj=obj: [self._submit(submission, slot, [{**obj, "signature": sig}])],  # type: ignore[misc]
            )
            for obj, (index, kind, message) in zip(objects, asks, strict=True)
        ]

    def _attester_duties(self, slot: int, now_ms: int) -> list[AttesterDuty]:
        epoch = self.chain.clock.epoch_of(slot)
        duties, _ = self.chain.attester_duties_at(epoch, self.node, now_ms)
        return [d for _, d in sorted(duties.items()) if d.slot == slot]

    def _sync_members(self, slot: int) -> dict[int, int]:
        return self.chain.sync_committee(self.chain.sync_period(slot))

    def lost_requests(self) -> None:
        """The node crashed: requests in flight never get their answer."""
        self.pending.clear()

    def prune(self, before_slot: int) -> None:
        for old in [k for k in self.data_roots if k[0] < before_slot]:
            del self.data_roots[old]
        for old in [k for k in self.proofs if k[0] < before_slot]:
            del self.proofs[old]
        for old3 in [k for k in self.sync_proofs if k[0] < before_slot]:
            del self.sync_proofs[old3]
        for slot in [s for s in self.sync_roots if s < before_slot]:
            del self.sync_roots[slot]
        for rid in [r for r, p in self.pending.items() if p.slot < before_slot]:
            del self.pending[rid]

    # ---- the slot's three moments --------------------------------------------------------------------

    def on_slot(self, slot: int, third: int, now_ms: int) -> list[VCAction]:
        """What the VC does at the start (0), 1/3 (1) or 2/3 (2) of `slot`."""
        if self.behaviour is VCBehaviour.MISSING:
            return []
        if third == 0:
            self.prune(slot - 2 * self.chain.clock.slots_per_epoch)
            return self._slot_start(slot, now_ms)
        if third == 1:
            return self._one_third(slot, now_ms)
        return self._two_thirds(slot, now_ms)

    def _slot_start(self, slot: int, now_ms: int) -> list[VCAction]:
        chain = self.chain
        actions = []
        epoch = chain.clock.epoch_of(slot)
        proposers, _ = chain.proposers_at(epoch, self.node, now_ms)
        proposer = proposers.get(slot)
        if proposer is not None and proposer < chain.params.validators:
            pubkey = chain.pubkeys[proposer]

            def block_request(reveal: str, pubkey: str = pubkey) -> list[VCAction]:
                params = {"slot": str(slot), "randao_reveal": reveal}
                return [self._request(VCRequestKind.BLOCK, slot, params, pubkey)]

            randao = {"epoch": str(epoch)}
            if self.signer:
                actions.append(self._ask_signer(slot, proposer, Kind.RANDAO_REVEAL, randao, block_request))
            else:
                actions += block_request(self._sign(pubkey, Kind.RANDAO_REVEAL, randao))
        duties = self._attester_duties(slot, now_ms)
        if self.signer:  # the group selection proofs straight from the signer: no selections endpoints
            return actions + self._signer_selections(slot, duties)
        if duties:
            selections = vc_flow.beacon_committee_selections(slot, [d.index for d in duties], self._sign_as)
            actions.append(
                self._request(
                    VCRequestKind.BEACON_COMMITTEE_SELECTIONS,
                    slot,
                    {"selections": selections},
                    {d.index: d for d in duties},
                )
            )
        members = self._sync_members(slot)
        if members:
            pairs = [
                (index, position // self.chain.preset.sync_subcommittee_size)
                for index, position in sorted(members.items())
            ]
            sync_selections = vc_flow.sync_committee_selections(slot, pairs, self._sign_as)
            actions.append(
                self._request(VCRequestKind.SYNC_COMMITTEE_SELECTIONS, slot, {"selections": sync_selections})
            )
        return actions

    def _signer_selections(self, slot: int, duties: list[AttesterDuty]) -> list[VCAction]:
        actions = []
        for d in duties:

            def keep(proof: str, index: int = d.index) -> list[VCAction]:
                self.proofs[(slot, index)] = proof
                return []

            actions.append(self._ask_signer(slot, d.index, Kind.AGGREGATION_SLOT, {"slot": str(slot)}, keep))
        for index, position in sorted(self._sync_members(slot).items()):
            sub = position // self.chain.preset.sync_subcommittee_size

            def keep_sync(proof: str, index: int = index, sub: int = sub) -> list[VCAction]:
                self.sync_proofs[(slot, index, sub)] = proof
                return []

            message = {"slot": str(slot), "subcommittee_index": str(sub)}
            actions.append(
                self._ask_signer(slot, index, Kind.SYNC_COMMITTEE_SELECTION_PROOF, message, keep_sync)
            )
        return actions

    def _one_third(self, slot: int, now_ms: int) -> list[VCAction]:
        chain = self.chain
        actions = []
        for committee, duties in vc_flow.by_committee(self._attester_duties(slot, now_ms)).items():
            actions.append(
                self._request(
                    VCRequestKind.ATTESTATION_DATA,
                    slot,
                    {"slot": str(slot), "committee_index": str(committee)},
                    duties,
                )
            )
        members = self._sync_members(slot)
        if members:
            _, root = chain.head_root(self.node, now_ms, at_most=slot)
            self.sync_roots[slot] = root
            signed_root = root
            if self.behaviour is VCBehaviour.OTHER_DATA:
                signed_root = _hash_hex("other", slot)
            actions += self._signed(
                slot,
                SubmissionKind.SYNC_COMMITTEE_MESSAGES,
                lambda sign: vc_flow.sync_committee_messages(slot, signed_root, sorted(members), sign),
            )
        return actions

    def _two_thirds(self, slot: int, now_ms: int) -> list[VCAction]:
        chain = self.chain
        actions = []
        for d in self._attester_duties(slot, now_ms):
            proof = self.proofs.get((slot, d.index))
            root = self.data_roots.get((slot, d.committee_index))
            if proof is None or root is None or not is_aggregator(chain.config, d.committee_length, proof):
                continue
            params = {
                "slot": str(slot),
                "attestation_data_root": root,
                "committee_index": str(d.committee_index),
            }
            actions.append(self._request(VCRequestKind.AGGREGATE_ATTESTATION, slot, params, (d.index, proof)))
        root = self.sync_roots.get(slot)
        if root is not None:
            for (s, index, sub), proof in sorted(self.sync_proofs.items()):
                if s != slot or not is_sync_committee_aggregator(chain.config, proof):
                    continue
                params = {"slot": str(slot), "subcommittee_index": str(sub), "beacon_block_root": root}
                actions.append(self._request(VCRequestKind.SYNC_CONTRIBUTION, slot, params, (index, proof)))
        return actions

    # ---- the node's answers ------------------------------------------------------------------------

    def on_reply(self, reply: ReplyToVC | PassToBN, now_ms: int) -> list[VCAction]:
        pending = self.pending.pop(reply.request_id, None)
        if pending is None:
            return []
        if isinstance(reply, PassToBN) or reply.status != 200:
            self.stats.errors[pending.kind] = self.stats.errors.get(pending.kind, 0) + 1
            return []
        if pending.kind.startswith("submit:") or self.behaviour is VCBehaviour.MISSING:
            return []
        body = reply.body if isinstance(reply.body, dict) else {}
        if pending.kind.startswith("sign:"):
            then: Then = pending.context
            return then(str(body.get("signature", "")))
        data: Any = body.get("data")
        chain = self.chain
        slot = pending.slot
        kind = VCRequestKind(pending.kind)
        other = self.behaviour is VCBehaviour.OTHER_DATA
        if kind is VCRequestKind.BLOCK:
            block = dict(data)
            if other:
                block = {**block, "state_root": _hash_hex("other", slot)}
            index = chain.pubkeys.index(pending.context)
            return self._signed(
                slot,
                SubmissionKind.BLOCK,
                lambda sign: [{"message": block, "signature": sign(index, Kind.BLOCK, block)}],
            )
        if kind is VCRequestKind.ATTESTATION_DATA:
            duties: list[AttesterDuty] = pending.context
            if other:
                data = {**data, "beacon_block_root": _hash_hex("other", slot)}
            self.data_roots[(slot, duties[0].committee_index)] = (
                "0x" + ssz_json.hash_tree_root(chain.spec.AttestationData, data).hex()
            )
            return self._signed(
                slot, SubmissionKind.ATTESTATIONS, lambda sign: vc_flow.attestations(data, duties, sign)
            )
        if kind is VCRequestKind.BEACON_COMMITTEE_SELECTIONS:
            for item in data or []:
                self.proofs[(int(item["slot"]), int(item["validator_index"]))] = item["selection_proof"]
            return []
        if kind is VCRequestKind.SYNC_COMMITTEE_SELECTIONS:
            for item in data or []:
                key = (int(item["slot"]), int(item["validator_index"]), int(item["subcommittee_index"]))
                self.sync_proofs[key] = item["selection_proof"]
            return []
        index, proof = pending.context
        if other:
            data = {**data, "signature": _other_signature(slot)}
        if kind is VCRequestKind.AGGREGATE_ATTESTATION:
            return self._signed(
                slot,
                SubmissionKind.AGGREGATE_AND_PROOFS,
                lambda sign: [vc_flow.signed_aggregate_and_proof(index, data, proof, sign)],
            )
        return self._signed(
            slot,
            SubmissionKind.CONTRIBUTION_AND_PROOFS,
            lambda sign: [vc_flow.signed_contribution_and_proof(index, data, proof, sign)],
        )


def _other_signature(slot: int) -> str:
    return hex0x(bls.sign(1 + slot, b"other data"))
