"""Decimal strings are read strictly: `str.isdigit()` accepts characters `int()` refuses ('²') or reads
as other digits ('٣'), so a check built on it let a ValueError escape past the data checks (issue 16's
Low finding). Each entry point gets such a string and answers with its own named error, never a crash."""

from __future__ import annotations

import pytest

from covalidator.model.eth.beacon_data import DataProblem, uint
from covalidator.model.eth.signing import Kind, SigningError, message_epoch
from covalidator.model.node.events import ReplyToVC, VCRequestKind
from tests.helpers.one_node import OneNode, of_type

# superscript two, a trailing one, Arabic-Indic three, full-width one; and 5,000 ASCII digits, which
# isdigit() accepts and int() refuses (past 4,300 digits: found by a review of the fuzzed inputs)
TRICKY = ["²", "1²", "٣", "１", "5" * 5000]


@pytest.mark.parametrize("text", TRICKY, ids=range(len(TRICKY)))
def test_uint_refuses_non_ascii_digits_by_name(text: str) -> None:
    assert text.isdigit()  # what the old check trusted
    with pytest.raises(DataProblem):
        uint({"slot": text}, "slot")


@pytest.mark.parametrize("text", TRICKY, ids=range(len(TRICKY)))
def test_a_messages_epoch_refuses_them_with_a_signing_error(text: str) -> None:
    node = OneNode()
    with pytest.raises(SigningError):
        message_epoch(node.chain.schedule, Kind.RANDAO_REVEAL, {"epoch": text})


@pytest.mark.parametrize("text", TRICKY, ids=range(len(TRICKY)))
def test_a_vc_asking_for_such_a_slot_gets_an_error_and_the_node_steps_on(text: str) -> None:
    node = OneNode()
    node.start()
    _, actions = node.vc_request(VCRequestKind.ATTESTATION_DATA, {"slot": text, "committee_index": "0"})
    (reply,) = of_type(actions, ReplyToVC)
    assert reply.status == 400
    _, actions = node.vc_request(VCRequestKind.ATTESTATION_DATA, {"slot": "1", "committee_index": "0"})
    assert actions  # the node still answers


def test_the_devnet_bn_refuses_them_by_name() -> None:
    from covalidator.runtime.devnet.bn import BadRequest
    from covalidator.runtime.devnet.bn import uint as bn_uint

    with pytest.raises(BadRequest):
        bn_uint("²", "slot")
