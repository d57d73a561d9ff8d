"""A bounded memo of a pure function: the one cache mechanism the model's hot paths and the runtime's
share (decoded BLS points, large signing roots, metric recorders).

Decides: how many entries a memo may hold (`size`; the oldest is evicted first) and that readers on
several threads see whole entries (a lock around the dict). Never computes under the lock: a slow
computation must not serialise other threads (two threads may compute one key; both get the value).
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class Memo[K, V]:
    """A bounded memo (oldest entry evicted first) that can also be seeded with known results.

    compute: what `memo(key)` computes for a key it does not hold; None for a memo filled only by
    `put` (its values need more than the key, as a signing root needs the message, not its digest)."""

    def __init__(self, compute: Callable[[K], V] | None, size: int) -> None:
        self._compute = compute
        self._size = size
        self._entries: dict[K, V] = {}
        self._lock = threading.Lock()

    def __call__(self, key: K) -> V:
        with self._lock:
            if key in self._entries:
                return self._entries[key]
        if self._compute is None:
            raise KeyError(key)  # a put-only memo: the caller computes (`peek`, then `put`)
        value = self._compute(key)  # outside the lock: a slow decode must not serialise other threads
        self.put(key, value)
        return value

    def __len__(self) -> int:
        return len(self._entries)

    def peek(self, key: K) -> V | None:
        """The memoised value, without computing it."""
        with self._lock:
            return self._entries.get(key)

    def put(self, key: K, value: V) -> None:
        with self._lock:
            if key not in self._entries and len(self._entries) >= self._size:
                del self._entries[next(iter(self._entries))]
            self._entries[key] = value
