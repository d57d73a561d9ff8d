"""Signer mode's signing queue (runtime/sign_queue.py): the most urgent duty is signed first.

On the Lodestar devnet a RANDAO reveal asked at an epoch's start waited two seconds behind the next
epoch's selection proofs, signed in arrival order. The queue must sign by duty deadline, one chunk at
a time, so an urgent item asked after a large batch waits at most one chunk.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from covalidator.model.duty import DutyId, DutyKind
from covalidator.model.node.events import NodeEvent, ShareSigned, SharesSigned, ShareToSign
from covalidator.runtime.share_keys import ShareSigner
from covalidator.runtime.sign_queue import SignQueue


class SlowSigner(ShareSigner):
    """Records the order it is asked in; each chunk takes a little time, as BLS signing does."""

    def __init__(self) -> None:
        super().__init__({})
        self.order: list[DutyId] = []

    def sign(self, items: object) -> SharesSigned:
        import time

        batch = list(items)  # type: ignore[call-overload]
        time.sleep(0.02)
        self.order += [item.duty for item in batch]
        return SharesSigned(tuple(ShareSigned(item, "0x00") for item in batch))


def item(slot: int, kind: DutyKind) -> ShareToSign:
    return ShareToSign(DutyId(slot, kind), "0xaa", "0x" + "11" * 32, None)


def test_an_urgent_item_asked_after_a_large_batch_is_signed_within_one_chunk() -> None:
    async def run() -> tuple[list[DutyId], list[NodeEvent]]:
        signer = SlowSigner()
        delivered: list[NodeEvent] = []
        with ThreadPoolExecutor(1) as executor:
            queue = SignQueue(signer, lambda i: i.duty.slot * 1000, delivered.append, executor, chunk=4)
            queue.add([item(slot, DutyKind.PREPARE_SYNC_CONTRIBUTION) for slot in range(33, 53)])  # 20 items
            await asyncio.sleep(0.005)  # the first chunk is being signed
            queue.add([item(24, DutyKind.RANDAO)])
            while queue.pending():
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            await queue.close()
        return signer.order, delivered

    order, delivered = asyncio.run(run())
    assert len(order) == 21 and len(delivered) == 6  # everything signed, one SharesSigned per chunk
    assert order.index(DutyId(24, DutyKind.RANDAO)) == 4  # right after the chunk already in the thread
    later = [d.slot for d in order if d.kind is DutyKind.PREPARE_SYNC_CONTRIBUTION]
    assert later == sorted(later)  # the rest by deadline
