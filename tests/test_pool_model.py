"""Voluntary exits and builder registrations in the node model (node/pool.py), one event at a time.

Every group signature is checked against an oracle: the validator's group public key and the
consensus specs' signing root (EIP-7044 domain for exits, the builder domain for registrations),
computed here with `signing.signing_root`, never with the node's own bookkeeping.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from covalidator.model.cluster.config import NodeConfig, hex0x
from covalidator.model.crypto import bls
from covalidator.model.duty import DutyKind
from covalidator.model.eth.signing import Kind, signing_root
from covalidator.model.node.events import (
    BNSubmitted,
    Broadcast,
    DutyOutcome,
    PeerMessage,
    PeerPayload,
    PersistPool,
    PoolPartial,
    ReplyToVC,
    SignWithShare,
    Started,
    SubmissionKind,
    SubmitToBN,
    ValidatorInfo,
    ValidatorsResolved,
    VCSubmission,
)
from covalidator.model.node.guards import GUARDS
from covalidator.model.node.pool_state import PoolPhase
from covalidator.model.node.state import NodeState
from tests.helpers.one_node import ME, OneNode, of_type, replies, verifies

V = 0
FEE = "0x" + "ab" * 20
NEW_FEE = "0x" + "cd" * 20


def exit_message(node: OneNode, validator: int = V, epoch: int = 0) -> dict[str, str]:
    return {"epoch": str(epoch), "validator_index": str(validator)}


def exit_root(node: OneNode, message: dict[str, Any]) -> bytes:
    """The oracle: the specs' signing root, EIP-7044 domain at the chain's current epoch."""
    epoch = node.clock.epoch_at(node.now)
    return signing_root(node.chain.schedule, Kind.VOLUNTARY_EXIT, message, epoch)


def share_sign(node: OneNode, share: int, root: bytes, validator: int = V) -> str:
    return hex0x(bls.sign(node.chain.shares[validator][share], root))


def peer_exit(node: OneNode, sender: int, share: int, message: dict[str, Any], root: bytes) -> list[Any]:
    partial = PoolPartial(
        DutyKind.VOLUNTARY_EXIT, node.pubkey(V), message, hex0x(root), share, share_sign(node, share, root)
    )
    return node.feed(PeerMessage(sender, PeerPayload(pool=(partial,))))


def vc_exit(node: OneNode, message: dict[str, Any], signature: str) -> tuple[int, list[Any]]:
    node.request_id += 1
    body = {"message": message, "signature": signature}
    return node.request_id, node.feed(VCSubmission(node.request_id, SubmissionKind.VOLUNTARY_EXIT, (body,)))


def exits_submitted(actions: list[Any]) -> list[SubmitToBN]:
    return [a for a in of_type(actions, SubmitToBN) if a.kind is SubmissionKind.VOLUNTARY_EXIT]


def started_node(**kwargs: Any) -> OneNode:
    node = OneNode(**kwargs)
    node.start()
    node.advance(node.clock.genesis_time_ms + node.clock.slot_ms)
    return node


# ---- exits ----------------------------------------------------------------------------------------------------


def test_a_vc_exit_is_persisted_before_the_200_and_broadcast() -> None:
    node = started_node()
    message = exit_message(node)
    root = exit_root(node, message)
    rid, actions = vc_exit(node, message, share_sign(node, ME, root))
    kinds = [type(a) for a in actions]
    assert kinds.index(PersistPool) < kinds.index(ReplyToVC) and kinds.index(PersistPool) < kinds.index(
        Broadcast
    )
    (persist,) = of_type(actions, PersistPool)
    assert [(p.share, p.signing_root) for p in persist.partials] == [(ME, hex0x(root))]
    assert replies(actions, rid)[0].status == 200
    assert exits_submitted(actions) == []  # one operator of 3 needed


def test_m_partials_combine_into_an_exit_the_group_key_verifies_submitted_once() -> None:
    node = started_node()
    message = exit_message(node)
    root = exit_root(node, message)
    vc_exit(node, message, share_sign(node, ME, root))
    assert exits_submitted(peer_exit(node, 2, 2, message, root)) == []  # M - 1 = 2 of 3
    actions = peer_exit(node, 3, 3, message, root)
    (submit,) = exits_submitted(actions)
    assert submit.body["message"] == message
    assert verifies(node.pubkey(V), root, submit.body["signature"])
    assert exits_submitted(peer_exit(node, 4, 4, message, root)) == []  # once
    node.feed(BNSubmitted(submit.duty, submit.pubkeys, True))
    assert node.state.pool[hex0x(root)].phase is PoolPhase.SUBMITTED
    assert of_type(node.actions, DutyOutcome)[-1].ok


def test_a_relayed_partial_counts_a_forged_one_does_not() -> None:
    node = started_node()
    message = exit_message(node)
    root = exit_root(node, message)
    peer_exit(node, 2, 3, message, root)  # node 2 relays share 3's partial: verified against share 3
    assert set(node.state.pool[hex0x(root)].partials) == {3}
    forged = PoolPartial(
        DutyKind.VOLUNTARY_EXIT, node.pubkey(V), message, hex0x(root), 4, share_sign(node, 2, root)
    )
    node.feed(PeerMessage(2, PeerPayload(pool=(forged,))))
    assert set(node.state.pool[hex0x(root)].partials) == {3}
    assert any(
        m.name == "peer_message_dropped" and ("cause", "invalid_pool_partial") in m.labels
        for m in _metrics(node)
    )


def _metrics(node: OneNode) -> list[Any]:
    from covalidator.model.node.events import Metric

    return of_type(node.actions, Metric)


def test_a_partial_over_another_validators_index_is_dropped() -> None:
    node = started_node()
    message = exit_message(node, validator=1)  # validator 1's index, signed as validator 0's
    root = exit_root(node, message)
    peer_exit(node, 2, 2, message, root)
    assert node.state.pool == {}


def test_one_operator_may_keep_only_two_exits_of_a_validator_open() -> None:
    node = started_node()
    for epoch in range(3):
        message = exit_message(node, epoch=epoch)
        peer_exit(node, 2, 2, message, exit_root(node, message))
    assert len(node.state.pool) == 2  # the third is dropped: a Byzantine operator cannot crowd out others
    honest = exit_message(node, epoch=7)
    peer_exit(node, 3, 3, honest, exit_root(node, honest))
    assert len(node.state.pool) == 3


def test_m_minus_one_operators_never_release_an_exit() -> None:
    node = started_node()
    message = exit_message(node)
    root = exit_root(node, message)
    vc_exit(node, message, share_sign(node, ME, root))
    actions = peer_exit(node, 2, 2, message, root)
    assert exits_submitted(node.actions) == [] and actions
    assert node.state.pool[hex0x(root)].signature is None


@pytest.mark.parametrize("planted", [False, True])
def test_the_threshold_guard_is_what_stops_a_combination_below_m(
    planted: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With M-1 partials the node never even tries to combine; with the guard planted to accept M-1
    (the broken variant theorem pool_safety refutes) it does (and only the crypto saves it)."""
    guards = GUARDS._replace(is_threshold_met=lambda count, threshold: count >= threshold - 1)
    node = started_node(guards=guards if planted else GUARDS)
    tried: list[int] = []
    real = bls.verify_and_combine_many
    monkeypatch.setattr(
        bls, "verify_and_combine_many", lambda jobs, *a: tried.append(len(jobs)) or real(jobs, *a)
    )
    message = exit_message(node)
    root = exit_root(node, message)
    vc_exit(node, message, share_sign(node, ME, root))
    peer_exit(node, 2, 2, message, root)
    assert (tried != []) is planted
    assert node.state.pool[hex0x(root)].signature is None


def test_a_restart_combines_what_the_store_kept_and_rebroadcasts_it() -> None:
    node = started_node()
    message = exit_message(node)
    root = exit_root(node, message)
    vc_exit(node, message, share_sign(node, ME, root))
    peer_exit(node, 2, 2, message, root)
    kept = tuple(p for a in of_type(node.actions, PersistPool) for p in a.partials)
    assert {p.share for p in kept} == {ME, 2}
    again = node.feed(Started(node.now, pool=kept))
    (broadcast,) = [b for b in of_type(again, Broadcast) if b.payload.pool]
    assert {p.share for p in broadcast.payload.pool} == {ME, 2}
    (submit,) = exits_submitted(peer_exit(node, 3, 3, message, root))
    assert verifies(node.pubkey(V), root, submit.body["signature"])


def test_an_exit_is_sent_again_each_epoch_until_the_bn_shows_it() -> None:
    node = started_node()
    message = exit_message(node)
    root = exit_root(node, message)
    for share in (ME, 2, 3):
        if share == ME:
            vc_exit(node, message, share_sign(node, ME, root))
        else:
            peer_exit(node, share, share, message, root)
    (first,) = exits_submitted(node.actions)
    node.feed(BNSubmitted(first.duty, first.pubkeys, False, "not yet eligible"))
    next_epoch = node.clock.slot_start_ms(node.clock.first_slot(node.clock.epoch_at(node.now) + 1))
    assert len(exits_submitted(node.advance(next_epoch))) == 1
    info = ValidatorInfo(node.pubkey(V), V, "active_exiting")
    node.feed(ValidatorsResolved((info,)))
    assert node.state.pool[hex0x(root)].phase is PoolPhase.ON_CHAIN
    later = node.clock.slot_start_ms(node.clock.first_slot(node.clock.epoch_at(node.now) + 1))
    assert exits_submitted(node.advance(later)) == []


def test_a_group_signed_exit_from_the_vc_is_submitted() -> None:
    node = started_node()
    message = exit_message(node)
    root = exit_root(node, message)
    group = hex0x(bls.sign(node.chain.secrets[V], root))
    rid, actions = vc_exit(node, message, group)
    assert replies(actions, rid)[0].status == 200
    assert exits_submitted(actions)[0].body["signature"] == group


def test_a_bad_vc_exit_gets_400_and_changes_nothing() -> None:
    node = started_node()
    message = exit_message(node)
    rid, actions = vc_exit(node, message, share_sign(node, 2, exit_root(node, message)))
    assert replies(actions, rid)[0].status == 400 and node.state.pool == {}
    rid, actions = vc_exit(node, {"epoch": "x", "validator_index": "0"}, "0x" + "11" * 96)
    assert replies(actions, rid)[0].status == 400


def test_signer_mode_exit_waits_for_m_operators_then_answers_the_group_signature() -> None:
    node = started_node(signer=True)
    message = exit_message(node)
    root = exit_root(node, message)
    body = {
        "type": "VOLUNTARY_EXIT",
        "fork_info": node.fork_info(node.clock.slot_at(node.now)),
        "voluntary_exit": message,
    }
    rid, actions = node.sign_request(V, body)
    (answer,) = replies(actions, rid)
    assert answer.status == 412 and "waiting for 2 more operator(s)" in answer.body["message"]
    assert [i.signing_root for a in of_type(actions, SignWithShare) for i in a.items] == [hex0x(root)]
    signed = node.sign_with_shares(actions)
    assert of_type(signed, PersistPool) and of_type(signed, Broadcast)
    peer_exit(node, 2, 2, message, root)
    rid, actions = node.sign_request(V, body)
    assert "waiting for 1 more operator(s)" in replies(actions, rid)[0].body["message"]
    peer_exit(node, 3, 3, message, root)
    assert len(exits_submitted(node.actions)) == 1  # the node submits it itself
    rid, actions = node.sign_request(V, body)
    (answer,) = replies(actions, rid)
    assert answer.status == 200 and verifies(node.pubkey(V), root, answer.body["signature"])


# ---- registrations ---------------------------------------------------------------------------------------------


def registration(node: OneNode, fee: str = FEE, timestamp: int = 1_000, validator: int = V) -> dict[str, str]:
    return {
        "fee_recipient": fee,
        "gas_limit": "36000000",
        "timestamp": str(timestamp),
        "pubkey": node.pubkey(validator),
    }


def registration_root(node: OneNode, message: dict[str, Any]) -> bytes:
    return signing_root(node.chain.schedule, Kind.VALIDATOR_REGISTRATION, message)


def node_with_registration(signer: bool = False) -> OneNode:
    node = OneNode(signer=signer)
    message = registration(node)
    signature = hex0x(bls.sign(node.chain.secrets[V], registration_root(node, message)))
    keys = list(node.chain.keys)
    keys[V] = dataclasses.replace(keys[V], registration={"message": message, "signature": signature})
    node.config = NodeConfig(ME, node.m, tuple(keys), node.chain.config, signs_own_partials=signer)
    node.state = NodeState(node.config)
    node.start()
    return node


def registrations_submitted(actions: list[Any]) -> list[SubmitToBN]:
    return [a for a in of_type(actions, SubmitToBN) if a.kind is SubmissionKind.REGISTRATIONS]


def test_the_locks_registration_is_submitted_at_start_and_each_epoch() -> None:
    node = node_with_registration()
    (first,) = registrations_submitted(node.actions)
    (signed,) = first.body
    assert signed["message"] == registration(node)
    assert verifies(node.pubkey(V), registration_root(node, signed["message"]), signed["signature"])
    before = len(registrations_submitted(node.actions))
    node.advance(node.clock.slot_start_ms(node.clock.first_slot(1)))
    assert len(registrations_submitted(node.actions)) == before + 2  # at genesis, and at epoch 1


def test_a_vcs_own_registration_is_replaced_by_the_clusters() -> None:
    node = node_with_registration()
    mine = registration(node, fee=NEW_FEE, timestamp=5)
    mine["pubkey"] = node.config.my_share(node.pubkey(V))
    other = {"message": {**mine, "pubkey": "0x" + "99" * 48}, "signature": "0x" + "11" * 96}
    node.request_id += 1
    actions = node.feed(
        VCSubmission(
            node.request_id,
            SubmissionKind.REGISTRATIONS,
            ({"message": mine, "signature": "0x" + "22" * 96}, other),
        )
    )
    bodies = [b for s in registrations_submitted(actions) for b in s.body]
    assert {"message": registration(node), "signature": node.state.registrations[node.pubkey(V)][1]} in bodies
    assert other in bodies and all(b["message"]["fee_recipient"] != NEW_FEE or b is other for b in bodies)
    assert replies(actions, node.request_id)[0].status == 200


def test_prepare_beacon_proposer_gets_the_clusters_fee_recipient() -> None:
    node = node_with_registration()
    node.request_id += 1
    asked = (
        {"validator_index": "0", "fee_recipient": NEW_FEE},
        {"validator_index": "77", "fee_recipient": NEW_FEE},
    )
    actions = node.feed(VCSubmission(node.request_id, SubmissionKind.PREPARE_PROPOSER, asked))
    (submit,) = [a for a in of_type(actions, SubmitToBN) if a.kind is SubmissionKind.PREPARE_PROPOSER]
    assert submit.body == [{"validator_index": "0", "fee_recipient": FEE}, asked[1]]


def test_signer_mode_signs_only_the_current_registration() -> None:
    node = node_with_registration(signer=True)
    rid, actions = node.sign_request(
        V, {"type": "VALIDATOR_REGISTRATION", "validator_registration": registration(node)}
    )
    (answer,) = replies(actions, rid)
    assert answer.status == 200
    assert verifies(node.pubkey(V), registration_root(node, registration(node)), answer.body["signature"])
    other = registration(node, fee=NEW_FEE)
    rid, actions = node.sign_request(V, {"type": "VALIDATOR_REGISTRATION", "validator_registration": other})
    (answer,) = replies(actions, rid)
    assert answer.status == 412 and "current registration" in answer.body["message"]


def operator_registration(node: OneNode, message: dict[str, Any]) -> list[Any]:
    root = registration_root(node, message)
    node.request_id += 1
    body = {"message": message, "signature": share_sign(node, ME, root)}
    return node.feed(VCSubmission(node.request_id, SubmissionKind.OPERATOR_REGISTRATION, (body,)))


def peer_registration(node: OneNode, share: int, message: dict[str, Any]) -> list[Any]:
    root = registration_root(node, message)
    partial = PoolPartial(
        DutyKind.BUILDER_REGISTRATION,
        node.pubkey(V),
        message,
        hex0x(root),
        share,
        share_sign(node, share, root),
    )
    return node.feed(PeerMessage(share, PeerPayload(pool=(partial,))))


def test_m_operators_change_the_registration_and_it_survives_a_restart() -> None:
    node = node_with_registration()
    new = registration(node, fee=NEW_FEE, timestamp=2_000)
    operator_registration(node, new)
    peer_registration(node, 2, new)
    assert node.state.registrations[node.pubkey(V)][0]["fee_recipient"] == FEE  # M - 1: unchanged
    actions = peer_registration(node, 3, new)
    (submit,) = registrations_submitted(actions)
    assert submit.body[0]["message"] == new
    assert verifies(node.pubkey(V), registration_root(node, new), submit.body[0]["signature"])
    kept = tuple(p for a in of_type(node.actions, PersistPool) for p in a.partials)
    node.feed(Started(node.now, pool=kept))
    assert node.state.registrations[node.pubkey(V)][0] == new


def test_an_older_registration_never_replaces_the_current_one() -> None:
    node = node_with_registration()
    old = registration(node, fee=NEW_FEE, timestamp=10)  # older than the lock's (1,000)
    operator_registration(node, old)
    peer_registration(node, 2, old)
    peer_registration(node, 3, old)
    assert node.state.registrations[node.pubkey(V)][0] == registration(node)


def test_a_restart_keeps_every_stored_message_even_past_the_open_bound() -> None:
    """An operator's exits that combined long ago do not count against the bound at a restart: the
    store's partials all come back (they were accepted when they arrived)."""
    node = started_node()
    for epoch in range(2):  # two exits of operator 2 combine
        message = exit_message(node, epoch=epoch)
        root = exit_root(node, message)
        for share in (2, 3, 4):
            peer_exit(node, share, share, message, root)
    message = exit_message(node, epoch=5)  # and a third is open
    peer_exit(node, 2, 2, message, exit_root(node, message))
    kept = tuple(p for a in of_type(node.actions, PersistPool) for p in a.partials)
    node.feed(Started(node.now, pool=kept))
    assert len(node.state.pool) == 3
    assert sorted(e.phase.value for e in node.state.pool.values()) == ["collecting", "combined", "combined"]
