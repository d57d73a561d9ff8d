"""Curve points that are on BLS12-381 but outside the prime-order subgroups (for strict-decoding tests)."""

from __future__ import annotations

import hashlib
from functools import cache

from py_ecc.bls.g2_primitives import G2_to_signature, subgroup_check
from py_ecc.bls.hash_to_curve import hash_to_field_FQ2, map_to_curve_G2

# x = 4 is on E1 (4^3 + 4 = 68 is a square mod p); the point is not in G1 (checked in test below).
NON_SUBGROUP_G1 = bytes([0x80]) + bytes(46) + b"\x04"


@cache
def non_subgroup_g2() -> bytes:
    """SSWU map of a field element without cofactor clearing: on E2, not in G2."""
    (u,) = hash_to_field_FQ2(b"covalidator", 1, b"TEST", hashlib.sha256)  # type: ignore[arg-type]
    point = map_to_curve_G2(u)
    assert not subgroup_check(point)
    return bytes(G2_to_signature(point))
