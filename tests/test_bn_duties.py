"""A BN's duties whose fields are missing or out of range (found by a review of the fuzzed inputs):
the model read them later as numbers (committee seats, subcommittees) and raised at the duty's start
or its combination. Each bad entry is ignored with a named warning and metric; the well-formed duty
next to it is scheduled as usual."""

from __future__ import annotations

from typing import Any

import pytest

from covalidator.model.duty import DutyId, DutyKind
from covalidator.model.node.events import DutiesFetched, DutiesKind, Log, Metric
from tests.helpers.one_node import ROOT_A, OneNode, of_type


def ignored(actions: list[Any]) -> list[str]:
    return [dict(a.fields).get("problem", "") for a in of_type(actions, Log) if "malformed duty" in a.message]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda d: d.pop("committee_index"), "committee_index"),
        (lambda d: d.update(committee_length="5000"), "committee_length 5000"),
        (lambda d: d.update(committee_length="0"), "committee_length 0"),
        (lambda d: d.update(validator_committee_index="4"), "past the committee"),
        (lambda d: d.update(committee_index="1"), "past committees_at_slot"),
        (lambda d: d.update(validator_index=[1]), "validator_index"),
        (lambda d: d.update(slot={"x": 1}), "slot"),
    ],
    ids=["no-committee", "long", "empty", "seat", "committee", "index-list", "slot-object"],
)
def test_a_malformed_attester_duty_is_ignored_by_name(change: Any, words: str) -> None:
    node = OneNode(validators=2)
    node.start()
    slot = node.clock.first_slot(1) + 1
    bad, good = node.attester_duty(0, slot), node.attester_duty(1, slot)
    change(bad)
    actions = node.attester_duties(1, bad, good)
    assert any(words in problem for problem in ignored(actions)), ignored(actions)
    assert any(m.name == "bn_duty_malformed" for m in of_type(actions, Metric))
    assert list(node.state.duties[DutyId(slot, DutyKind.ATTESTER)].validators) == [node.pubkey(1)]
    node.advance(node.duty_start(DutyId(slot, DutyKind.ATTESTER)) + 10)  # its start runs: no raise


@pytest.mark.parametrize(
    "positions", [5, None, [], ["x"], ["99999"]], ids=["int", "null", "empty", "text", "past"]
)
def test_a_malformed_sync_duty_is_ignored(positions: Any) -> None:
    node = OneNode(signer=True)
    node.start()
    good = {"pubkey": node.pubkey(0), "validator_index": "0", "validator_sync_committee_indices": ["0"]}
    bad = {"pubkey": node.pubkey(1), "validator_index": "1", "validator_sync_committee_indices": positions}
    actions = node.feed(DutiesFetched(DutiesKind.SYNC, 1, (bad, good), ROOT_A))
    assert ignored(actions)
    assert list(node.state.sync_members[node.config.chain.sync_period(1)]) == [node.pubkey(0)]
    node.advance(node.clock.slot_start_ms(node.clock.first_slot(1) + 1))  # its messages run: no raise
