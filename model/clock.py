"""Slot clock arithmetic: when each duty starts and when it must be given up. No clock is read here.

Time is an integer count of milliseconds since the Unix epoch, handed in by events (`Tick`,
`TimerFired`), so the simulator and the runtime drive the same code with virtual or real time.

Duty start offsets (the consensus specs' validator guide; ARCHITECTURE.md):
  proposer and its RANDAO          slot start (the VC asks for the block at slot start)
  attester, sync committee message 1/3 of the slot (a block for the slot has had time to arrive)
  aggregator, sync contribution    2/3 of the slot
  selection proofs (prepare_*)     when the VC asks; scheduled with the duty they select for

Deadlines: a duty not finished by its deadline ends with `deadline_exceeded` (or a sharper reason).
A block is useless after its slot ends; attestations, aggregates, sync messages and contributions
still count when included a slot or more later, so they get two slots from their slot's start.
"""

from __future__ import annotations

from dataclasses import dataclass

from covalidator.model.duty import KINDS, DutyId


@dataclass(frozen=True)
class SlotClock:
    genesis_time_ms: int
    slot_ms: int
    slots_per_epoch: int

    def __post_init__(self) -> None:
        assert self.slot_ms > 0 and self.slots_per_epoch > 0

    def slot_start_ms(self, slot: int) -> int:
        return self.genesis_time_ms + slot * self.slot_ms

    def slot_at(self, now_ms: int) -> int:
        """The slot in progress at `now_ms` (0 before genesis)."""
        return max(0, (now_ms - self.genesis_time_ms) // self.slot_ms)

    def epoch_of(self, slot: int) -> int:
        return slot // self.slots_per_epoch

    def first_slot(self, epoch: int) -> int:
        return epoch * self.slots_per_epoch

    def epoch_at(self, now_ms: int) -> int:
        return self.epoch_of(self.slot_at(now_ms))

    def duty_start_ms(self, duty: DutyId) -> int:
        numerator, denominator = KINDS[duty.kind].start
        return self.slot_start_ms(duty.slot) + self.slot_ms * numerator // denominator

    def duty_deadline_ms(self, duty: DutyId) -> int:
        return self.slot_start_ms(duty.slot) + self.slot_ms * KINDS[duty.kind].deadline_slots
