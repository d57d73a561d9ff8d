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

from covalidator.model.crypto.backends import endomorphism
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
            point = G2Point.from_xy_bytes_unchecked_be(arkworks)  # the curve equation, no subgroup check
        except ValueError as error:
            raise BlsError(f"not a point of the curve: {error}") from None
        if point == G2Point.identity():
            # the library reads 192 zero bytes as the point at infinity, unchecked; in this encoding
            # infinity is flagged (handled above) and (0, 0) is not on the curve
            raise BlsError("not a point of the curve: (0, 0)")
        return point

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

    def g2_mul_in_g2(self, point: G2Point, scalar: int) -> G2Point:
        # the base-u digits over phi^j(P) (backends/endomorphism.py): a 64-bit multiplication costs
        # ~1/5 of a full one, so up to two are done alone, more in one multi-scalar multiplication
        # (~330 us against ~420 us for a random scalar); the inverse of 3, which the signer set
        # {1, 2, 4} needs, takes one (~130 us)
        if scalar < 1 << 64 or point == G2Point.identity():
            return point * Scalar(scalar)
        digits = endomorphism.digits(scalar)
        xy = point.to_xy_bytes_be()  # x.c0, x.c1, y.c0, y.c1
        x = (int.from_bytes(xy[0:48], "big"), int.from_bytes(xy[48:96], "big"))
        y = (int.from_bytes(xy[96:144], "big"), int.from_bytes(xy[144:192], "big"))
        points = [point]
        for _ in range(max(j for j, d in enumerate(digits) if d)):
            x, y = endomorphism.phi(x, y)
            coordinates = b"".join(c.to_bytes(48, "big") for c in (*x, *y))
            points.append(G2Point.from_xy_bytes_unchecked_be(coordinates))
        d0, d1, d2, d3 = digits
        if d0 <= 1 and d1 == 0 and d3 == 2 * d2 + 1:
            # 1/3's digits (1, 0, c, 2c + 1): [k]P = d0 P + phi^3 P + [c](phi^2 P + 2 phi^3 P), one
            # 63-bit multiplication (~110 us)
            twice = points[3] + points[3]
            total = points[3] + (points[2] + twice) * Scalar(d2)
            return total + point if d0 else total
        if sum(d > 1 for d in digits) > 2:
            return G2Point.multiexp_unchecked(points, [Scalar(d) for d in digits[: len(points)]])
        total = G2Point.identity()
        for multiple, digit in zip(points, digits, strict=False):
            if digit:
                total = total + (multiple if digit == 1 else multiple * Scalar(digit))
        return total

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
