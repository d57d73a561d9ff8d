"""BLS12-381 group operations from py-arkworks-bls12381 (Rust, arkworks): the default backend.

Decides nothing: it maps the shared algorithms of `bls_backend` onto the library. Its decoders are the
checked ones (`from_compressed_bytes` does the on-curve and subgroup checks); the one `_unchecked`
decoder serves only `g2_decode_unchecked`, whose results are used where the outcome is checked in full
(`Backend.g2_interpolate`); the flag bits were already validated by `bls_backend.check_encoding`.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import version

from py_arkworks_bls12381 import GT, G1Point, G2Point, Scalar

from covalidator.model.crypto.backends.base import DST, Backend, BlsError


class ArkworksBackend(Backend[G1Point, G2Point]):
    name = "arkworks"

    def library(self) -> str:
        return f"py-arkworks-bls12381 {version('py-arkworks-bls12381')}"

    def g1_generator(self) -> G1Point:
        return G1Point()

    def g1_decode(self, data: bytes) -> G1Point:
        try:
            return G1Point.from_compressed_bytes(data)
        except ValueError as error:
            raise BlsError(f"not a point of G1: {error}") from None

    def g2_decode(self, data: bytes) -> G2Point:
        try:
            return G2Point.from_compressed_bytes(data)
        except ValueError as error:
            raise BlsError(f"not a point of G2: {error}") from None

    def g2_decode_unchecked(self, data: bytes) -> G2Point:
        # Decompression puts the point on the curve; only the subgroup check is skipped (see base).
        try:
            return G2Point.from_compressed_bytes_unchecked(data)
        except ValueError as error:
            raise BlsError(f"not a point of the curve: {error}") from None

    def g2_xy(self, point: G2Point) -> bytes:
        if point == G2Point.identity():
            return bytes([0x40]) + bytes(191)
        xy = point.to_xy_bytes_be()  # x.c0, x.c1, y.c0, y.c1: the ZCash order is c1 first
        return xy[48:96] + xy[0:48] + xy[144:192] + xy[96:144]

    def g2_from_xy(self, data: bytes) -> G2Point:
        if data[0] & 0x40:
            return G2Point.identity()
        arkworks = data[48:96] + data[0:48] + data[144:192] + data[96:144]
        try:
            return G2Point.from_xy_bytes_unchecked_be(arkworks)  # the curve equation, no subgroup check
        except ValueError as error:
            raise BlsError(f"not a point of the curve: {error}") from None

    def g2_neg(self, point: G2Point) -> G2Point:
        return -point

    def g2_in_subgroup(self, point: G2Point) -> bool:
        return bool(point.is_in_subgroup())

    def g1_encode(self, point: G1Point) -> bytes:
        return point.to_compressed_bytes()

    def g2_encode(self, point: G2Point) -> bytes:
        return point.to_compressed_bytes()

    def g1_is_identity(self, point: G1Point) -> bool:
        return point == G1Point.identity()

    def g2_is_identity(self, point: G2Point) -> bool:
        return point == G2Point.identity()

    def g1_mul(self, point: G1Point, scalar: int) -> G1Point:
        return point * Scalar(scalar)

    def g2_mul(self, point: G2Point, scalar: int) -> G2Point:
        return point * Scalar(scalar)

    def g1_add(self, a: G1Point, b: G1Point) -> G1Point:
        return a + b

    def g2_add(self, a: G2Point, b: G2Point) -> G2Point:
        return a + b

    def g1_msm(self, points: Sequence[G1Point], scalars: Sequence[int]) -> G1Point:
        # The "unchecked" here is about the inputs' subgroup membership, which our decoders checked.
        return G1Point.multiexp_unchecked(list(points), [Scalar(s) for s in scalars])

    def g2_msm(self, points: Sequence[G2Point], scalars: Sequence[int]) -> G2Point:
        return G2Point.multiexp_unchecked(list(points), [Scalar(s) for s in scalars])

    def hash_to_g2(self, message: bytes) -> G2Point:
        return G2Point.hash_to_curve(message, DST)

    def pairings_equal(
        self, lhs: Sequence[tuple[G1Point, G2Point]], rhs: Sequence[tuple[G1Point, G2Point]]
    ) -> bool:
        g1s = [p for p, _ in lhs] + [-p for p, _ in rhs]
        g2s = [q for _, q in lhs] + [q for _, q in rhs]
        return GT.pairing_check(g1s, g2s)


BACKEND = ArkworksBackend()
