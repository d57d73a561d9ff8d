"""A subprocess for the store tests: check-and-record attestations in a loop, printing each verdict
after the call returns (so only after COMMIT).

usage: slashing_writer.py DB SEED COUNT ROOT_BYTE
Each line: "SAFE <pubkey-hex> <source> <target> <root-hex>" or "REFUSED ...".
"""

from __future__ import annotations

import random
import sys

from covalidator.model.slashing.rules import SignedAttestation
from covalidator.runtime.store import Store


def main() -> None:
    db, seed, count, root_byte = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    rng = random.Random(seed)
    store = Store(db, b"\x00" * 32)
    pubkeys = [bytes([k + 1]) * 48 for k in range(4)]
    for i in range(count):
        pubkey = pubkeys[rng.randrange(len(pubkeys))]
        if root_byte >= 0:  # race mode: every writer tries target i with its own root
            att = SignedAttestation(i, i + 1, bytes([root_byte]) * 32)
            pubkey = pubkeys[0]
        else:
            target = rng.randrange(1, 400)
            att = SignedAttestation(max(0, target - rng.randrange(1, 4)), target, rng.randbytes(32))
        verdict = store.check_attestation(pubkey, att, record=True)
        word = "SAFE" if verdict.safe else "REFUSED"
        root = att.signing_root.hex() if att.signing_root else "-"
        print(f"{word} {pubkey.hex()} {att.source_epoch} {att.target_epoch} {root}", flush=True)


if __name__ == "__main__":
    main()
