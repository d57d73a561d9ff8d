"""model/bls.py on the default backend: known answers, the Ethereum ciphersuite, strict decoding, and
the start-up choice of backend. Backend-against-backend checks live in test_bls_backends.py."""

from __future__ import annotations

import hashlib

import pytest
from py_ecc.bls import G2ProofOfPossession as reference

from covalidator.model.crypto import bls
from covalidator.model.crypto.backends.base import CURVE_ORDER, FIELD_MODULUS, BlsError, check_encoding

from .bls_points import NON_SUBGROUP_G1, non_subgroup_g2

# EIP-2335's test secret and its public key (the `pubkey` field of both vectors).
EIP2335_SECRET = 0x000000000019D6689C085AE165831E934FF763AE46A2A6C172B3F1B60A8CE26F
EIP2335_PUBKEY = bytes.fromhex(
    "9612d7a727c9d0a22e185a1c768478dfe919cada9266988cb32359c11f2b7b27f4ae4040902382ae2910c15e2b420d07"
)
# Interop (mock-start) validator 0, as every consensus client's dev mode derives it.
INTEROP_0_PUBKEY = bytes.fromhex(
    "a99a76ed7796f7be22d5b7e85deeb7c5677e88e511e0b337618f8c4eb61349b4bf2d153f649f7b53359fe8b94a38e44c"
)


def interop_secret(i: int) -> int:
    return int.from_bytes(hashlib.sha256(i.to_bytes(32, "little")).digest(), "little") % CURVE_ORDER


def test_known_public_keys() -> None:
    assert bls.sk_to_pk(EIP2335_SECRET) == EIP2335_PUBKEY
    assert bls.sk_to_pk(interop_secret(0)) == INTEROP_0_PUBKEY


def test_sign_is_the_ethereum_ciphersuite() -> None:
    """Same bytes as py_ecc's G2ProofOfPossession (the ciphersuite the consensus specs name)."""
    message = b"\x42" * 32
    assert bls.sign(EIP2335_SECRET, message) == reference.Sign(EIP2335_SECRET, message)
    assert reference.Verify(EIP2335_PUBKEY, message, bls.sign(EIP2335_SECRET, message))


def test_sign_verify_and_what_breaks_it() -> None:
    sk, other = 1234567, 7654321
    pk = bls.sk_to_pk(sk)
    sig = bls.sign(sk, b"message")
    assert bls.verify(pk, b"message", sig)
    assert not bls.verify(pk, b"messagf", sig)
    assert not bls.verify(bls.sk_to_pk(other), b"message", sig)
    assert not bls.verify(pk, b"message", bls.sign(other, b"message"))
    assert bls.verify(pk, b"", bls.sign(sk, b""))  # the empty message is a message


def test_secret_key_bounds() -> None:
    with pytest.raises(BlsError):
        bls.sk_to_pk(0)
    with pytest.raises(BlsError):
        bls.sign(CURVE_ORDER, b"x")  # == 0 mod r
    assert bls.verify(bls.sk_to_pk(CURVE_ORDER - 1), b"x", bls.sign(CURVE_ORDER - 1, b"x"))
    assert bls.secret_from_bytes(bls.secret_to_bytes(EIP2335_SECRET)) == EIP2335_SECRET
    for bad in (bytes(32), CURVE_ORDER.to_bytes(32, "big"), b"\x01" * 31):
        with pytest.raises(BlsError):
            bls.secret_from_bytes(bad)


def test_aggregate_and_fast_aggregate_verify() -> None:
    secrets = [11, 22, 33]
    pks = [bls.sk_to_pk(s) for s in secrets]
    message = b"one message"
    agg = bls.aggregate([bls.sign(s, message) for s in secrets])
    assert bls.fast_aggregate_verify(pks, message, agg)
    assert not bls.fast_aggregate_verify(pks[:2], message, agg)
    assert not bls.fast_aggregate_verify([], message, agg)
    assert bls.aggregate_pubkeys(pks) == bls.sk_to_pk(66)
    assert agg == bls.sign(66, message)
    with pytest.raises(BlsError):
        bls.aggregate([])
    with pytest.raises(BlsError):
        bls.aggregate_pubkeys([])


def test_agrees_with_the_consensus_specs_bls_module() -> None:
    from eth_consensus_specs.utils import bls as spec_bls

    message = b"\x07" * 32
    secrets = [5, 6, 7]
    pks = [bls.sk_to_pk(s) for s in secrets]
    sigs = [bls.sign(s, message) for s in secrets]
    assert pks == [spec_bls.SkToPk(s) for s in secrets]
    assert sigs == [spec_bls.Sign(s, message) for s in secrets]
    assert bls.aggregate(sigs) == spec_bls.Aggregate(sigs)
    assert bls.aggregate_pubkeys(pks) == spec_bls.AggregatePKs(pks)
    assert spec_bls.FastAggregateVerify(pks, message, bls.aggregate(sigs))


# ---- strict decoding ------------------------------------------------------------------------------------

G1_INF = bytes([0xC0]) + bytes(47)
G2_INF = bytes([0xC0]) + bytes(95)
VALID_PK = bls.sk_to_pk(99)
VALID_SIG = bls.sign(99, b"m")

BAD_PUBKEYS = {
    "infinity": G1_INF,
    "infinity with stray bit": G1_INF[:-1] + b"\x01",
    "infinity with sign bit": bytes([0xE0]) + bytes(47),
    "all ones": b"\xff" * 48,
    "uncompressed flag": bytes([VALID_PK[0] & 0x7F]) + VALID_PK[1:],
    "x >= p": (FIELD_MODULUS | (1 << 383)).to_bytes(48, "big"),
    "not on curve": bytes([0x80]) + bytes(46) + b"\x01",
    "not in subgroup": NON_SUBGROUP_G1,
    "too short": VALID_PK[:47],
    "too long": VALID_PK + b"\x00",
}


@pytest.mark.parametrize("name", sorted(BAD_PUBKEYS))
def test_bad_pubkeys_are_refused(name: str) -> None:
    data = BAD_PUBKEYS[name]
    assert not bls.key_validate(data)
    assert not bls.verify(data, b"m", VALID_SIG)
    with pytest.raises(BlsError):
        bls.aggregate_pubkeys([VALID_PK, data])


def test_bad_signatures_are_refused() -> None:
    bad = {
        "infinity with stray bit": G2_INF[:-1] + b"\x01",
        "all ones": b"\xff" * 96,
        "x.c1 >= p": (FIELD_MODULUS | (1 << 383)).to_bytes(48, "big") + bytes(48),
        "x.c0 >= p": VALID_SIG[:48] + FIELD_MODULUS.to_bytes(48, "big"),
        "not in subgroup": non_subgroup_g2(),
        "too short": VALID_SIG[:95],
    }
    for name, data in bad.items():
        assert not bls.signature_validate(data), name
        assert not bls.verify(VALID_PK, b"m", data), name
    # Infinity is a valid G2 encoding (the specs accept it), but it never verifies under a valid key.
    assert bls.signature_validate(G2_INF)
    assert not bls.verify(VALID_PK, b"m", G2_INF)
    assert bls.signature_validate(VALID_SIG)


def test_the_non_subgroup_points_are_on_the_curve() -> None:
    """Guard for the two tests above: the points fail the subgroup check, not the curve equation."""
    from py_ecc.bls.g2_primitives import pubkey_to_G1, signature_to_G2, subgroup_check

    assert not subgroup_check(pubkey_to_G1(NON_SUBGROUP_G1))  # type: ignore[arg-type]
    assert not subgroup_check(signature_to_G2(non_subgroup_g2()))  # type: ignore[arg-type]


def test_check_encoding_reports_infinity() -> None:
    assert check_encoding(G1_INF, 48) is True
    assert check_encoding(VALID_PK, 48) is False


# ---- backend choice ------------------------------------------------------------------------------------


def test_backend_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    from covalidator.runtime.bls_choice import ENV_VAR, choose_from_environment

    monkeypatch.setattr(bls, "_current", None)
    monkeypatch.setenv(ENV_VAR, "pyblst")
    choose_from_environment()
    assert bls.backend_name() == "blst"
    monkeypatch.setattr(bls, "_current", None)
    monkeypatch.delenv(ENV_VAR)
    choose_from_environment()
    assert bls.backend_name() == "arkworks"  # the model's default: it reads no environment
    assert bls.use_backend("py_ecc").name == "pyecc"
    with pytest.raises(ValueError, match="unknown BLS backend"):
        bls.use_backend("openssl")
    assert bls.load_backend("arkworks").library().startswith("py-arkworks-bls12381 ")
