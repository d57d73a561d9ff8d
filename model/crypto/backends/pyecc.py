"""BLS12-381 group operations from py_ecc (pure Python): the reference backend, slow (~0.1-0.3 s/op).

Decides nothing: it maps the shared algorithms of `bls_backend` onto py_ecc's optimized (Jacobian)
curve arithmetic, with an explicit subgroup check after decompression (py_ecc's decoders only check
that the point is on the curve).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from importlib.metadata import version
from typing import Any

from py_ecc.bls.g2_primitives import (
    G1_to_pubkey,
    G2_to_signature,
    pubkey_to_G1,
    signature_to_G2,
    subgroup_check,
)
from py_ecc.bls.hash_to_curve import hash_to_G2
from py_ecc.fields import optimized_bls12_381_FQ12 as FQ12
from py_ecc.optimized_bls12_381.optimized_curve import G1, Z1, Z2, add, is_inf, multiply, neg
from py_ecc.optimized_bls12_381.optimized_pairing import final_exponentiate, pairing

from covalidator.model.crypto.backends.base import DST, Backend, BlsError

# py_ecc's points are tuples of field elements; its own type aliases are not worth threading through.
Point = Any


class PyEccBackend(Backend[Point, Point]):
    name = "pyecc"

    def library(self) -> str:
        return f"py_ecc {version('py_ecc')}"

    def g1_generator(self) -> Point:
        return G1

    def g1_decode(self, data: bytes) -> Point:
        try:
            point = pubkey_to_G1(data)  # type: ignore[arg-type]
        except ValueError as error:
            raise BlsError(f"not a point of G1: {error}") from None
        if not subgroup_check(point):
            raise BlsError("not a point of G1: not in the prime-order subgroup")
        return point

    def g2_decode(self, data: bytes) -> Point:
        try:
            point = signature_to_G2(data)  # type: ignore[arg-type]
        except ValueError as error:
            raise BlsError(f"not a point of G2: {error}") from None
        if not subgroup_check(point):
            raise BlsError("not a point of G2: not in the prime-order subgroup")
        return point

    def g1_encode(self, point: Point) -> bytes:
        return bytes(G1_to_pubkey(point))

    def g2_encode(self, point: Point) -> bytes:
        return bytes(G2_to_signature(point))

    def g1_is_identity(self, point: Point) -> bool:
        return bool(is_inf(point))

    def g2_is_identity(self, point: Point) -> bool:
        return bool(is_inf(point))

    def g1_mul(self, point: Point, scalar: int) -> Point:
        return multiply(point, scalar)

    def g2_mul(self, point: Point, scalar: int) -> Point:
        return multiply(point, scalar)

    def g2_neg(self, point: Point) -> Point:
        return neg(point)

    def g1_add(self, a: Point, b: Point) -> Point:
        return add(a, b)

    def g2_add(self, a: Point, b: Point) -> Point:
        return add(a, b)

    def g1_msm(self, points: Sequence[Point], scalars: Sequence[int]) -> Point:
        total = Z1
        for point, scalar in zip(points, scalars, strict=True):
            total = add(total, multiply(point, scalar))
        return total

    def g2_msm(self, points: Sequence[Point], scalars: Sequence[int]) -> Point:
        total = Z2
        for point, scalar in zip(points, scalars, strict=True):
            total = add(total, multiply(point, scalar))
        return total

    def hash_to_g2(self, message: bytes) -> Point:
        return hash_to_G2(message, DST, hashlib.sha256)  # type: ignore[arg-type]

    def pairings_equal(self, lhs: Sequence[tuple[Point, Point]], rhs: Sequence[tuple[Point, Point]]) -> bool:
        # One final exponentiation for the whole product: prod_lhs e(P, Q) * prod_rhs e(-P, Q) == 1.
        product = FQ12.one()
        for p, q in [*lhs, *((neg(p), q) for p, q in rhs)]:
            product = product * pairing(q, p, final_exponentiate=False)
        return bool(final_exponentiate(product) == FQ12.one())


BACKEND = PyEccBackend()
