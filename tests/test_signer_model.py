"""Signer mode in the node model: the Remote Signing API's requests, one event at a time (`step`).

The node holds its share keys (`signs_own_partials`): it signs its own partial of a decided value
once it is persisted, answers a signing request only with the cluster's group signature, and only
for what the cluster decided. The group signatures are checked against an oracle: the group public
key and the consensus specs' signing root (`bls.verify`), never the node's own bookkeeping.
"""

from __future__ import annotations

from typing import Any

import pytest

from covalidator.model.cluster.config import unhex
from covalidator.model.duty import DutyId, DutyKind
from covalidator.model.eth.signing import Kind, signing_root
from covalidator.model.node.events import (
    Broadcast,
    DutiesFetched,
    DutiesKind,
    ReplyToVC,
    SignWithShare,
    SubmissionKind,
    SubmitToBN,
    VCSubmission,
)
from covalidator.model.node.guards import GUARDS, Guards
from covalidator.model.node.phases import Phase
from tests.helpers.one_node import ATTESTER, ROOT_A, ROOT_B, OneNode, of_type, replies, submissions, verifies

V = 0


def signer_node(**kwargs: Any) -> tuple[OneNode, DutyId, dict[str, Any]]:
    node = OneNode(signer=True, **kwargs)
    node.start()
    duty = DutyId(9, ATTESTER)
    node.attester_duties(1, node.attester_duty(V, 9))
    node.advance(node.duty_start(duty))
    return node, duty, node.attestation_data(9, source=0)


def attestation_request(node: OneNode, data: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "type": "ATTESTATION",
        "fork_info": node.fork_info(int(data["slot"])),
        "attestation": data,
        **extra,
    }


def signed_roots(actions: list[Any], kind: DutyKind = ATTESTER) -> list[str]:
    """The roots this node asked to sign for duties of `kind` (selection proofs are signed too)."""
    return [
        item.signing_root
        for a in of_type(actions, SignWithShare)
        for item in a.items
        if item.duty.kind is kind
    ]


def root_hex(node: OneNode, kind: Kind, message: Any) -> str:
    return "0x" + signing_root(node.chain.schedule, kind, message).hex()


def decide_and_persist(node: OneNode, duty: DutyId, data: dict[str, Any]) -> list[Any]:
    actions = node.decided_by_peers(duty, {node.pubkey(V): data})
    assert node.state.duties[duty].phase is Phase.PERSISTING
    assert signed_roots(actions) == []  # decided, not yet persisted: nothing signed
    return actions + node.persisted(duty)


def peers_sign(
    node: OneNode, duty: DutyId, kind: Kind, message: Any, senders: range, carry: bool = False
) -> list[Any]:
    actions: list[Any] = []
    for sender in senders:
        actions += node.peer_partials(duty, sender, [node.partial(sender, V, kind, message, carry)])
    return actions


def test_the_node_signs_its_partial_once_the_decided_value_is_persisted_and_answers_with_the_group_signature() -> (
    None
):
    node, duty, data = signer_node()
    actions = decide_and_persist(node, duty, data)
    root = root_hex(node, Kind.ATTESTATION, data)
    assert signed_roots(actions) == [root]  # proactively: no VC asked yet
    actions = node.sign_with_shares(actions)
    assert len(of_type(actions, Broadcast)) == 1  # our partial goes to the peers
    rid, actions = node.sign_request(V, attestation_request(node, data))
    assert replies(actions, rid) == []  # only our partial so far: held
    actions = peers_sign(node, duty, Kind.ATTESTATION, data, range(2, 3))
    assert replies(actions, rid) == []  # 2 of M = 3
    actions = peers_sign(node, duty, Kind.ATTESTATION, data, range(3, 4))
    [reply] = replies(actions, rid)
    assert reply.status == 200
    assert verifies(node.pubkey(V), unhex(root), reply.body["signature"])  # the GROUP key verifies it
    assert len(submissions(actions, duty)) == 1  # and the cluster submitted it itself


def test_a_request_before_the_decision_waits_and_nothing_is_signed_until_persisted() -> None:
    node, duty, data = signer_node()
    rid, actions = node.sign_request(V, attestation_request(node, data))
    assert replies(actions, rid) == [] and signed_roots(actions) == []
    actions = decide_and_persist(node, duty, data)
    actions = node.sign_with_shares(actions)
    actions += peers_sign(node, duty, Kind.ATTESTATION, data, range(2, 4))
    [reply] = replies(actions, rid)
    assert reply.status == 200
    assert verifies(node.pubkey(V), unhex(root_hex(node, Kind.ATTESTATION, data)), reply.body["signature"])


def test_a_request_for_other_data_than_decided_is_refused_and_never_signed() -> None:
    node, duty, data = signer_node()
    other = node.attestation_data(9, source=0, root=ROOT_B)
    rid, actions = node.sign_request(V, attestation_request(node, other))
    actions += decide_and_persist(node, duty, data)
    [reply] = replies(actions, rid)
    assert reply.status == 412 and "not the value the cluster decided" in reply.body["message"]
    assert root_hex(node, Kind.ATTESTATION, other) not in signed_roots(node.actions)


def test_a_value_the_store_refused_is_never_signed_and_its_request_is_refused_as_slashable() -> None:
    node, duty, data = signer_node()
    rid, _ = node.sign_request(V, attestation_request(node, data))
    node.decided_by_peers(duty, {node.pubkey(V): data})
    actions = node.persisted(duty, refused=((node.pubkey(V), "surround vote"),))
    [reply] = replies(actions, rid)
    assert reply.status == 412 and "slashable" in reply.body["message"]
    assert signed_roots(node.actions) == []


def test_with_the_release_guard_removed_a_request_gets_an_undecided_value_signed() -> None:
    """The guard is what stops it: planted, the same request makes the node sign before any decision."""
    node, _duty, data = signer_node(guards=GUARDS._replace(may_release=lambda serves, root, decided: True))
    _, actions = node.sign_request(V, attestation_request(node, data))
    assert signed_roots(actions) == [root_hex(node, Kind.ATTESTATION, data)]


def test_an_unanswered_request_gets_a_named_refusal_within_the_vcs_timeout() -> None:
    node, _duty, data = signer_node()
    asked = node.now
    rid, _ = node.sign_request(V, attestation_request(node, data))
    actions = node.advance(asked + node.clock.slot_ms)
    [reply] = replies(actions, rid)
    assert reply.status == 412 and "not decided and persisted" in reply.body["message"]
    assert node.now - asked <= node.clock.slot_ms


@pytest.mark.parametrize(
    ("change", "status", "words"),
    [
        (lambda n, b: b.update(type="NOPE"), 400, "unknown type"),
        (lambda n, b: b.pop("attestation"), 400, "missing object"),
        (lambda n, b: b.update(signingRoot="0x" + "11" * 32), 400, "signingRoot"),
        (lambda n, b: b["fork_info"].update(genesis_validators_root="0x" + "22" * 32), 400, "not this chain"),
        (lambda n, b: b["fork_info"]["fork"].update(current_version="0x09999999"), 400, "this chain's is"),
        (lambda n, b: b.update(type="DEPOSIT"), 412, "does not sign deposits"),
        # found by `make fuzz`: an unhashable type made the model raise (and the node restore)
        (lambda n, b: b.update(type={"": {}}), 400, "type"),
        (lambda n, b: b.update(type=["ATTESTATION"]), 400, "type"),
    ],
    ids=[
        "type",
        "no-object",
        "signing-root",
        "other-chain",
        "other-fork",
        "deposit",
        "dict-type",
        "list-type",
    ],
)
def test_malformed_or_foreign_requests_are_refused_with_the_apis_status(
    change: Any, status: int, words: str
) -> None:
    node, _, data = signer_node()
    body = attestation_request(node, data)
    change(node, body)
    rid, actions = node.sign_request(V, body)
    [reply] = replies(actions, rid)
    assert reply.status == status and words in reply.body["message"]
    assert signed_roots(actions) == []


def test_the_signing_root_a_request_names_is_accepted_when_it_is_ours() -> None:
    node, _duty, data = signer_node()
    body = attestation_request(node, data, signingRoot=root_hex(node, Kind.ATTESTATION, data))
    rid, actions = node.sign_request(V, body)
    assert replies(actions, rid) == []  # held: valid, waiting for the decision


def test_unknown_and_share_keys_get_404() -> None:
    node, _, data = signer_node()
    rid, actions = node.sign_request("0x" + "ab" * 48, attestation_request(node, data))
    assert [r.status for r in replies(actions, rid)] == [404]
    share = node.config.my_share(node.pubkey(V))
    rid, actions = node.sign_request(share, attestation_request(node, data))
    [reply] = replies(actions, rid)
    assert reply.status == 404 and "SHARE key" in reply.body["message"]


def test_a_node_without_share_keys_refuses_and_never_signs() -> None:
    node = OneNode(signer=False)
    node.start()
    duty = DutyId(9, ATTESTER)
    node.attester_duties(1, node.attester_duty(V, 9))
    node.advance(node.duty_start(duty))
    data = node.attestation_data(9, source=0)
    rid, actions = node.sign_request(V, attestation_request(node, data))
    assert [r.status for r in replies(actions, rid)] == [412]
    node.decided_by_peers(duty, {node.pubkey(V): data})
    node.persisted(duty)
    assert of_type(node.actions, SignWithShare) == []


def test_selection_proofs_are_signed_when_the_attester_duty_is_known_and_answered_combined() -> None:
    node = OneNode(signer=True)
    node.start()
    actions = node.attester_duties(1, node.attester_duty(V, 9))
    message = {"slot": "9"}
    root = root_hex(node, Kind.AGGREGATION_SLOT, message)
    assert signed_roots(actions, DutyKind.PREPARE_AGGREGATOR) == [root]  # before any VC asks
    node.sign_with_shares(actions)
    body = {"type": "AGGREGATION_SLOT", "fork_info": node.fork_info(9), "aggregation_slot": {"slot": "9"}}
    rid, actions = node.sign_request(V, body)
    assert replies(actions, rid) == []
    duty = DutyId(9, DutyKind.PREPARE_AGGREGATOR)
    actions = peers_sign(node, duty, Kind.AGGREGATION_SLOT, message, range(2, 4), carry=True)
    [reply] = replies(actions, rid)
    assert reply.status == 200 and verifies(node.pubkey(V), unhex(root), reply.body["signature"])


def test_a_selection_proof_for_a_slot_without_a_duty_is_refused_at_its_deadline() -> None:
    node = OneNode(signer=True)
    node.start()
    node.attester_duties(1, node.attester_duty(V, 9))
    body = {"type": "AGGREGATION_SLOT", "fork_info": node.fork_info(10), "aggregation_slot": {"slot": "10"}}
    rid, actions = node.sign_request(V, body)
    actions = node.advance(node.now + node.clock.slot_ms)
    [reply] = replies(actions, rid)
    assert reply.status == 412 and "no such duty" in reply.body["message"]
    assert signed_roots(node.actions, DutyKind.PREPARE_AGGREGATOR) == [
        root_hex(node, Kind.AGGREGATION_SLOT, {"slot": "9"})
    ]


def test_the_vcs_group_signed_attestation_is_accepted_and_not_submitted_again() -> None:
    node, duty, data = signer_node()
    actions = node.sign_with_shares(decide_and_persist(node, duty, data))
    actions = peers_sign(node, duty, Kind.ATTESTATION, data, range(2, 4))
    signature = node.state.duties[duty].combined[node.pubkey(V)]
    from covalidator.model.eth.beacon_data import bitlist_single

    attestation = {"aggregation_bits": bitlist_single(4, V % 4), "data": data, "signature": signature}
    node.request_id += 1
    actions = node.feed(VCSubmission(node.request_id, SubmissionKind.ATTESTATIONS, (attestation,)))
    assert [(r.status) for r in of_type(actions, ReplyToVC)] == [200]
    assert submissions(actions, duty) == []


# ---- sync committee messages: the co-validators' VCs may see different heads ---------------------------


def sync_node(guards: Guards = GUARDS) -> OneNode:
    """A signer-mode node whose validator V is a sync committee member, at slot 9's sync message."""
    node = OneNode(signer=True, guards=guards)
    node.start()
    member = {"pubkey": node.pubkey(V), "validator_index": str(V), "validator_sync_committee_indices": ["0"]}
    node.feed(DutiesFetched(DutiesKind.SYNC, 1, (member,), ROOT_A))
    node.advance(node.clock.slot_start_ms(9))
    return node


def sync_message(slot: int, root: str) -> dict[str, Any]:
    return {"slot": str(slot), "beacon_block_root": root, "validator_index": str(V)}


def sync_request(node: OneNode, slot: int, root: str) -> dict[str, Any]:
    return {
        "type": "SYNC_COMMITTEE_MESSAGE",
        "fork_info": node.fork_info(slot),
        "sync_committee_message": {"beacon_block_root": root, "slot": str(slot)},
    }


SYNC = DutyId(9, DutyKind.SYNC_MESSAGE)


def test_a_sync_committee_split_two_and_two_over_heads_still_signs_each_vcs_root() -> None:
    """Measured on the devnet: at an epoch's first slot two VCs signed the parent, two the new block;
    with one partial per node and root neither reached M. The node co-signs a root F + 1 peers signed
    (no slashing condition covers sync committee messages), so both roots combine."""
    node = sync_node()
    rid, actions = node.sign_request(V, sync_request(node, 9, ROOT_A))
    actions = node.sign_with_shares(actions)
    actions += peers_sign(
        node, SYNC, Kind.SYNC_COMMITTEE_MESSAGE, sync_message(9, ROOT_A), range(2, 3), carry=True
    )
    assert replies(actions, rid) == []  # ROOT_A: this node and peer 2 only
    actions = peers_sign(
        node, SYNC, Kind.SYNC_COMMITTEE_MESSAGE, sync_message(9, ROOT_B), range(3, 5), carry=True
    )
    root_b = root_hex(node, Kind.SYNC_COMMITTEE_MESSAGE, sync_message(9, ROOT_B))
    assert signed_roots(actions, DutyKind.SYNC_MESSAGE) == [root_b]  # peers 3 and 4: F + 1 = 2 signed it
    actions = node.sign_with_shares(actions)
    assert verifies(
        node.pubkey(V), unhex(root_b), node.state.duties[SYNC].group_signed[node.pubkey(V)][root_b]
    )
    # peers 3 and 4 co-sign ROOT_A the same way: this node's VC gets the group signature over its root
    actions = peers_sign(
        node, SYNC, Kind.SYNC_COMMITTEE_MESSAGE, sync_message(9, ROOT_A), range(3, 4), carry=True
    )
    [reply] = replies(actions, rid)
    root_a = root_hex(node, Kind.SYNC_COMMITTEE_MESSAGE, sync_message(9, ROOT_A))
    assert reply.status == 200 and verifies(node.pubkey(V), unhex(root_a), reply.body["signature"])
    assert len([s for a in node.actions if isinstance(a, SubmitToBN) and a.duty == SYNC for s in a.body]) == 1


def test_a_root_one_peer_signed_alone_is_not_co_signed_and_the_guard_is_what_stops_it() -> None:
    message = sync_message(9, ROOT_B)
    node = sync_node()
    actions = peers_sign(node, SYNC, Kind.SYNC_COMMITTEE_MESSAGE, message, range(2, 3), carry=True)
    assert signed_roots(actions, DutyKind.SYNC_MESSAGE) == []  # one peer may be the Byzantine one
    planted = sync_node(GUARDS._replace(may_cosign=lambda slashable, senders, faulty: True))
    actions = peers_sign(planted, SYNC, Kind.SYNC_COMMITTEE_MESSAGE, message, range(2, 3), carry=True)
    assert signed_roots(actions, DutyKind.SYNC_MESSAGE) == [
        root_hex(node, Kind.SYNC_COMMITTEE_MESSAGE, message)
    ]


def test_co_signing_is_refused_for_a_slashable_kind() -> None:
    assert GUARDS.may_cosign(False, 2, 1) and not GUARDS.may_cosign(False, 1, 1)
    assert not GUARDS.may_cosign(False, 0, 1)  # a root whose every sender proved invalid: never
    assert not GUARDS.may_cosign(True, 4, 1)  # an attestation or block: never a root a peer chose


def test_a_peer_may_sign_only_a_bounded_number_of_sync_roots() -> None:
    node = sync_node()
    limit = node.config.limits.sync_roots
    roots = ["0x" + f"{i:02x}" * 32 for i in range(1, limit + 3)]
    for root in roots:
        peers_sign(node, SYNC, Kind.SYNC_COMMITTEE_MESSAGE, sync_message(9, root), range(2, 4), carry=True)
    vd = node.state.duties[SYNC].validators[node.pubkey(V)]
    assert 1 + len([k for k in vd.peer_cosigned if k[0] == 2]) == limit  # the rest dropped and counted
    assert len(signed_roots(node.actions, DutyKind.SYNC_MESSAGE)) == limit  # and this node signs as many


# ---- RANDAO: a validator may propose twice in an epoch -------------------------------------------------


def test_a_randao_request_is_for_the_proposal_at_hand_not_the_epochs_first() -> None:
    node = OneNode(signer=True)
    node.start()
    duties = [{"pubkey": node.pubkey(V), "validator_index": str(V), "slot": str(s)} for s in (9, 10)]
    node.proposer_duties(1, *duties)
    node.advance(node.clock.slot_start_ms(10) + 10)  # slot 9 proposed; the VC asks in slot 10
    body = {"type": "RANDAO_REVEAL", "fork_info": node.fork_info(10), "randao_reveal": {"epoch": "1"}}
    rid, actions = node.sign_request(V, body)
    assert replies(actions, rid) == []  # held, not "past its deadline"
    assert node.state.requests[rid].duty == DutyId(10, DutyKind.RANDAO)
    node.sign_with_shares(node.actions)
    root = root_hex(node, Kind.RANDAO_REVEAL, {"epoch": "1"})
    actions = peers_sign(
        node, DutyId(10, DutyKind.RANDAO), Kind.RANDAO_REVEAL, {"epoch": "1"}, range(2, 4), True
    )
    [reply] = replies(actions, rid)
    assert reply.status == 200 and verifies(node.pubkey(V), unhex(root), reply.body["signature"])


def test_sync_selection_proofs_are_signed_a_slot_ahead_not_an_epoch_at_once() -> None:
    """At an epoch's start a whole epoch of selection proofs (every slot and subcommittee) held a RANDAO
    reveal back by seconds on the devnet: they are signed a slot ahead instead."""
    node = OneNode(signer=True)
    node.start()
    member = {"pubkey": node.pubkey(V), "validator_index": str(V), "validator_sync_committee_indices": ["0"]}
    actions = node.feed(DutiesFetched(DutiesKind.SYNC, 1, (member,), ROOT_A))
    first = node.clock.first_slot(1)

    def slots(actions: list[Any]) -> list[int]:
        return [
            item.duty.slot
            for a in of_type(actions, SignWithShare)
            for item in a.items
            if item.duty.kind is DutyKind.PREPARE_SYNC_CONTRIBUTION
        ]

    assert slots(actions) == [first]  # the epoch's first slot only
    node.sign_with_shares(actions)
    for slot in range(first, first + 3):
        actions = node.advance(node.clock.slot_start_ms(slot) + node.clock.slot_ms // 2)
        # during slot s, the proofs of slot s + 1 (and at an epoch's start the next epoch's first slot)
        expected = [slot + 1] + ([node.clock.first_slot(2)] if slot == first else [])
        assert sorted(slots(actions)) == expected


def test_with_release_before_persist_planted_the_node_signs_while_the_store_is_still_writing() -> None:
    """The guard is the only gate: the node asks it at the decision, and the real one says no until
    Persisted (decide_and_persist asserts nothing is signed while PERSISTING)."""
    from covalidator.proofs.mutants import PLANTED_BUGS

    node, duty, data = signer_node(guards=PLANTED_BUGS["release-before-persist"].guards)
    actions = node.decided_by_peers(duty, {node.pubkey(V): data})
    assert node.state.duties[duty].phase is Phase.PERSISTING
    assert signed_roots(actions) == [root_hex(node, Kind.ATTESTATION, data)]


def test_a_block_signing_request_held_before_the_proposer_duties_survives_their_arrival() -> None:
    """Found by the signer API fuzz with this chain's fork_info: a BLOCK_V2 signing request for a slot
    whose proposer duties were not fetched yet is held; when they arrive, the model re-ran the VC's
    block-request step on every held proposer request, this one included (its params are the signing
    request, not a VC's block query) and raised, so the node restarted from its store."""
    from covalidator.model.eth import ssz_json
    from covalidator.model.eth.specs import spec

    node = OneNode(signer=True)
    node.start()
    node.advance(node.clock.slot_start_ms(9))
    block = ssz_json.to_json(spec("altair", "minimal").BeaconBlock(slot=10, proposer_index=V))
    body = {
        "type": "BLOCK_V2",
        "fork_info": node.fork_info(10),
        "beacon_block": {"version": "ALTAIR", "block": block},
    }
    rid, actions = node.sign_request(V, body)
    assert replies(actions, rid) == [] and node.state.requests[rid].duty == DutyId(10, DutyKind.PROPOSER)
    duty = {"pubkey": node.pubkey(V), "validator_index": str(V), "slot": "10"}
    node.proposer_duties(1, duty)  # raised AttributeError before the fix
    assert rid in node.state.requests  # still held: nothing was decided for it, nothing signed
    assert signed_roots(node.actions, DutyKind.PROPOSER) == []


def test_duties_with_a_non_string_pubkey_are_no_ones_and_no_crash() -> None:
    """A BN's duties whose pubkey is a JSON object or list (unhashable) made the model raise; now such
    an entry is simply no validator of the cluster, and the well-formed one next to it still counts."""
    node = OneNode(signer=True)
    node.start()
    member = {"pubkey": node.pubkey(V), "validator_index": str(V), "validator_sync_committee_indices": ["0"]}
    odd = [{"pubkey": {"x": 1}, "validator_index": "1"}, {"pubkey": [node.pubkey(V)], "validator_index": "2"}]
    node.feed(DutiesFetched(DutiesKind.SYNC, 1, (*odd, member), ROOT_A))
    assert list(node.state.sync_members[node.config.chain.sync_period(1)]) == [node.pubkey(V)]
