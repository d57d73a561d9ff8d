"""Executes model `Persist` actions in a loop until killed (tests/test_runtime_store.py).

Usage: persist_writer.py DB FIRST_SLOT. Duty at slot s decides {"s": s} and records one attestation
(source s-1, target s) and one block (slot s) for a fixed validator; prints "PERSISTED s" after the
store returns.
"""

from __future__ import annotations

import sys

from covalidator.model.duty import DutyId, DutyKind
from covalidator.model.node.events import Persist, SlashingRecord
from covalidator.runtime.store import Store

PUBKEY = "0x" + "a1" * 48


def main() -> None:
    store = Store(sys.argv[1])
    slot = int(sys.argv[2])
    while True:
        root = "0x" + slot.to_bytes(32, "big").hex()
        records = (
            SlashingRecord(PUBKEY, source_epoch=slot - 1, target_epoch=slot, signing_root=root),
            SlashingRecord(PUBKEY, slot=slot, signing_root=root),
        )
        store.persist(Persist(DutyId(slot, DutyKind.ATTESTER), {"s": slot}, f"0x{slot:064x}", records))
        print("PERSISTED", slot, flush=True)
        slot += 1


if __name__ == "__main__":
    main()
