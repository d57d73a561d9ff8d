"""The GLS endomorphism of G2 (model/crypto/backends/endomorphism.py) and the multiplication built on
it, against py_ecc's plain double-and-add (an independent implementation) as the oracle."""

from __future__ import annotations

import random

import pytest
from py_ecc.optimized_bls12_381 import G2, multiply, normalize

from covalidator.model.crypto import bls
from covalidator.model.crypto.backends import endomorphism
from covalidator.model.crypto.backends.base import CURVE_ORDER, G2_INFINITY
from covalidator.model.crypto.shamir import integer_lagrange_coefficients
from tests.bls_points import non_subgroup_g2

RNG = random.Random(20261206)


def affine(scalar: int) -> tuple[tuple[int, int], tuple[int, int]]:
    x, y = normalize(multiply(G2, scalar))
    return (int(x.coeffs[0]), int(x.coeffs[1])), (int(y.coeffs[0]), int(y.coeffs[1]))


def test_phi_is_multiplication_by_u_on_g2() -> None:
    for scalar in (1, 2, 12345, RNG.randrange(1, CURVE_ORDER)):
        assert endomorphism.phi(*affine(scalar)) == affine(scalar * endomorphism.U % CURVE_ORDER)


def test_digits_recompose_the_scalar_below_two_to_the_64() -> None:
    for scalar in (
        0,
        1,
        CURVE_ORDER - 1,
        pow(3, -1, CURVE_ORDER),
        *(RNG.randrange(CURVE_ORDER) for _ in range(50)),
    ):
        digits = endomorphism.digits(scalar)
        assert all(0 <= d < 1 << 64 for d in digits)
        assert sum(d * endomorphism.U**j for j, d in enumerate(digits)) % CURVE_ORDER == scalar % CURVE_ORDER


@pytest.mark.parametrize("name", bls.BACKENDS)
def test_multiplication_in_g2_equals_the_plain_one(name: str) -> None:
    try:
        backend = bls.load_backend(name)
    except ImportError:
        pytest.skip(f"backend {name} not installed")
    scalars = [
        pow(3, -1, CURVE_ORDER),  # the signer set {1, 2, 4}
        pow(5, -1, CURVE_ORDER),
        CURVE_ORDER - 1,
        (1 << 64) + 1,
        endomorphism.U**3,
        *(RNG.randrange(1 << 64, CURVE_ORDER) for _ in range(6)),
    ]
    for scalar in scalars:
        base = RNG.randrange(1, CURVE_ORDER)
        point = backend.signature_point(bls.sign(base, b"any"))  # H(m) * base: a point of G2
        expected = backend.g2_encode(backend.g2_mul(point, scalar))
        assert backend.g2_encode(backend.g2_mul_in_g2(point, scalar)) == expected
    assert (
        backend.g2_encode(backend.g2_mul_in_g2(backend.signature_point(G2_INFINITY), 7 << 70)) == G2_INFINITY
    )


def test_combinations_over_124_agree_with_the_reference_and_an_off_subgroup_partial_still_fails() -> None:
    secret, message = 0xC0FFEE, b"the 1, 2, 4 signer set"
    shares = bls.split(secret, 3, 4, [RNG.randrange(CURVE_ORDER) for _ in range(2)])
    _, _, denominator = integer_lagrange_coefficients([1, 2, 4])
    assert denominator == 3  # the set whose combination divides by 3
    partials = {i: bls.sign(shares[i], message) for i in (1, 2, 4)}
    group = bls.sign(secret, message)
    assert bls.combine(partials, 3) == group
    job = bls.CombineJob(bls.sk_to_pk(secret), bls.share_pubkeys(shares), message, partials, 3, ())
    [combination] = bls.verify_and_combine_many([job])
    assert combination.signature == group
    forged = {**partials, 4: non_subgroup_g2()}  # on the curve, not in G2: the endomorphism's result is wrong
    job = bls.CombineJob(bls.sk_to_pk(secret), bls.share_pubkeys(shares), message, forged, 3, ())
    [combination] = bls.verify_and_combine_many([job])
    assert combination.signature is None and 4 in combination.invalid
