"""The cluster lock: a good lock loads and round-trips; every kind of bad lock fails with its own message.
Bad locks other than "tampered" are re-hashed and re-signed, so each reaches the check it is about."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from covalidator.model.cluster import lock as cluster_lock
from covalidator.model.cluster.lock import DistributedValidator, LockError
from covalidator.model.crypto import bls, shamir

from .bls_points import NON_SUBGROUP_G1

N, M = 4, 3
KEYS = [Ed25519PrivateKey.from_private_bytes(bytes([i + 1]) * 32) for i in range(N + 1)]


def distributed(secret: int, n: int = N, m: int = M) -> DistributedValidator:
    shares = bls.split(secret, m, n, shamir.coefficients_from_seed(secret.to_bytes(8, "big"), m - 1))
    public = bls.share_pubkeys(shares)
    return DistributedValidator(bls.sk_to_pk(secret), tuple(public[i] for i in range(1, n + 1)))


def good_lock() -> dict[str, Any]:
    return cluster_lock.build_lock(
        name="test",
        network="hoodi",
        fork_version=bytes.fromhex("10000910"),
        genesis_validators_root=bytes(range(32)),
        threshold=M,
        addresses=[f"10.0.0.{i}:3610" for i in range(N)],
        identity_keys=KEYS[:N],
        distributed_validators=[distributed(1001), distributed(2002)],
    )


def resign(document: dict[str, Any], keys: list[Ed25519PrivateKey] | None = None) -> dict[str, Any]:
    """Recompute lock_hash over the (changed) content and sign it, as a careless tool would."""
    content = {k: v for k, v in document.items() if k not in ("lock_hash", "node_signatures")}
    lock_hash = cluster_lock.compute_lock_hash(content)
    by_public = {"0x" + cluster_lock.identity_public_key(k).hex(): k for k in KEYS}
    signers = (
        keys if keys is not None else [by_public[op["identity_public_key"]] for op in document["operators"]]
    )
    return {
        **content,
        "lock_hash": "0x" + lock_hash.hex(),
        "node_signatures": ["0x" + cluster_lock.sign_lock_hash(k, lock_hash).hex() for k in signers],
    }


def test_a_good_lock_loads_and_round_trips() -> None:
    document = good_lock()
    lock = cluster_lock.parse_lock(document)
    assert lock.nodes == N and lock.threshold == M and len(lock.distributed_validators) == 2
    assert cluster_lock.lock_to_json(lock) == document
    assert (
        lock.share_pubkeys(2)[lock.distributed_validators[0].distributed_public_key]
        == (lock.distributed_validators[0].public_shares[2])
    )
    assert lock.node_index_of(cluster_lock.identity_public_key(KEYS[3])) == 3
    assert lock.validator(bls.sk_to_pk(2002)) == lock.distributed_validators[1]


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(document: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        target: Any = document
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return mutate


def _share(j: int, i: int) -> str:
    return "0x" + distributed(1001 + 1001 * j).public_shares[i].hex()


# (what is wrong, how to make it, re-sign afterwards?, expected message)
BAD_LOCKS: list[tuple[str, Callable[[dict[str, Any]], None], bool, str]] = [
    (
        "tampered share",
        _set("distributed_validators/0/public_shares/1", _share(1, 1)),
        False,
        "modified after it was signed",
    ),
    ("tampered threshold", _set("threshold", 4), False, "modified after it was signed"),
    ("missing field", lambda d: d.pop("threshold"), False, "threshold is missing"),
    ("unknown version", _set("version", "charon/v1.8.0"), False, "unsupported version"),
    (
        "short key",
        _set("distributed_validators/0/distributed_public_key", "0x00"),
        False,
        r"distributed_validators\[0\]\.distributed_public_key must be 0x-hex of 48 bytes",
    ),
    ("bad address", _set("operators/1/address", "not an address"), False, "must be host:port"),
    (
        "two operators",
        lambda d: (
            d.update(operators=d["operators"][:2], threshold=2),
            [v.update(public_shares=v["public_shares"][:2]) for v in d["distributed_validators"]],
        ),
        True,
        "at least 3 operators, this lock has 2",
    ),
    ("threshold too low", _set("threshold", 2), True, r"threshold 2 is unsafe for N = 4 operators"),
    ("threshold too high", _set("threshold", 5), True, r"threshold 5 is outside"),
    (
        "missing share",
        lambda d: d["distributed_validators"][1]["public_shares"].pop(),
        True,
        r"distributed_validators\[1\] has 3 public_shares, expected 4",
    ),
    ("no validators", _set("distributed_validators", []), True, "no distributed_validators"),
    (
        "duplicate identity key",
        _set("operators/1/identity_public_key", "0x" + cluster_lock.identity_public_key(KEYS[0]).hex()),
        True,
        r"operators\[0\] and operators\[1\] have the same identity_public_key",
    ),
    (
        "duplicate address",
        _set("operators/3/address", "10.0.0.2:3610"),
        True,
        r"operators\[2\] and operators\[3\] have the same address",
    ),
    (
        "duplicate validator",
        lambda d: d["distributed_validators"].append(copy.deepcopy(d["distributed_validators"][0])),
        True,
        r"distributed_validators\[0\] and \[2\] have the same distributed_public_key",
    ),
    (
        "share reused across validators",
        _set("distributed_validators/1/public_shares/0", _share(0, 0)),
        True,
        r"public_shares\[0\] repeats the key of distributed_validators\[0\]\.public_shares\[0\]",
    ),
    (
        "not a subgroup point",
        _set("distributed_validators/0/public_shares/3", "0x" + NON_SUBGROUP_G1.hex()),
        True,
        r"public_shares\[3\] is not a valid BLS12-381 public key",
    ),
    (
        "shares swapped",
        lambda d: d["distributed_validators"][0]["public_shares"].reverse(),
        True,
        r"distributed_validators\[0\]\.public_shares do not interpolate to its distributed_public_key",
    ),
    (
        "share of another polynomial",
        _set(
            "distributed_validators/1/public_shares/3",
            "0x" + distributed(2002, N, M + 1).public_shares[3].hex(),
        ),
        True,
        r"distributed_validators\[1\]\.public_shares do not interpolate",
    ),
]


@pytest.mark.parametrize(("what", "mutate", "resigned", "message"), BAD_LOCKS, ids=[b[0] for b in BAD_LOCKS])
def test_each_bad_lock_fails_with_its_own_message(
    what: str, mutate: Callable[[dict[str, Any]], None], resigned: bool, message: str
) -> None:
    document = good_lock()
    mutate(document)
    if resigned:
        document = resign(document)
    with pytest.raises(LockError, match=message):
        cluster_lock.parse_lock(document)


def test_signature_faults() -> None:
    document = good_lock()
    forged = resign(document, [KEYS[0], KEYS[1], KEYS[4], KEYS[3]])  # node 2 signed by a stranger
    with pytest.raises(LockError, match=r"node_signatures\[2\] is not operator 2's signature"):
        cluster_lock.parse_lock(forged)
    document["node_signatures"].pop()
    with pytest.raises(LockError, match="3 node_signatures for 4 operators"):
        cluster_lock.parse_lock(document)
    # A signature over the bare hash (no domain prefix) is not a lock signature.
    bare = good_lock()
    lock_hash = bytes.fromhex(bare["lock_hash"][2:])
    bare["node_signatures"][0] = "0x" + KEYS[0].sign(lock_hash).hex()
    with pytest.raises(LockError, match=r"node_signatures\[0\]"):
        cluster_lock.parse_lock(bare)


def test_an_old_lock_below_the_bound_loads_only_for_combine() -> None:
    """3-of-5 passed the old (N/2, N] rule; the DV-safety theorem refutes it. It is refused, except
    for `combine` (getting the keys back out), which still checks everything else."""
    safe = cluster_lock.build_lock(  # (today's tool refuses to make 3-of-5: made as 4-of-5, re-signed)
        name="old",
        network="hoodi",
        fork_version=bytes.fromhex("10000910"),
        genesis_validators_root=bytes(range(32)),
        threshold=4,
        addresses=[f"10.0.0.{i}:3610" for i in range(5)],
        identity_keys=KEYS[:5],
        distributed_validators=[distributed(1001, n=5, m=3)],
    )
    document = resign({**safe, "threshold": 3})
    with pytest.raises(LockError, match=r"threshold 3 is unsafe for N = 5 operators"):
        cluster_lock.parse_lock(document)
    assert cluster_lock.parse_lock(document, unsafe_threshold_ok=True).threshold == 3
    with pytest.raises(LockError, match="lock_hash does not match"):  # everything else still checked
        cluster_lock.parse_lock({**document, "name": "other"}, unsafe_threshold_ok=True)
    with pytest.raises(LockError, match="threshold 2 is unsafe"):  # never accepted by any rule
        cluster_lock.parse_lock(resign({**safe, "threshold": 2}), unsafe_threshold_ok=True)


# ---- builder registrations pinned in the lock ------------------------------------------------------------

FEE = "0x" + "ab" * 20
FORK_VERSION = bytes.fromhex("10000910")


def registered(
    secret: int, fee: str = FEE, gas: int = 36_000_000, signer: int | None = None
) -> DistributedValidator:
    """A validator with its group-signed registration, signed as the dealer does (or by another key)."""
    from covalidator.model.eth.signing import registration_signing_root

    v = distributed(secret)
    message = cluster_lock.registration_message(v.distributed_public_key, fee, gas, 1_700_000_000)
    signature = bls.sign(signer or secret, registration_signing_root(FORK_VERSION, message))
    return DistributedValidator(
        v.distributed_public_key,
        v.public_shares,
        fee,
        gas,
        {"message": message, "signature": "0x" + signature.hex()},
    )


def lock_with(*validators: DistributedValidator) -> dict[str, Any]:
    return {
        **cluster_lock.content_json(
            name="test",
            network="hoodi",
            fork_version=FORK_VERSION,
            genesis_validators_root=bytes(range(32)),
            threshold=M,
            operators=[
                cluster_lock.Operator(cluster_lock.identity_public_key(k), f"10.0.0.{i}:3610")
                for i, k in enumerate(KEYS[:N])
            ],
            distributed_validators=list(validators),
        ),
        "lock_hash": "0x",
        "node_signatures": [],
    }


def test_a_lock_with_registrations_loads_round_trips_and_an_old_one_keeps_its_hash() -> None:
    document = resign(lock_with(registered(1001), distributed(2002)))
    lock = cluster_lock.parse_lock(document)
    first, second = lock.distributed_validators
    assert first.fee_recipient == FEE and first.gas_limit == 36_000_000
    assert first.builder_registration is not None and second.builder_registration is None
    assert cluster_lock.lock_to_json(lock) == document
    assert "fee_recipient" not in document["distributed_validators"][1]  # absent: an old lock's shape
    old = good_lock()
    assert (
        cluster_lock.compute_lock_hash(
            {k: v for k, v in old.items() if k not in ("lock_hash", "node_signatures")}
        ).hex()
        == old["lock_hash"][2:]
    )


@pytest.mark.parametrize(
    ("validator", "message"),
    [
        (
            registered(1001, signer=2002),
            "builder_registration.signature is not the validator's group signature",
        ),
        (registered(1001, fee="0x" + "AB" * 20), None),  # upper-case hex: the same address, loads
    ],
)
def test_a_registration_must_be_the_group_keys_signature(
    validator: DistributedValidator, message: str | None
) -> None:
    document = resign(lock_with(validator))
    if message is None:
        cluster_lock.parse_lock(document)
        return
    with pytest.raises(LockError, match=message):
        cluster_lock.parse_lock(document)


@pytest.mark.parametrize(("forged", "named"), [((3,), 3), ((4, 1), 1), ((0, 2, 4), 0)])
def test_registrations_are_checked_together_and_the_first_forged_one_is_named(
    forged: tuple[int, ...], named: int
) -> None:
    """Five registrations take the batch path (one multi-pairing, then bisection): each forged one
    (signed by another key) is found wherever it sits, and the error names the first in the lock."""
    secrets = [1001 + 7 * j for j in range(5)]
    validators = [registered(s, signer=s + 1 if j in forged else None) for j, s in enumerate(secrets)]
    with pytest.raises(
        LockError, match=rf"distributed_validators\[{named}\]\.builder_registration\.signature"
    ):
        cluster_lock.parse_lock(resign(lock_with(*validators)))
    honest = [registered(s) for s in secrets]
    assert len(cluster_lock.parse_lock(resign(lock_with(*honest))).distributed_validators) == 5


def test_a_registration_over_other_fields_or_a_partial_set_is_refused() -> None:
    document = resign(lock_with(registered(1001)))
    document["distributed_validators"][0]["fee_recipient"] = "0x" + "cd" * 20  # the message says ab..ab
    with pytest.raises(LockError, match="is not over the validator's pubkey, fee_recipient and gas_limit"):
        cluster_lock.parse_lock(resign(document))
    document = resign(lock_with(registered(1001)))
    del document["distributed_validators"][0]["builder_registration"]
    with pytest.raises(LockError, match="needs all of fee_recipient, gas_limit and builder_registration"):
        cluster_lock.parse_lock(resign(document))
    document = resign(lock_with(registered(1001)))
    document["distributed_validators"][0]["builder_registration"]["message"]["pubkey"] = (
        "0x" + bls.sk_to_pk(2002).hex()
    )
    with pytest.raises(LockError, match="is not over the validator's pubkey"):
        cluster_lock.parse_lock(resign(document))
