"""The duty phase table (model/duty_state.py), read as data: which kind may take which path, and the
named reason a duty ends with when its BN never gave it data."""

from __future__ import annotations

import pytest

from covalidator.model.duty import CONSENSUS_KINDS, DutyId, DutyKind
from covalidator.model.node import phases as ds
from covalidator.model.node.events import BeaconDataFailed, DutyOutcome
from tests.helpers.one_node import OneNode, of_type

CONSENSUS_PATH = (ds.Trigger.START, ds.Trigger.READY, ds.Trigger.DECIDED, ds.Trigger.PERSISTED)


@pytest.mark.parametrize("kind", list(DutyKind))
def test_each_kind_follows_only_its_own_path(kind: DutyKind) -> None:
    table = ds.transitions_for(kind)
    triggers = {trigger for _, trigger in table}
    if kind in CONSENSUS_KINDS:
        assert ds.Trigger.OPEN not in triggers  # never signed without a decision
        assert set(CONSENSUS_PATH) <= triggers
    else:
        assert ds.Trigger.OPEN in triggers
        assert triggers.isdisjoint(CONSENSUS_PATH)  # no consensus path to wander into
    # every phase but DONE ends at the deadline, and DONE is final
    assert {phase for phase, trigger in table if trigger is ds.Trigger.DEADLINE} == set(ds.Phase) - {
        ds.Phase.DONE
    }
    assert not [key for key in table if key[0] is ds.Phase.DONE]


def test_advance_refuses_transitions_outside_the_kinds_table() -> None:
    rec = ds.DutyRecord(DutyId(1, DutyKind.ATTESTER))
    with pytest.raises(ds.TransitionError):
        rec.advance(ds.Trigger.OPEN)  # a consensus duty never opens without persisting
    randao = ds.DutyRecord(DutyId(1, DutyKind.RANDAO))
    for trigger in CONSENSUS_PATH:
        assert not randao.can(trigger)
        with pytest.raises(ds.TransitionError):
            randao.advance(trigger)
    randao.advance(ds.Trigger.OPEN)
    assert randao.phase is ds.Phase.SIGNING and ds.may_serve(randao.phase)
    randao.advance(ds.Trigger.DEADLINE)
    assert randao.phase is ds.Phase.DONE and not ds.may_serve(randao.phase)


def test_only_the_phase_after_persisted_serves() -> None:
    assert [p for p in ds.Phase if ds.may_serve(p)] == [ds.Phase.SIGNING]
    assert {ds.Phase.SCHEDULED, ds.Phase.WAITING, ds.Phase.CONSENSUS, ds.Phase.PERSISTING} == ds.UNDECIDED


def test_a_duty_whose_bn_never_answered_ends_with_fetch_bn_error_else_no_consensus() -> None:
    for bn_answers, reason in ((False, "fetch_bn_error"), (True, "no_consensus")):
        node = OneNode()
        node.start()
        duty = DutyId(9, DutyKind.ATTESTER)
        node.attester_duties(1, node.attester_duty(0, 9))
        node.advance(node.duty_start(duty))
        node.feed(BeaconDataFailed(duty, "503 from the BN"))
        if bn_answers:
            from covalidator.model.node.events import BeaconDataFetched

            node.feed(BeaconDataFetched(duty, {"0": node.attestation_data(9, source=0)}))
        node.advance(node.clock.duty_deadline_ms(duty))
        outcomes = [(o.duty, o.reason) for o in of_type(node.actions, DutyOutcome)]
        assert outcomes == [(duty, reason)], (bn_answers, outcomes)
