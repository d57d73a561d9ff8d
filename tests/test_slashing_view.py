"""The node's in-memory slashing view (model/slashing/view.py): what it keeps after pruning, and that
a recorded block makes a second block at its slot refused (EIP-3076: one block per slot). Expectations
are written out from the rules' text, not computed with the view."""

from __future__ import annotations

from covalidator.model.slashing.rules import SignedAttestation, SignedBlock
from covalidator.model.slashing.view import SlashingView
from tests.helpers.one_node import OneNode

A, B = b"\xaa" * 32, b"\xbb" * 32


def test_pruning_keeps_records_at_or_after_the_cut_off_and_always_the_latest() -> None:
    view = SlashingView()
    for slot in (5, 10, 15, 20):
        view.record_block("v", SignedBlock(slot, A))
    view.record_block("w", SignedBlock(3, A))  # only old records: its latest stays
    for target in (2, 4, 6, 8):
        view.record_attestation("v", SignedAttestation(target - 1, target, A))
    view.record_attestation("w", SignedAttestation(0, 1, A))
    view.prune(before_epoch=4, before_slot=10)
    assert [b.slot for b in view.blocks["v"]] == [10, 15, 20]
    assert [b.slot for b in view.blocks["w"]] == [3]
    assert [a.target_epoch for a in view.attestations["v"]] == [4, 6, 8]
    assert [a.target_epoch for a in view.attestations["w"]] == [1]


def test_a_recorded_block_makes_another_block_at_its_slot_refused() -> None:
    view = SlashingView()
    assert view.check_block("v", SignedBlock(7, B)).safe
    view.record_block("v", SignedBlock(7, A))
    view.record_block("v", SignedBlock(7, A))  # recorded twice: kept once
    assert len(view.blocks["v"]) == 1
    assert not view.check_block("v", SignedBlock(7, B)).safe  # a double proposal
    assert view.check_block("v", SignedBlock(7, A)).safe  # the same block again: allowed


def test_the_node_keeps_the_last_four_epochs_of_attestation_records() -> None:
    node = OneNode()
    node.start()
    key = node.pubkey(0)
    for target in range(10):
        node.state.slashing.record_attestation(key, SignedAttestation(max(0, target - 1), target, A))
    node.advance(node.clock.slot_start_ms(node.clock.first_slot(10)) + 1)  # the epoch timers up to epoch 10
    assert [a.target_epoch for a in node.state.slashing.attestations[key]] == [6, 7, 8, 9]
