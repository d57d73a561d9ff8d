"""Duty identity, and the one table of what each duty kind is.

One QBFT instance runs per `DutyId(slot, kind)` and decides the data of every cluster validator that
has that duty in that slot (ARCHITECTURE.md, performance shape). `kind.value` is the kind index used
by the leader rule `(slot + kind_index + round) mod N`, so it must never be renumbered.

`KINDS` says, per kind, everything the node treats differently: whether its data is decided by
consensus (and so persisted before it is served), whether its signatures are slashable (the ordering
rule), when in the slot it starts and when it is given up, what its combined signature is posted
as, which VC request asks for it, which selection creates it, which BN duties announce it, and what
the partials of a duty without consensus sign. Nothing else in the model keeps a per-kind table.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum

from covalidator.model.eth.signing import Kind


class DutyKind(IntEnum):
    PROPOSER = 0
    ATTESTER = 1
    AGGREGATOR = 2
    SYNC_MESSAGE = 3
    SYNC_CONTRIBUTION = 4
    RANDAO = 5
    PREPARE_AGGREGATOR = 6  # beacon committee selection proofs
    PREPARE_SYNC_CONTRIBUTION = 7  # sync committee selection proofs
    BUILDER_REGISTRATION = 8  # a builder registration (node/pool.py: no slot, no consensus)
    VOLUNTARY_EXIT = 9  # a voluntary exit (node/pool.py)


@dataclass(frozen=True, order=True)
class DutyId:
    slot: int
    kind: DutyKind

    def __str__(self) -> str:
        return f"{self.kind.name.lower()}@{self.slot}"


class DutiesKind(StrEnum):
    """The BN's duties endpoints."""

    ATTESTER = "attester"
    PROPOSER = "proposer"
    SYNC = "sync"


class VCRequestKind(StrEnum):
    ATTESTATION_DATA = "attestation_data"  # params: slot, committee_index
    BLOCK = "block"  # params: slot, randao_reveal (this VC's partial), graffiti?, blinded?
    AGGREGATE_ATTESTATION = "aggregate_attestation"  # params: slot, attestation_data_root, committee_index?
    SYNC_CONTRIBUTION = "sync_contribution"  # params: slot, subcommittee_index, beacon_block_root
    # params: selections [{validator_index, slot, selection_proof}]
    BEACON_COMMITTEE_SELECTIONS = "beacon_committee_selections"
    # params: selections [{validator_index, slot, subcommittee_index, selection_proof}]
    SYNC_COMMITTEE_SELECTIONS = "sync_committee_selections"
    SIGN = "sign"  # the Remote Signing API (signer mode): params = the request's identifier and body


class SubmissionKind(StrEnum):
    ATTESTATIONS = "attestations"  # Attestation (phase0..deneb) or SingleAttestation (electra+) objects
    BLOCK = "block"  # one SignedBeaconBlock (or blinded, or block contents)
    AGGREGATE_AND_PROOFS = "aggregate_and_proofs"
    SYNC_COMMITTEE_MESSAGES = "sync_committee_messages"
    CONTRIBUTION_AND_PROOFS = "contribution_and_proofs"
    # node/pool.py: messages without a slot
    VOLUNTARY_EXIT = "voluntary_exit"  # one SignedVoluntaryExit (a VC's: a partial over a share key)
    REGISTRATIONS = "validator_registrations"  # SignedValidatorRegistrationV1 objects
    PREPARE_PROPOSER = "prepare_beacon_proposer"  # [{validator_index, fee_recipient}]
    # an operator's partial over a NEW registration (`covalidator registration sign`)
    OPERATOR_REGISTRATION = "operator_registration"


@dataclass(frozen=True)
class KindRules:
    consensus: bool  # its data is decided by QBFT, so persisted before it is served
    slashable: bool  # its signatures can be slashed: the ordering rule applies
    start: tuple[int, int]  # the fraction of the slot at which it starts
    deadline_slots: int  # slots after its slot's start at which it is given up
    submission: SubmissionKind | None = None  # what its combined signature is posted to the BN as
    vc_request: VCRequestKind | None = None  # the VC request that asks for its data (or its proofs)
    selected_by: DutyKind | None = None  # the selection duty whose combined proof creates it
    fetched_as: DutiesKind | None = None  # the BN duties that announce it
    partial_message: Kind | None = None  # without consensus: what its partials sign


KINDS: dict[DutyKind, KindRules] = {
    # start: the consensus specs' validator guide. A block is useless after its slot; attestations,
    # aggregates, sync messages and contributions still count a slot or more later: two slots.
    DutyKind.PROPOSER: KindRules(
        True, True, (0, 1), 1, SubmissionKind.BLOCK, VCRequestKind.BLOCK, fetched_as=DutiesKind.PROPOSER
    ),
    DutyKind.ATTESTER: KindRules(
        True,
        True,
        (1, 3),
        2,
        SubmissionKind.ATTESTATIONS,
        VCRequestKind.ATTESTATION_DATA,
        fetched_as=DutiesKind.ATTESTER,
    ),
    DutyKind.AGGREGATOR: KindRules(
        True,
        False,
        (2, 3),
        2,
        SubmissionKind.AGGREGATE_AND_PROOFS,
        VCRequestKind.AGGREGATE_ATTESTATION,
        selected_by=DutyKind.PREPARE_AGGREGATOR,
    ),
    DutyKind.SYNC_MESSAGE: KindRules(
        False,
        False,
        (1, 3),
        2,
        SubmissionKind.SYNC_COMMITTEE_MESSAGES,
        fetched_as=DutiesKind.SYNC,
        partial_message=Kind.SYNC_COMMITTEE_MESSAGE,
    ),
    DutyKind.SYNC_CONTRIBUTION: KindRules(
        True,
        False,
        (2, 3),
        2,
        SubmissionKind.CONTRIBUTION_AND_PROOFS,
        VCRequestKind.SYNC_CONTRIBUTION,
        selected_by=DutyKind.PREPARE_SYNC_CONTRIBUTION,
    ),
    # the RANDAO reveal's partial comes with the VC's block request; its combination starts the proposal
    DutyKind.RANDAO: KindRules(False, False, (0, 1), 1, partial_message=Kind.RANDAO_REVEAL),
    # selection proofs: when the VC asks; held until the aggregation they select for
    DutyKind.PREPARE_AGGREGATOR: KindRules(
        False,
        False,
        (0, 1),
        2,
        vc_request=VCRequestKind.BEACON_COMMITTEE_SELECTIONS,
        partial_message=Kind.AGGREGATION_SLOT,
    ),
    DutyKind.PREPARE_SYNC_CONTRIBUTION: KindRules(
        False,
        False,
        (0, 1),
        2,
        vc_request=VCRequestKind.SYNC_COMMITTEE_SELECTIONS,
        partial_message=Kind.SYNC_COMMITTEE_SELECTION_PROOF,
    ),
    # no slot: kept until done (node/pool.py); the DutyId's slot is when a submission was made
    DutyKind.BUILDER_REGISTRATION: KindRules(
        False,
        False,
        (0, 1),
        2,
        SubmissionKind.REGISTRATIONS,
        partial_message=Kind.VALIDATOR_REGISTRATION,
    ),
    DutyKind.VOLUNTARY_EXIT: KindRules(
        False, False, (0, 1), 2, SubmissionKind.VOLUNTARY_EXIT, partial_message=Kind.VOLUNTARY_EXIT
    ),
}
POOL_KINDS = frozenset({DutyKind.BUILDER_REGISTRATION, DutyKind.VOLUNTARY_EXIT})

# Read off the table (never written anywhere else):
CONSENSUS_KINDS = frozenset(k for k, rules in KINDS.items() if rules.consensus)
SLASHABLE_KINDS = frozenset(k for k, rules in KINDS.items() if rules.slashable)
REQUEST_DUTY = {r.vc_request: k for k, r in KINDS.items() if r.vc_request is not None}
SELECTION_OF = {r.vc_request: r.selected_by for r in KINDS.values() if r.vc_request and r.selected_by}
KIND_OF_DUTIES = {r.fetched_as: k for k, r in KINDS.items() if r.fetched_as is not None}
