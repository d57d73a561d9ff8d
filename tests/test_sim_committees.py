"""The simulated chain's committees follow the consensus specs' arithmetic (issue 17): the number of
committees per slot is the specs' own `get_committee_count_per_slot` over the chain's active set (with
the chain's target committee size), and the committees are the specs' `compute_committee` slices of the
shuffled active set; so at 5,000 and 10,000 validators every cluster validator has exactly one duty, in
a slot of its epoch, at a seat inside its committee (before, committees kept a fixed size and ran past
the epoch's last slot: 1.05% of duties at 5,000). The oracle is the specs' code, never `sim/chain.py`."""

from __future__ import annotations

import inspect
from collections import Counter
from types import SimpleNamespace
from typing import Any

import pytest

from covalidator.model.eth.specs import FAR_FUTURE_EPOCH, spec
from covalidator.sim.chain import MAINNET, MINIMAL, PRESETS, ChainParams, Preset, attester_assignment


def unwrapped(function: Any) -> Any:
    """The specs' function under its memoising wrapper."""
    return inspect.getclosurevars(function).nonlocals.get("value_fn", function)


def spec_committees(SPEC: Any, total: int, target: int) -> tuple[int, list[int]]:
    """(committees per slot, the epoch's committee lengths in order) from the specs' functions, over
    `total` active validators, with TARGET_COMMITTEE_SIZE = `target` and the shuffle left out
    (compute_committee's slicing is what is compared; the simulated chain shuffles with its own seed)."""
    state = SimpleNamespace(
        validators=[SimpleNamespace(activation_epoch=0, exit_epoch=FAR_FUTURE_EPOCH)] * total
    )
    saved = SPEC.TARGET_COMMITTEE_SIZE, SPEC.compute_shuffled_index, SPEC.get_active_validator_indices
    SPEC.TARGET_COMMITTEE_SIZE = SPEC.Uint64(target)
    SPEC.compute_shuffled_index = lambda index, count, seed: index
    # the specs memoise these by the state's hash tree root; the plain functions under the cache
    SPEC.get_active_validator_indices = unwrapped(SPEC.get_active_validator_indices)
    try:
        per_slot = int(unwrapped(SPEC.get_committee_count_per_slot)(state, SPEC.Epoch(0)))
        count = per_slot * int(SPEC.SLOTS_PER_EPOCH)
        indices = list(range(total))
        lengths = [len(SPEC.compute_committee(indices, b"\x00" * 32, i, count)) for i in range(count)]
    finally:
        SPEC.TARGET_COMMITTEE_SIZE, SPEC.compute_shuffled_index, SPEC.get_active_validator_indices = saved
    return per_slot, lengths


@pytest.mark.parametrize("preset", [MINIMAL, MAINNET], ids=lambda p: p.name)
def test_presets_are_the_specs(preset: Preset) -> None:
    s = spec("altair", preset.name)
    assert (
        preset.slots_per_epoch, preset.sync_committee_size, preset.epochs_per_sync_committee_period,
        preset.max_committees_per_slot, preset.sync_committee_subnet_count,
        preset.target_aggregators_per_committee, preset.target_aggregators_per_sync_subcommittee,
    ) == (
        s.SLOTS_PER_EPOCH, s.SYNC_COMMITTEE_SIZE, s.EPOCHS_PER_SYNC_COMMITTEE_PERIOD, s.MAX_COMMITTEES_PER_SLOT,
        s.SYNC_COMMITTEE_SUBNET_COUNT, s.TARGET_AGGREGATORS_PER_COMMITTEE,
        s.TARGET_AGGREGATORS_PER_SYNC_SUBCOMMITTEE,
    )  # fmt: skip
    assert PRESETS[preset.name] is preset


@pytest.mark.parametrize(
    ("preset", "validators", "target"),
    [
        *(
            (MINIMAL, v, t)
            for v, t in [
                (8, 16),
                (64, 64),
                (600, 64),
                (1000, 64),
                (2048, 64),
                (5000, 64),
                (10_000, 64),
                (10_000, 128),
                (777, 5),
            ]
        ),
        *((MAINNET, v, t) for v, t in [(100, 128), (1000, 128), (5000, 128), (10_000, 128), (300_000, 128)]),
    ],
)
def test_committees_follow_the_specs_for_the_active_set(preset: Preset, validators: int, target: int) -> None:
    SPEC = spec("altair", preset.name)
    SLOTS_PER_EPOCH = preset.slots_per_epoch
    p = ChainParams(validators=validators, committee_size=target, preset=preset)
    per_slot, lengths = spec_committees(SPEC, p.total, target)
    assert p.committees_per_slot == per_slot, (p.total, target)
    mine = [p.committee_length(slot, i) for slot in range(SLOTS_PER_EPOCH) for i in range(per_slot)]
    assert mine == lengths
    assert sum(lengths) == p.total  # every active validator in exactly one committee of the epoch

    epoch, first = 3, 3 * SLOTS_PER_EPOCH
    duties = attester_assignment(p, epoch, "0x" + "ab" * 32, first)
    assert sorted(duties) == list(range(validators))  # one duty per cluster validator
    seats = Counter()
    for index, duty in duties.items():
        assert first <= duty.slot < first + SLOTS_PER_EPOCH, (index, duty)
        assert duty.committees_at_slot == per_slot and 0 <= duty.committee_index < per_slot
        assert duty.committee_length == lengths[(duty.slot - first) * per_slot + duty.committee_index]
        assert 0 <= duty.validator_committee_index < duty.committee_length, duty
        seats[(duty.slot, duty.committee_index, duty.validator_committee_index)] += 1
    assert max(seats.values()) == 1  # no two validators in one seat
