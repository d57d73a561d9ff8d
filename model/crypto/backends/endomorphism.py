"""The GLS endomorphism of G2, for scalar multiplication by a full-size scalar in four 64-bit parts.

BLS12-381's twist has the endomorphism psi = untwist . Frobenius . twist:
    psi(x, y) = (conj(x) * C1, conj(y) * C2),  C1 = 1 / (1 + i)^((p - 1) / 3),  C2 = 1 / (1 + i)^((p - 1) / 2)
(the constants of RFC 9380's cofactor clearing, appendix G.3). On G2 it acts as multiplication by the
curve parameter x = -u, u = 0xd201000000010000 (64 bits); so phi = -psi acts as multiplication by u,
and since r < u^4, any scalar k < r is sum d_j u^j over its four base-u digits, each below 2^64:
    [k]P = sum [d_j] phi^j(P)
at most four multiplications by 64-bit scalars instead of one by a 255-bit scalar (measured with
arkworks: ~330 us against ~420 us for a random scalar, ~130 us for the inverse of 3, whose digits are
1, 0, c, 2c + 1: see `ArkworksBackend.g2_mul_in_g2`).

ONLY for points of G2: elsewhere on the curve phi is not multiplication by u, and the result is some
other point. Callers use it where the result is checked in full before it counts
(`Backend.g2_interpolate`), or where the inputs are checked points. Pure arithmetic, no secrets: never
for signing (its digits would leak timing of a secret key through the variable-time library).
"""

from __future__ import annotations

from typing import Final

from covalidator.model.crypto.backends.base import CURVE_ORDER, FIELD_MODULUS, fp2_mul

U: Final = 0xD201000000010000  # -x, the BLS12-381 parameter's magnitude
Fp2 = tuple[int, int]  # c0 + c1 i


def _pow(a: Fp2, e: int) -> Fp2:
    result = (1, 0)
    while e:
        if e & 1:
            result = fp2_mul(result, a)
        a, e = fp2_mul(a, a), e >> 1
    return result


def _inverse(a: Fp2) -> Fp2:
    p = FIELD_MODULUS
    norm = pow((a[0] * a[0] + a[1] * a[1]) % p, -1, p)
    return a[0] * norm % p, -a[1] * norm % p


C1: Final = _inverse(_pow((1, 1), (FIELD_MODULUS - 1) // 3))
C2: Final = _inverse(_pow((1, 1), (FIELD_MODULUS - 1) // 2))
# phi = -psi: the y constant negated
_NEG_C2: Final = ((-C2[0]) % FIELD_MODULUS, (-C2[1]) % FIELD_MODULUS)


def phi(x: Fp2, y: Fp2) -> tuple[Fp2, Fp2]:
    """-psi of an affine point (not the point at infinity): multiplication by u on G2."""
    p = FIELD_MODULUS
    return fp2_mul((x[0], -x[1] % p), C1), fp2_mul((y[0], -y[1] % p), _NEG_C2)


def digits(scalar: int) -> tuple[int, int, int, int]:
    """The base-u digits of `scalar` mod r (each below 2^64): scalar = sum d_j u^j (mod r)."""
    k = scalar % CURVE_ORDER
    out = []
    for _ in range(4):
        k, d = divmod(k, U)
        out.append(d)
    assert k == 0  # r < u^4
    return out[0], out[1], out[2], out[3]
