"""The consensus validity predicate's Beacon half (model/beacon_data.py), on the node itself: a leader's
value that does not fit the duty gets no PREPARE from this node."""

from __future__ import annotations

from typing import Any

from covalidator.model.duty import DutyId, DutyKind
from covalidator.model.eth import ssz_json
from covalidator.model.eth.beacon_data import bitlist_single
from covalidator.model.eth.signing import Kind
from covalidator.model.node.events import Broadcast, PeerMessage, PeerPayload, VCRequestKind
from covalidator.model.qbft.messages import Envelope, Message, MsgType, canonical_json, make_value
from covalidator.model.qbft.rules import leader
from tests.helpers.one_node import OneNode

V = 0
SLOT = 10  # the aggregator duty's round-1 leader is node 2, not this node (1)


def aggregating_node() -> tuple[OneNode, dict[str, Any]]:
    """Validator V attests at SLOT (committee of 4: every member aggregates); the cluster combined its
    selection proof and decided and persisted its attestation data; the aggregation has begun."""
    node = OneNode()
    node.start()
    attester, aggregator = DutyId(SLOT, DutyKind.ATTESTER), DutyId(SLOT, DutyKind.AGGREGATOR)
    node.attester_duties(1, node.attester_duty(V, SLOT))
    node.advance(node.clock.slot_start_ms(SLOT))
    selection = {"slot": str(SLOT)}
    own = node.partial(1, V, Kind.AGGREGATION_SLOT, selection).signature
    node.vc_request(
        VCRequestKind.BEACON_COMMITTEE_SELECTIONS,
        {"selections": [{"validator_index": str(V), "slot": str(SLOT), "selection_proof": own}]},
    )
    prepare = DutyId(SLOT, DutyKind.PREPARE_AGGREGATOR)
    for sender in (2, 3):
        node.peer_partials(
            prepare, sender, [node.partial(sender, V, Kind.AGGREGATION_SLOT, selection, carry=True)]
        )
    assert aggregator in node.state.duties
    data = node.attestation_data(SLOT, source=0)
    node.advance(node.duty_start(attester))
    node.decided_by_peers(attester, {node.pubkey(V): data})
    node.persisted(attester)
    node.advance(node.duty_start(aggregator))
    return node, data


def prepares(node: OneNode, duty: DutyId, value: dict[str, Any]) -> int:
    body = make_value(canonical_json(value))
    sender = leader(duty.slot, int(duty.kind), 1, 4)
    assert sender != 1
    envelope = Envelope(Message(MsgType.PRE_PREPARE, duty, sender, 1, body.hash), body.body)
    actions = node.feed(PeerMessage(sender, PeerPayload(qbft=envelope)))
    return sum(
        1
        for a in actions
        if isinstance(a, Broadcast)
        and a.payload.qbft is not None
        and a.payload.qbft.message.type is MsgType.PREPARE
    )


def aggregate(data: dict[str, Any], length: int = 4) -> dict[str, Any]:
    return {"aggregation_bits": bitlist_single(length, 1), "data": data, "signature": "0x" + "a1" * 96}


def test_an_aggregate_of_the_decided_attestation_data_is_prepared() -> None:
    node, data = aggregating_node()
    assert prepares(node, DutyId(SLOT, DutyKind.AGGREGATOR), {node.pubkey(V): aggregate(data)}) == 1


def test_an_aggregate_of_other_attestation_data_is_not_prepared() -> None:
    node, data = aggregating_node()
    other = {**data, "beacon_block_root": "0x" + "cc" * 32}
    assert ssz_json.hash_tree_root(node.chain.spec.AttestationData, other) != ssz_json.hash_tree_root(
        node.chain.spec.AttestationData, data
    )
    assert prepares(node, DutyId(SLOT, DutyKind.AGGREGATOR), {node.pubkey(V): aggregate(other)}) == 0


def test_an_aggregate_whose_bits_do_not_fit_the_committee_is_not_prepared() -> None:
    node, data = aggregating_node()
    assert prepares(node, DutyId(SLOT, DutyKind.AGGREGATOR), {node.pubkey(V): aggregate(data, length=9)}) == 0
