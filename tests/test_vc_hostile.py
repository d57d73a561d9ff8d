"""A local process that can reach the VC-facing API (issue 16, Medium: "a local process can change
state through the VC API before any signature is checked"), driven on the node model event by event.

Each test performs one attack and shows it leaves no state: an unsigned object over other data does
not end the validator's duty, a submission for a slot or validator with no duty creates no record
and no timer, a request for a far-future slot is refused at once instead of taking a held slot.
The VC that really holds the share still gets its duty done, and still gets named when IT signs
other data.
"""

from __future__ import annotations

from typing import Any

from covalidator.model.duty import DutyId, DutyKind
from covalidator.model.eth.beacon_data import bitlist_single
from covalidator.model.eth.signing import Kind, signing_root
from covalidator.model.node.events import (
    DutyOutcome,
    ReplyToVC,
    StartTimer,
    SubmissionKind,
    VCRequestKind,
    VCSubmission,
)
from covalidator.model.node.phases import Phase
from tests.helpers.one_node import ATTESTER, ME, ROOT_B, OneNode, of_type, replies, submissions, verifies

V = 0


def serving_node() -> tuple[OneNode, DutyId, dict[str, Any]]:
    """A node whose attester duty of V at slot 9 is decided and persisted: the VC may sign it."""
    node = OneNode()
    node.start()
    duty = DutyId(9, ATTESTER)
    node.attester_duties(1, node.attester_duty(V, 9))
    node.advance(node.duty_start(duty))
    data = node.attestation_data(9, source=0)
    node.decided_by_peers(duty, {node.pubkey(V): data})
    node.persisted(duty)
    assert node.state.duties[duty].phase is Phase.SIGNING
    return node, duty, data


def post(node: OneNode, kind: SubmissionKind, *objects: Any) -> ReplyToVC:
    node.request_id += 1
    [answer] = replies(node.feed(VCSubmission(node.request_id, kind, objects)), node.request_id)
    return answer


def attestation(node: OneNode, data: dict[str, Any], signature: str) -> dict[str, Any]:
    return {"aggregation_bits": bitlist_single(4, V % 4), "data": data, "signature": signature}


def test_an_unsigned_attestation_over_other_data_is_refused_and_the_duty_goes_on() -> None:
    node, duty, data = serving_node()
    other = node.attestation_data(9, source=0, root=ROOT_B)
    # a signature, but over the decided data (not over what is posted), and one that is not BLS at all
    for signature in (node.partial(ME, V, Kind.ATTESTATION, data).signature, "0x" + "c0" + "00" * 95):
        answer = post(node, SubmissionKind.ATTESTATIONS, attestation(node, other, signature))
        assert answer.status == 400 and "not signed by this node's share" in str(answer.body), answer
    assert of_type(node.actions, DutyOutcome) == []
    assert not node.state.duties[duty].validators[node.pubkey(V)].ended
    # the real VC then attests and the cluster's signature goes out as usual
    actions = node.vc_attestation(V, data)
    for sender in (2, 3):
        actions += node.peer_partials(duty, sender, [node.partial(sender, V, Kind.ATTESTATION, data)])
    [submitted] = submissions(actions, duty)
    assert verifies(
        node.pubkey(V),
        signing_root(node.chain.schedule, Kind.ATTESTATION, data),
        submitted.body[0]["signature"],
    )


def test_the_vc_that_signs_other_data_with_its_share_is_named_in_the_outcome() -> None:
    node, duty, _ = serving_node()
    other = node.attestation_data(9, source=0, root=ROOT_B)
    signature = node.partial(ME, V, Kind.ATTESTATION, other).signature
    answer = post(node, SubmissionKind.ATTESTATIONS, attestation(node, other, signature))
    assert answer.status == 400 and "signed data other than" in str(answer.body), answer
    assert [(o.duty, o.reason) for o in of_type(node.actions, DutyOutcome)] == [
        (duty, "vc_signed_other_data")
    ]


def test_submissions_for_duties_the_cluster_does_not_have_create_nothing() -> None:
    node, _, _ = serving_node()
    before = (set(node.state.duties), len(node.timers), len(node.actions))
    far = str(10**9)
    aggregate = {
        "message": {
            "aggregator_index": str(V),
            "aggregate": {"data": {**node.attestation_data(9, 0), "slot": far}, "aggregation_bits": "0x03"},
            "selection_proof": "0x" + "aa" * 96,
        },
        "signature": "0x" + "bb" * 96,
    }
    contribution = {
        "message": {
            "aggregator_index": str(V),
            "contribution": {"slot": "9", "subcommittee_index": "3", "beacon_block_root": ROOT_B},
            "selection_proof": "0x" + "aa" * 96,
        },
        "signature": "0x" + "bb" * 96,
    }
    for kind, obj in (
        (SubmissionKind.AGGREGATE_AND_PROOFS, aggregate),
        (SubmissionKind.CONTRIBUTION_AND_PROOFS, contribution),
    ):
        answer = post(node, kind, obj)
        assert answer.status == 400 and "duty of this cluster" in str(answer.body), answer
    assert set(node.state.duties) == before[0]
    assert not [a for a in node.actions[before[2] :] if isinstance(a, StartTimer | DutyOutcome)]
    assert len(node.timers) == before[1]


def test_a_request_for_a_far_future_slot_is_refused_at_once_and_holds_nothing() -> None:
    node, _, _ = serving_node()
    now_slot = node.clock.slot_at(node.now)
    held = len(node.state.requests)
    for slot, kind in (
        (now_slot + 3, VCRequestKind.ATTESTATION_DATA),
        (now_slot + 3, VCRequestKind.BLOCK),
        (now_slot + 1 + 2 * node.clock.slots_per_epoch, VCRequestKind.BEACON_COMMITTEE_SELECTIONS),
    ):
        params: dict[str, Any] = {"slot": str(slot), "committee_index": "0", "randao_reveal": "0x"}
        if kind is VCRequestKind.BEACON_COMMITTEE_SELECTIONS:
            params = {"selections": [{"validator_index": "0", "slot": str(slot), "selection_proof": "0x"}]}
        rid, actions = node.vc_request(kind, params)
        [answer] = replies(actions, rid)
        assert answer.status == 400 and "slots ahead" in str(answer.body), (kind, answer)
    assert len(node.state.requests) == held
    # two slots ahead is still held: a VC a little ahead of the node's last timer asks so
    rid, actions = node.vc_request(
        VCRequestKind.ATTESTATION_DATA, {"slot": str(now_slot + 2), "committee_index": "0"}
    )
    assert replies(actions, rid) == [] and len(node.state.requests) == held + 1


def test_a_signer_request_for_a_far_future_slot_is_refused_at_once() -> None:
    node = OneNode(signer=True)
    node.start()
    slot = node.clock.slot_at(node.now) + 1 + 2 * node.clock.slots_per_epoch
    rid, actions = node.sign_request(
        V,
        {
            "type": "ATTESTATION",
            "fork_info": node.fork_info(slot),
            "attestation": node.attestation_data(slot, 0),
        },
    )
    [answer] = replies(actions, rid)
    assert answer.status == 412 and "slots ahead" in str(answer.body), answer
    assert node.state.requests == {}
    assert DutyId(slot, DutyKind.ATTESTER) not in node.state.duties
