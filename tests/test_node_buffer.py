"""Peers' QBFT messages for a duty whose consensus this node has not joined yet are buffered, and the
buffer is bounded per sender: a Byzantine co-operator can neither crowd out the honest senders'
messages (which decide the duty at the join) nor make the node hold more than its own budget of
value bodies over all duties (the bodies a 16 MiB frame may carry)."""

from __future__ import annotations

import dataclasses

from covalidator.model.cluster.config import Limits
from covalidator.model.duty import DutyId
from covalidator.model.node.events import Metric, PeerMessage, PeerPayload
from covalidator.model.node.phases import Phase
from covalidator.model.qbft.messages import Envelope, Message, MsgType, canonical_json, make_value
from tests.helpers.one_node import ATTESTER, OneNode, of_type, persists

V = 0
HASH = "0x" + "ab" * 32


def dropped_full(actions: list[object]) -> int:
    return sum(
        m.name == "peer_message_dropped" and ("cause", "buffer_full") in m.labels
        for m in of_type(actions, Metric)
    )


def pre_prepare(duty: DutyId, sender: int, body: bytes, round: int = 1) -> PeerMessage:
    return PeerMessage(
        sender, PeerPayload(qbft=Envelope(Message(MsgType.PRE_PREPARE, duty, sender, round, HASH), body))
    )


def test_a_flooding_sender_fills_only_its_own_share_and_the_honest_decision_is_taken_at_the_join() -> None:
    node = OneNode()
    node.start()
    duty = DutyId(9, ATTESTER)
    node.attester_duties(1, node.attester_duty(V, 9))
    limit = node.config.limits.buffered_peer_messages
    flood: list[object] = []
    for r in range(1, 3 * limit + 1):  # sender 2: a PREPARE per round, rounds 1.. (each one new)
        envelope = Envelope(Message(MsgType.PREPARE, duty, 2, r, HASH))
        flood += node.feed(PeerMessage(2, PeerPayload(qbft=envelope)))
    rec = node.state.duties[duty]
    assert rec.phase is Phase.SCHEDULED
    assert [e.message.sender for e in rec.buffered] == [2] * limit
    assert [e.message.round for e in rec.buffered] == list(range(2 * limit + 1, 3 * limit + 1))  # its newest
    assert dropped_full(flood) == 2 * limit
    # sender 3, honest, has the decision of peers 2..4 (its DECIDED with their commit certificate)
    value = make_value(canonical_json({node.pubkey(V): node.attestation_data(9, source=0)}))
    commits = tuple(Message(MsgType.COMMIT, duty, s, 1, value.hash) for s in range(2, 5))
    decided = Envelope(Message(MsgType.DECIDED, duty, 3, 1, value.hash), value.body, commits)
    assert dropped_full(node.feed(PeerMessage(3, PeerPayload(qbft=decided)))) == 0
    assert node.state.buffered_bytes == {3: len(value.body)}
    joined = node.advance(node.duty_start(duty))
    assert len(persists(joined, duty)) == 1  # the buffered decision, stepped at the join
    assert (rec.buffered, node.state.buffered_bytes) == ([], {})


def test_a_senders_bodies_are_bounded_over_all_duties_until_those_duties_end() -> None:
    node = OneNode()
    node.state.config = dataclasses.replace(node.config, limits=Limits(buffered_peer_bytes=10_000))
    node.start()
    body = b"x" * 4_000
    duties = [DutyId(slot, ATTESTER) for slot in (9, 10, 11)]
    sent = [dropped_full(node.feed(pre_prepare(d, 2, body))) for d in duties]
    assert sent == [0, 0, 1]  # 8,000 bytes held; 12,000 would pass the budget
    assert [len(node.state.duties[d].buffered) for d in duties] == [1, 1, 0]
    assert dropped_full(node.feed(pre_prepare(duties[2], 3, body))) == 0  # another sender's own budget
    assert node.state.buffered_bytes == {2: 8_000, 3: 4_000}
    node.advance(max(node.clock.duty_deadline_ms(d) for d in duties))  # the duties end
    assert node.state.buffered_bytes == {}
    later = DutyId(20, ATTESTER)
    assert dropped_full(node.feed(pre_prepare(later, 2, body))) == 0
    assert node.state.buffered_bytes == {2: 4_000}
