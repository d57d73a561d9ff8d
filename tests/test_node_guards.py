"""Every guard the safety theorems assume, checked on the node model itself (`step`, one event at a time).

proofs/dv_safety.py assumes of the node: the ordering rule (a later slashable duty waits for the
earlier one), that what the store refuses is never served or signed, that nothing is served or
signed before PERSISTED (`may_serve`), and that a signature needs M partials. Each test below
shows the guard's own behaviour, so removing the guard fails the test that names it, whatever the
other guards do (dv_safety_each_guard_alone says either of the first two alone keeps the cluster
safe, so a slashing would not reveal one missing).
"""

from __future__ import annotations

from covalidator.model.duty import DutyId, DutyKind
from covalidator.model.eth.signing import Kind, signing_root
from covalidator.model.node.events import (
    DutyOutcome,
    FetchBeaconData,
    PeerMessage,
    PeerPayload,
    ReplyToVC,
    VCRequestKind,
)
from covalidator.model.node.phases import Phase
from tests.helpers.one_node import (
    ATTESTER,
    ROOT_B,
    OneNode,
    of_type,
    persists,
    replies,
    submissions,
    verifies,
)

V = 0  # the validator every case is about


def attesting_node(nodes: int = 4) -> tuple[OneNode, DutyId, dict[str, object]]:
    """A node with an attester duty of validator V at slot 9, its consensus begun."""
    node = OneNode(nodes=nodes)
    node.start()
    duty = DutyId(9, ATTESTER)
    node.attester_duties(1, node.attester_duty(V, 9))
    node.advance(node.duty_start(duty))
    assert node.state.duties[duty].phase is Phase.CONSENSUS
    return node, duty, node.attestation_data(9, source=0)


def decided(node: OneNode, duty: DutyId, data: dict[str, object]) -> None:
    """Peers decided `data` for V; the node asks its store to persist it (and serves nothing yet)."""
    actions = node.decided_by_peers(duty, {node.pubkey(V): data})
    assert len(persists(actions, duty)) == 1
    assert node.state.duties[duty].phase is Phase.PERSISTING


def peers_partials(node: OneNode, duty: DutyId, data: dict[str, object], senders: range) -> list[object]:
    actions: list[object] = []
    for sender in senders:
        actions += node.peer_partials(duty, sender, [node.partial(sender, V, Kind.ATTESTATION, data)])
    return actions


# ---- the ordering rule (dv_safety guard G1) ----------------------------------------------------------


def test_a_later_slashable_duty_waits_until_the_earlier_one_is_decided_and_persisted() -> None:
    node = OneNode()
    node.start()
    earlier, later = DutyId(7, ATTESTER), DutyId(8, ATTESTER)  # the last slot of epoch 0, the first of 1
    node.attester_duties(0, node.attester_duty(V, 7))
    node.attester_duties(1, node.attester_duty(V, 8))
    node.advance(node.duty_start(earlier))
    assert node.state.duties[earlier].phase is Phase.CONSENSUS

    actions = node.advance(node.duty_start(later))  # the earlier duty is still undecided
    assert node.state.duties[later].phase is Phase.WAITING
    assert not [a for a in of_type(actions, FetchBeaconData) if a.duty == later]
    # peers deciding the later duty does not make this node decide it out of order
    assert persists(node.decided_by_peers(later, {node.pubkey(V): node.attestation_data(8, 0)}), later) == []

    decided(node, earlier, node.attestation_data(7, source=0))
    assert node.state.duties[later].phase is Phase.WAITING  # decided is not enough: persisted
    actions = node.persisted(earlier)
    assert [a.duty for a in of_type(actions, FetchBeaconData)] == [later]
    assert len(persists(actions, later)) == 1  # the buffered decision now runs, in order


def test_the_ordering_is_per_kind_an_undecided_duty_of_another_kind_holds_nothing_back() -> None:
    """A proposal does not wait for an earlier attestation still undecided (the two are never
    slashable against each other). (The other way round cannot arise: a proposal ends at the end of
    its slot, before any later attestation starts.)"""
    node = OneNode()
    node.start()
    attestation, proposal = DutyId(8, ATTESTER), DutyId(9, DutyKind.PROPOSER)
    node.attester_duties(1, node.attester_duty(V, 8))
    node.proposer_duties(1, {"pubkey": node.pubkey(V), "validator_index": str(V), "slot": "9"})
    node.advance(node.duty_start(proposal))
    assert node.state.duties[attestation].phase is Phase.CONSENSUS  # undecided
    epoch = {"epoch": "1"}
    reveal = node.partial(1, V, Kind.RANDAO_REVEAL, epoch).signature
    node.vc_request(VCRequestKind.BLOCK, {"slot": "9", "randao_reveal": reveal})
    randao = DutyId(9, DutyKind.RANDAO)
    for sender in (2, 3):
        node.peer_partials(randao, sender, [node.partial(sender, V, Kind.RANDAO_REVEAL, epoch, carry=True)])
    assert node.state.duties[proposal].phase is Phase.CONSENSUS


def test_a_duty_still_waiting_at_its_deadline_is_skipped_never_signed_out_of_order() -> None:
    node = OneNode()
    node.start()
    earlier, later = DutyId(7, ATTESTER), DutyId(8, ATTESTER)
    node.attester_duties(0, node.attester_duty(V, 7))
    node.attester_duties(1, node.attester_duty(V, 8))
    node.advance(node.duty_start(later))
    node.decided_by_peers(later, {node.pubkey(V): node.attestation_data(8, 0)})
    # the earlier duty ends at its deadline first, so the later one may then start; ending the
    # later one before that (its own deadline) is `out_of_order`
    actions = node.advance(node.clock.duty_deadline_ms(later))
    outcomes = {(o.duty, o.reason) for o in of_type(node.actions, DutyOutcome)}
    assert (earlier, "no_consensus") in outcomes
    assert persists(node.actions, earlier) == []
    assert all(o.ok is False for o in of_type(actions, DutyOutcome))


# ---- the store's re-check (dv_safety guard G2) ----------------------------------------------------------


def test_what_the_store_refused_is_never_served_nor_signed() -> None:
    node, duty, data = attesting_node()
    decided(node, duty, data)
    refusal = ((node.pubkey(V), "surrounding_vote with recorded attestation source=3 target=4"),)
    actions = node.persisted(duty, refusal)
    assert [(o.pubkey, o.ok, o.reason) for o in of_type(actions, DutyOutcome)] == [
        (node.pubkey(V), False, "slashing_refused")
    ]
    request, actions = node.vc_request(VCRequestKind.ATTESTATION_DATA, {"slot": "9", "committee_index": "0"})
    [reply] = replies(actions, request)
    assert reply.status != 200 and "slashable" in str(reply.body)
    [refused] = of_type(node.vc_attestation(V, data), ReplyToVC)
    assert refused.status == 400
    assert submissions(peers_partials(node, duty, data, range(2, 5)), duty) == []


# ---- persist before serve (theorem persist_before_serve), at every serving site ------------------------


def test_while_persisting_nothing_is_served_accepted_or_combined_and_everything_is_once_persisted() -> None:
    node, duty, data = attesting_node()
    decided(node, duty, data)
    # the VC's data request waits
    request, actions = node.vc_request(VCRequestKind.ATTESTATION_DATA, {"slot": "9", "committee_index": "0"})
    assert replies(actions, request) == []
    # the VC's partial over the decided data is refused: nothing to sign yet
    [refused] = of_type(node.vc_attestation(V, data), ReplyToVC)
    assert refused.status == 400 and "no persisted decided data" in str(refused.body)
    # the peers' partials are kept, not combined
    assert submissions(peers_partials(node, duty, data, range(2, 5)), duty) == []

    actions = node.persisted(duty)
    [reply] = replies(actions, request)
    assert reply.status == 200 and reply.body == {"data": data}
    [submission] = submissions(actions, duty)  # the peers' partials combine now
    root = signing_root(node.chain.schedule, Kind.ATTESTATION, data)
    assert verifies(node.pubkey(V), root, submission.body[0]["signature"])


def test_a_block_is_not_served_while_its_proposal_is_persisting() -> None:
    node = OneNode()
    node.start()
    slot = 10
    duty, randao = DutyId(slot, DutyKind.PROPOSER), DutyId(slot, DutyKind.RANDAO)
    node.proposer_duties(1, {"pubkey": node.pubkey(V), "validator_index": str(V), "slot": str(slot)})
    node.advance(node.duty_start(duty))
    epoch = {"epoch": str(node.clock.epoch_of(slot))}
    reveal = node.partial(1, V, Kind.RANDAO_REVEAL, epoch).signature
    request, _ = node.vc_request(VCRequestKind.BLOCK, {"slot": str(slot), "randao_reveal": reveal})
    for sender in (2, 3):
        node.peer_partials(randao, sender, [node.partial(sender, V, Kind.RANDAO_REVEAL, epoch, carry=True)])
    assert node.state.duties[duty].phase is Phase.CONSENSUS  # the RANDAO combined: the proposal started
    combined = node.state.duties[randao].combined[node.pubkey(V)]
    block = node.chain.produce_block(slot, V, combined, 1, node.now)
    decided(node, duty, block)
    assert replies(node.actions, request) == []
    again, actions = node.vc_request(VCRequestKind.BLOCK, {"slot": str(slot), "randao_reveal": reveal})
    assert replies(actions, again) == []
    actions = node.persisted(duty)
    assert {r.request_id: r.status for r in of_type(actions, ReplyToVC)} == {request: 200, again: 200}
    assert [r.body["data"] for r in of_type(actions, ReplyToVC)] == [block["block"], block["block"]]


# ---- the threshold (lemma A) -----------------------------------------------------------------------------


def test_m_minus_one_partials_never_combine_and_m_do_into_the_group_signature() -> None:
    node, duty, data = attesting_node()
    decided(node, duty, data)
    node.persisted(duty)
    assert of_type(node.vc_attestation(V, data), ReplyToVC)[0].status == 200  # own partial: 1 of 3
    assert submissions(peers_partials(node, duty, data, range(2, 3)), duty) == []  # 2 of 3
    # a partial over other data does not count towards M
    other = {**data, "beacon_block_root": ROOT_B}
    assert submissions(peers_partials(node, duty, other, range(3, 4)), duty) == []
    [submission] = submissions(peers_partials(node, duty, data, range(4, 5)), duty)  # 3 of 3
    root = signing_root(node.chain.schedule, Kind.ATTESTATION, data)
    assert verifies(node.pubkey(V), root, submission.body[0]["signature"])


def test_more_than_m_partials_at_once_combine_too() -> None:
    """5-of-7: all six peers' partials arrive while the value is being written; at PERSISTED the node
    holds six, more than M, and combines."""
    node, duty, data = attesting_node(nodes=7)
    decided(node, duty, data)
    assert submissions(peers_partials(node, duty, data, range(2, 8)), duty) == []
    [submission] = submissions(node.persisted(duty), duty)
    root = signing_root(node.chain.schedule, Kind.ATTESTATION, data)
    assert verifies(node.pubkey(V), root, submission.body[0]["signature"])


def test_a_peer_cannot_count_twice() -> None:
    node, duty, data = attesting_node()
    decided(node, duty, data)
    node.persisted(duty)
    node.vc_attestation(V, data)
    once = node.partial(2, V, Kind.ATTESTATION, data)
    for _ in range(3):
        assert submissions(node.peer_partials(duty, 2, [once]), duty) == []
    node.feed(PeerMessage(2, PeerPayload()))  # an empty payload is dropped, never counted
    assert submissions(node.actions, duty) == []


# ---- consensus validity: the slashing view (the other half of guard G1) -------------------------------


def test_a_leader_proposing_data_slashable_against_the_view_gets_no_prepare() -> None:
    from covalidator.model.node.events import Broadcast
    from covalidator.model.qbft.messages import Envelope, Message, MsgType, canonical_json, make_value

    def prepares_for(source: int) -> list[object]:
        """V attested (1, 1) at slot 9; at slot 17 the round's leader proposes (source, 2)."""
        node, first, _ = attesting_node()
        decided(node, first, node.attestation_data(9, source=1))
        node.persisted(first)
        later = DutyId(17, ATTESTER)
        node.attester_duties(2, node.attester_duty(V, 17))
        node.advance(node.duty_start(later))
        leader = 4  # (slot 17 + attester 1 + round 1) mod 4 + 1
        value = make_value(canonical_json({node.pubkey(V): node.attestation_data(17, source=source)}))
        envelope = Envelope(Message(MsgType.PRE_PREPARE, later, leader, 1, value.hash), value.body)
        actions = node.feed(PeerMessage(leader, PeerPayload(qbft=envelope)))
        return [
            a
            for a in of_type(actions, Broadcast)
            if a.payload.qbft is not None and a.payload.qbft.message.type is MsgType.PREPARE
        ]

    assert prepares_for(source=0) == []  # (0, 2) surrounds the recorded (1, 1)
    assert len(prepares_for(source=1)) == 1  # a proper next vote is prepared
