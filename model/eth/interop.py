"""The interop ("mock start") validator keys every consensus client's dev mode uses.

Decides: validator i's secret key is int.from_bytes(sha256(i as 32 little-endian bytes), "little")
mod r, as in the consensus specs' interop document (eth2.0-pm interop/mocked_start). Lodestar's
`dev` command, Lighthouse's and Teku's interop genesis derive their genesis validators this way, so a
devnet's validators can be split into a cluster without their keystores.

Never for keys that hold value: anyone can derive them.
"""

from __future__ import annotations

import hashlib

from covalidator.model.crypto.backends.base import CURVE_ORDER


def interop_secret_key(index: int) -> int:
    assert index >= 0, "validator indices are non-negative"
    return int.from_bytes(hashlib.sha256(index.to_bytes(32, "little")).digest(), "little") % CURVE_ORDER
