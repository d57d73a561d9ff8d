"""A Byzantine co-operator with a valid identity key sending well-formed, hostile partial signatures
(issue 16, Medium: "a Byzantine co-operator can exhaust honest nodes' memory"), on the node model.

Keys `<group>/<any string>` used to create a new validator entry per string; batches were bounded
only by the frame size. Each test sends the attack and shows the node keeps nothing of it, with a
named drop reason, while the same peer's honest partials still count. Limits are tested at the
bound and one over it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from covalidator.model.duty import DutyId, DutyKind
from covalidator.model.eth.signing import Kind
from covalidator.model.node.events import Metric, PartialSignature
from covalidator.model.node.parsig import is_key_of, max_batch
from tests.helpers.one_node import OneNode, of_type

SENDER = 2


def drops(node: OneNode, cause: str) -> int:
    return sum(
        1
        for m in of_type(node.actions, Metric)
        if m.name == "peer_message_dropped" and ("cause", cause) in m.labels
    )


def randao_node(validators: int = 3) -> tuple[OneNode, DutyId]:
    node = OneNode(validators=validators)
    node.start()
    return node, DutyId(8, DutyKind.RANDAO)


def test_invented_key_suffixes_make_no_validator_entries() -> None:
    node, duty = randao_node(validators=5)  # room in one batch for the 4 invented keys and the honest one
    epoch = {"epoch": "1"}
    honest = node.partial(SENDER, 0, Kind.RANDAO_REVEAL, epoch, carry=True)
    invented = [replace(honest, pubkey=f"{honest.pubkey}/{suffix}") for suffix in ("x", "0", "1" * 40, "")]
    node.peer_partials(duty, SENDER, [*invented, honest])
    assert set(node.state.duties[duty].validators) == {honest.pubkey}  # the honest one only
    assert drops(node, "bad_subcommittee") == len(invented)


def test_subcommittee_keys_only_for_sync_contribution_kinds_and_in_range() -> None:
    node, _ = randao_node()
    group = node.pubkey(0)
    subnets = node.chain.config.sync_committee_subnet_count
    for kind in (DutyKind.SYNC_CONTRIBUTION, DutyKind.PREPARE_SYNC_CONTRIBUTION):
        assert is_key_of(node.state, kind, f"{group}/0")
        assert is_key_of(node.state, kind, f"{group}/{subnets - 1}")  # the bound
        for bad in (f"{group}/{subnets}", f"{group}/01", f"{group}/-1", f"{group}/١", f"{group}/0/0", group):
            assert not is_key_of(node.state, kind, bad), (kind, bad)
    for kind in (DutyKind.ATTESTER, DutyKind.RANDAO, DutyKind.SYNC_MESSAGE, DutyKind.AGGREGATOR):
        assert is_key_of(node.state, kind, group)
        assert not is_key_of(node.state, kind, f"{group}/0"), kind


def test_a_batch_larger_than_any_honest_one_is_dropped_whole() -> None:
    node, duty = randao_node()
    epoch = {"epoch": "1"}
    honest = [node.partial(SENDER, v, Kind.RANDAO_REVEAL, epoch, carry=True) for v in range(3)]
    bound = max_batch(node.state, DutyKind.RANDAO)
    assert bound == 3  # one per validator of the cluster
    over: list[PartialSignature] = [*honest, honest[0]]  # one over: dropped unread
    node.peer_partials(duty, SENDER, over)
    assert drops(node, "too_many_partials") == 1 and duty not in node.state.duties
    node.peer_partials(duty, SENDER, honest)  # at the bound: every partial counts
    assert drops(node, "too_many_partials") == 1
    assert {k: SENDER in vd.partials for k, vd in node.state.duties[duty].validators.items()} == {
        node.pubkey(v): True for v in range(3)
    }
    state = node.state
    assert max_batch(state, DutyKind.SYNC_CONTRIBUTION) == 3 * state.config.chain.sync_committee_subnet_count
    assert max_batch(state, DutyKind.SYNC_MESSAGE) == 3 * state.config.limits.sync_roots


def test_justifications_are_bounded_at_decode_two_quorums_and_not_one_more() -> None:
    """A QBFT envelope carries at most 2N justification messages (a ROUND-CHANGE quorum and a PREPARE
    quorum); one more is refused as malformed before anything reads or verifies it."""
    import pytest

    from covalidator.model.node.codec import to_json
    from covalidator.model.node.events import PeerPayload
    from covalidator.model.qbft.messages import Envelope, Message, MsgType
    from covalidator.runtime.peers import _Malformed, decode_payload

    duty = DutyId(9, DutyKind.ATTESTER)
    nodes = 4

    def payload(justifications: int) -> object:
        proposal = Message(MsgType.PRE_PREPARE, duty, 2, 2, "0x" + "aa" * 32)
        rcs = tuple(Message(MsgType.ROUND_CHANGE, duty, 1 + i % nodes, 2) for i in range(justifications))
        return to_json(PeerPayload(qbft=Envelope(proposal, b"{}", rcs)))

    assert decode_payload(payload(2 * nodes), nodes).qbft is not None  # at the bound
    with pytest.raises(_Malformed, match="justification"):
        decode_payload(payload(2 * nodes + 1), nodes)  # one over


def test_a_partial_that_is_not_hex_is_dropped_and_the_node_steps_on() -> None:
    """Found by a review of the fuzzed inputs: a peer partial whose signature (or root) was not 0x-hex
    was stored, and combining then raised in the model (the node restarted from its store). Now it is
    dropped as malformed, and the peer's well-formed partials still count."""
    node, duty = randao_node()
    epoch = {"epoch": "1"}
    honest = node.partial(SENDER, 0, Kind.RANDAO_REVEAL, epoch, carry=True)
    bad = [
        replace(honest, signature="0x" + "zz" * 96),
        replace(honest, signature="0x" + "aa" * 95),
        replace(honest, signing_root="0x" + "zz" * 32),
    ]
    for partial in bad:
        node.peer_partials(duty, SENDER, [partial])
    assert drops(node, "malformed") == len(bad)
    rec = node.state.duties.get(duty)
    assert rec is None or all(SENDER not in vd.partials for vd in rec.validators.values())
    node.peer_partials(duty, SENDER, [honest])
    assert SENDER in node.state.duties[duty].validators[honest.pubkey].partials


def test_a_payload_with_a_field_of_the_wrong_type_is_refused_at_decode() -> None:
    """dataclasses-json coerces rather than checks, so the decoder checks the raw JSON against the
    payload's declared types first. Each case below breaks one declared type (the comment says which)
    of a payload that decodes; each must be refused as malformed before the model sees it."""
    import copy

    import pytest

    from covalidator.model.node.codec import to_json
    from covalidator.model.node.events import PartialSignatures, PeerPayload
    from covalidator.model.qbft.messages import Envelope, Message, MsgType
    from covalidator.runtime.peers import _Malformed, decode_payload

    duty, nodes = DutyId(9, DutyKind.ATTESTER), 4
    proposal = Message(MsgType.PRE_PREPARE, duty, 2, 2, "0x" + "aa" * 32)
    qbft = to_json(PeerPayload(qbft=Envelope(proposal, b"{}", (Message(MsgType.ROUND_CHANGE, duty, 1, 2),))))
    root, sig = "0x" + "11" * 32, "0x" + "22" * 96
    partial = PartialSignature("0xab", root, sig, {"epoch": "1"})
    partials = to_json(PeerPayload(partials=PartialSignatures(DutyId(8, DutyKind.RANDAO), (partial,))))
    assert decode_payload(copy.deepcopy(qbft), nodes).qbft is not None
    assert decode_payload(copy.deepcopy(partials), nodes).partials is not None

    def broken(data: dict[str, Any], path: str, value: Any = KeyError) -> dict[str, Any]:
        out = copy.deepcopy(data)
        *parents, last = path.split(".")
        node: Any = out
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if value is KeyError:
            del node[last]
        else:
            node[last] = value
        return out

    cases = [
        broken(qbft, "qbft.message.round", "2"),  # int: a string
        broken(qbft, "qbft.message.round", -1),  # uint64: negative
        broken(qbft, "qbft.message.round", 2**64),  # uint64: too large
        broken(qbft, "qbft.message.sender", True),  # int: a bool
        broken(qbft, "qbft.message.type", 9),  # MsgType: no such member
        broken(qbft, "qbft.message.type", "1"),  # MsgType: a member's value as a string
        broken(qbft, "qbft.message.instance"),  # a required field, missing
        broken(qbft, "qbft.justification", "[]"),  # tuple: a string
        broken(qbft, "qbft.justification.0.round", None),  # int: null, inside a justification
        broken(qbft, "qbft.body", "abc"),  # bytes: odd-length hex
        broken(partials, "partials.partials.0.pubkey", 7),  # str: an int
        broken(partials, "partials.duty.kind", "no_such_kind"),  # DutyKind: no such member
        broken(partials, "partials.waiting", "yes"),  # bool: a string
        broken(partials, "partials.partials", {"0": {}}),  # tuple: an object
        broken(partials, "partials", [partials["partials"]]),  # a dataclass: a list
    ]
    for case in cases:
        with pytest.raises(_Malformed):
            decode_payload(case, nodes)
    # The decoder's builder would also stumble on a missing field or an unknown member; the shape
    # check refuses them first, itself (it is what stands between a coercing decoder and the model)
    from covalidator.runtime.peers import _json_conforms

    assert _json_conforms(copy.deepcopy(qbft), PeerPayload)
    assert not _json_conforms(broken(qbft, "qbft.message.instance"), PeerPayload)
    assert not _json_conforms(broken(qbft, "qbft.message.type", 9), PeerPayload)
    assert not _json_conforms(broken(qbft, "qbft.message.type", "1"), PeerPayload)
    assert not _json_conforms(broken(partials, "partials.duty.kind", "no_such_kind"), PeerPayload)
    assert not _json_conforms(broken(qbft, "qbft.message.type", True), PeerPayload)  # == 1, not an int
