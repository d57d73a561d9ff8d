"""Signer mode: this node's share signatures, earliest duty deadline first.

The model asks for partials in batches (`SignWithShare`), and some batches are large and not urgent:
at an epoch's start the selection proofs of the whole next epoch (every attester duty, every slot and
subcommittee of a sync committee member). Signed in arrival order, such a batch delayed a RANDAO
reveal asked in the same moment by two seconds on the Lodestar devnet, so the block came after the
sync committee messages and they signed its parent. Here every item waits in one heap keyed by its
duty's deadline; one worker signs the most urgent `chunk` items at a time in the signing thread and
hands each chunk to the model (`SharesSigned`), so an urgent item waits at most one chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import Callable, Sequence
from concurrent.futures import Executor

from covalidator.model.node.events import NodeEvent, SharesSigned, ShareToSign
from covalidator.runtime.share_keys import ShareSigner

CHUNK = 16  # items per trip to the signing thread (~16 BLS signatures: tens of milliseconds)


class SignQueue:
    def __init__(
        self,
        signer: ShareSigner,
        deadline_ms: Callable[[ShareToSign], int],
        deliver: Callable[[NodeEvent], None],
        executor: Executor,
        chunk: int = CHUNK,
    ) -> None:
        self._signer = signer
        self._deadline_ms = deadline_ms
        self._deliver = deliver
        self._executor = executor
        self._chunk = chunk
        self._heap: list[tuple[int, int, ShareToSign]] = []
        self._arrivals = itertools.count()
        self._worker: asyncio.Task[None] | None = None
        self.chunks_signed = 0

    def add(self, items: Sequence[ShareToSign]) -> None:
        for item in items:
            heapq.heappush(self._heap, (self._deadline_ms(item), next(self._arrivals), item))
        if self._heap and (self._worker is None or self._worker.done()):
            self._worker = asyncio.ensure_future(self._work())

    def pending(self) -> int:
        return len(self._heap)

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while self._heap:
            count = min(self._chunk, len(self._heap))
            batch = [heapq.heappop(self._heap)[2] for _ in range(count)]
            signed: SharesSigned = await loop.run_in_executor(self._executor, self._signer.sign, batch)
            self.chunks_signed += 1
            if signed.signed:
                self._deliver(signed)

    async def close(self) -> None:
        self._heap.clear()
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
