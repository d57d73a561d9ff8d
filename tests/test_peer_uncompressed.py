"""Partial signatures in the uncompressed encoding on the peer wire: the encoding against an independent
oracle (py_ecc's affine coordinates), what is refused, that a point known only to be on the curve never
passes as a checked one, and that a frame's partials reach the model compressed, as sent."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from py_ecc.bls.g2_primitives import signature_to_G2
from py_ecc.optimized_bls12_381 import normalize

from covalidator.model.crypto import bls
from covalidator.model.crypto.backends.base import FIELD_MODULUS, G2_INFINITY, compress_uncompressed_g2
from covalidator.model.duty import DutyId, DutyKind
from covalidator.model.node.codec import dumps
from covalidator.model.node.events import PartialSignature, PartialSignatures, PeerPayload
from covalidator.runtime import peers
from tests.bls_points import non_subgroup_g2

INFINITY_UNCOMPRESSED = bytes([0x40]) + bytes(191)


def oracle_uncompressed(signature: bytes) -> bytes:
    """The ZCash uncompressed encoding from py_ecc's affine coordinates (x.c1, x.c0, y.c1, y.c0)."""
    if signature == G2_INFINITY:
        return INFINITY_UNCOMPRESSED
    x, y = normalize(signature_to_G2(signature))
    return b"".join(int(c).to_bytes(48, "big") for c in (x.coeffs[1], x.coeffs[0], y.coeffs[1], y.coeffs[0]))


def signatures() -> Iterator[bytes]:
    for k in range(1, 40):
        yield bls.sign(k * 7919 + 1, b"message %d" % k)


@pytest.fixture(params=bls.BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    previous = bls.backend_name()
    try:
        bls.use_backend(request.param)
    except (ImportError, bls.BlsError):
        pytest.skip(f"backend {request.param} not installed")
    yield request.param
    bls.use_backend(previous)


def test_compression_of_the_uncompressed_encoding_matches_the_oracle() -> None:
    for signature in [*signatures(), G2_INFINITY]:
        assert compress_uncompressed_g2(oracle_uncompressed(signature)) == signature


def test_each_backend_encodes_what_it_decoded_as_the_oracle_does(backend: str) -> None:
    for signature in signatures():
        assert bls.signature_uncompressed(signature) in (None, oracle_uncompressed(signature))  # not decoded
        assert bls.signature_validate(signature)  # decoded (checked) now
        encoded = bls.signature_uncompressed(signature)
        if backend == "arkworks":  # the default backend has the cheap encoder
            assert encoded == oracle_uncompressed(signature)
        assert encoded in (None, oracle_uncompressed(signature))
        assert bls.signature_from_uncompressed(oracle_uncompressed(signature)) == signature


def test_what_is_not_a_canonical_point_of_the_curve_is_refused(backend: str) -> None:
    good = oracle_uncompressed(next(signatures()))
    off_curve = good[:-1] + bytes([good[-1] ^ 1])
    too_large = (FIELD_MODULUS + 1).to_bytes(48, "big") + good[48:]
    compressed_flag = bytes([good[0] | 0x80]) + good[1:]
    sign_flag = bytes([good[0] | 0x20]) + good[1:]
    infinity_with_bits = INFINITY_UNCOMPRESSED[:-1] + b"\x01"
    for bad in (
        bytes(192),  # (0, 0) is not on the curve; arkworks' reader takes it for the point at infinity
        off_curve,
        too_large,
        compressed_flag,
        sign_flag,
        infinity_with_bits,
        good[:-1],
        good + b"\0",
    ):
        with pytest.raises(bls.BlsError):
            bls.signature_from_uncompressed(bad)


def test_a_point_known_only_on_the_curve_is_never_taken_for_a_checked_one(backend: str) -> None:
    outside = non_subgroup_g2()  # on the curve, not in G2
    assert bls.signature_from_uncompressed(oracle_uncompressed(outside)) == outside
    assert not bls.signature_validate(outside)  # the checked decoding still refuses it
    assert not bls.verify(bls.sk_to_pk(5), b"m", outside)
    # and combining it still fails (the result's subgroup check and verification)
    shares = {i: bls.share_pubkey(s) for i, s in bls.split(5, 2, 3, [11]).items()}
    message = b"combine"
    partials = {1: bls.sign(bls.split(5, 2, 3, [11])[1], message), 2: outside}
    job = bls.CombineJob(bls.sk_to_pk(5), shares, message, partials, 2, ())
    [combination] = bls.verify_and_combine_many([job])
    assert combination.signature is None and 2 in combination.invalid


def test_a_frames_partials_reach_the_model_compressed_and_equal(backend: str) -> None:
    duty = DutyId(7, DutyKind.ATTESTER)
    known, unknown = bls.sign(3, b"known"), bls.sign(4, b"unknown")
    assert bls.signature_validate(known)
    items = tuple(
        PartialSignature("0x" + "aa" * 48, "0x" + f"{i:064x}", "0x" + sig.hex())
        for i, sig in enumerate((known, unknown))
    )
    payload = PeerPayload(partials=PartialSignatures(duty, items))
    wire = peers._uncompressed(payload)
    sent = [item.signature for item in wire.partials.partials]  # type: ignore[union-attr]
    if backend == "arkworks":
        assert sent[0] == "0x" + oracle_uncompressed(known).hex()
    assert sent[1] in ("0x" + unknown.hex(), "0x" + oracle_uncompressed(unknown).hex())
    assert peers.decode_payload(json.loads(dumps(wire)), 4) == payload


def test_a_frame_with_a_partial_off_the_curve_is_malformed() -> None:
    good = oracle_uncompressed(next(signatures()))
    off_curve = good[:-1] + bytes([good[-1] ^ 1])
    item = PartialSignature("0x" + "aa" * 48, "0x" + "11" * 32, "0x" + off_curve.hex())
    data = json.loads(dumps(PeerPayload(partials=PartialSignatures(DutyId(7, DutyKind.ATTESTER), (item,)))))
    with pytest.raises(peers._Malformed):
        peers.decode_payload(data, 4)


def test_a_signature_made_here_is_known_decoded_and_sent_uncompressed(backend: str) -> None:
    """Signer mode: the node signs its own partials (bls.sign); they go to the peers uncompressed too."""
    signature = bls.sign(0xABCDEF, b"signed here, never decoded")
    encoded = bls.signature_uncompressed(signature)
    if backend == "arkworks":
        assert encoded == oracle_uncompressed(signature)
    assert encoded in (None, oracle_uncompressed(signature))
    assert bls.signature_validate(signature)
