"""Write the devnet's interop validator keys as EIP-2335 keystores, split over N validator clients.

    .venv/bin/python e2e/lodestar/make_keystores.py OUT_DIR [--validators 8] [--clients 4]

OUT_DIR/vc<i>/keystore-<index>.json (client i gets validators i*k .. i*k+k-1, k = validators/clients)
and OUT_DIR/password.txt (one password for all, as `lodestar validator --importKeystoresPassword`
wants). pbkdf2 with a small work factor: these keys are public (interop) and only for devnets.
Uses the project's model (eth.interop, crypto.keystore). The direct run of `run.py` (VCs straight to
the BN, the comparison for signer mode) uses it for the VCs' keys.
"""

from __future__ import annotations

import argparse
import json
import os
import uuid
from pathlib import Path

from covalidator.model.crypto import bls, keystore
from covalidator.model.eth.interop import interop_secret_key

PUBKEY_0 = "a99a76ed7796f7be22d5b7e85deeb7c5677e88e511e0b337618f8c4eb61349b4bf2d153f649f7b53359fe8b94a38e44c"
PASSWORD = "covalidator-devnet"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--validators", type=int, default=8)
    ap.add_argument("--clients", type=int, default=4)
    args = ap.parse_args()
    per = args.validators // args.clients
    assert per * args.clients == args.validators, "validators must split evenly over clients"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "password.txt").write_text(PASSWORD)
    pubkeys = []
    for index in range(args.validators):
        secret = interop_secret_key(index)
        pubkey = bls.sk_to_pk(secret).hex()
        if index == 0 and pubkey != PUBKEY_0:
            raise SystemExit(f"interop key 0 has pubkey {pubkey}, expected {PUBKEY_0}")
        ks = keystore.encrypt(
            secret.to_bytes(32, "big"),
            PASSWORD,
            salt=os.urandom(32),
            iv=os.urandom(16),
            uuid=str(uuid.uuid4()),
            kdf=keystore.Pbkdf2(c=1024),
            path=f"m/12381/3600/{index}/0/0",
            description=f"interop validator {index}",
        )
        assert keystore.decrypt(ks, PASSWORD) == secret.to_bytes(32, "big")
        vc_dir = args.out / f"vc{index // per}"
        vc_dir.mkdir(exist_ok=True)
        (vc_dir / f"keystore-{index}.json").write_text(json.dumps(ks, indent=1))
        pubkeys.append("0x" + pubkey)
    (args.out / "pubkeys.json").write_text(json.dumps(pubkeys, indent=1))
    print(json.dumps({"out": str(args.out), "pubkeys": pubkeys}))


if __name__ == "__main__":
    main()
