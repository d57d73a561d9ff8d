"""BLS12-381 group operations from pyblst (Rust bindings to supranational's blst): the fastest backend.

Decides nothing: it maps the shared algorithms of `bls_backend` onto pyblst, whose `uncompress` checks
the curve equation and subgroup membership. pyblst has no multi-scalar multiplication, so linear
combinations are a loop of scalar multiplications; pairings are Miller loops multiplied together and
compared after one final exponentiation each side (`final_verify`).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import version

from pyblst import BlstP1Element, BlstP2Element, final_verify, miller_loop

from covalidator.model.crypto.backends.base import DST, Backend, BlsError

_G1_GENERATOR = bytes.fromhex(
    "97f1d3a73197d7942695638c4fa9ac0fc3688c4f9774b905a14e3a3f171bac586c55e83ff97a1aeffb3af00adb22c6bb"
)


class BlstBackend(Backend[BlstP1Element, BlstP2Element]):
    name = "blst"

    def __init__(self) -> None:
        self._g1_identity = BlstP1Element()  # the library's default element is the identity
        self._g2_identity = BlstP2Element()
        super().__init__()

    def library(self) -> str:
        return f"pyblst {version('pyblst')}"

    def g1_generator(self) -> BlstP1Element:
        return BlstP1Element.uncompress(_G1_GENERATOR)

    def g1_decode(self, data: bytes) -> BlstP1Element:
        try:
            return BlstP1Element.uncompress(data)
        except ValueError as error:
            raise BlsError(f"not a point of G1: {error}") from None

    def g2_decode(self, data: bytes) -> BlstP2Element:
        try:
            return BlstP2Element.uncompress(data)
        except ValueError as error:
            raise BlsError(f"not a point of G2: {error}") from None

    def g1_encode(self, point: BlstP1Element) -> bytes:
        return bytes(point.compress())

    def g2_encode(self, point: BlstP2Element) -> bytes:
        return bytes(point.compress())

    def g1_is_identity(self, point: BlstP1Element) -> bool:
        return bool(point == self._g1_identity)

    def g2_is_identity(self, point: BlstP2Element) -> bool:
        return bool(point == self._g2_identity)

    def g1_mul(self, point: BlstP1Element, scalar: int) -> BlstP1Element:
        return point.scalar_mul(scalar)

    def g2_mul(self, point: BlstP2Element, scalar: int) -> BlstP2Element:
        return point.scalar_mul(scalar)

    def g2_neg(self, point: BlstP2Element) -> BlstP2Element:
        return -point

    def g1_add(self, a: BlstP1Element, b: BlstP1Element) -> BlstP1Element:
        return a + b

    def g2_add(self, a: BlstP2Element, b: BlstP2Element) -> BlstP2Element:
        return a + b

    def g1_msm(self, points: Sequence[BlstP1Element], scalars: Sequence[int]) -> BlstP1Element:
        total = self._g1_identity
        for point, scalar in zip(points, scalars, strict=True):
            total = total + point.scalar_mul(scalar)
        return total

    def g2_msm(self, points: Sequence[BlstP2Element], scalars: Sequence[int]) -> BlstP2Element:
        total = self._g2_identity
        for point, scalar in zip(points, scalars, strict=True):
            total = total + point.scalar_mul(scalar)
        return total

    def hash_to_g2(self, message: bytes) -> BlstP2Element:
        return BlstP2Element.hash_to_group(message, DST)

    def pairings_equal(
        self,
        lhs: Sequence[tuple[BlstP1Element, BlstP2Element]],
        rhs: Sequence[tuple[BlstP1Element, BlstP2Element]],
    ) -> bool:
        def product(pairs: Sequence[tuple[BlstP1Element, BlstP2Element]]) -> object:
            loops = [miller_loop(p, q) for p, q in pairs]
            if not loops:
                return miller_loop(self._g1_identity, self._g2_identity)  # the neutral element of GT
            result = loops[0]
            for loop in loops[1:]:
                result = result * loop
            return result

        return bool(final_verify(product(lhs), product(rhs)))


BACKEND = BlstBackend()
