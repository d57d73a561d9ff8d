"""Shamir secret sharing over the BLS12-381 scalar field: split, Lagrange coefficients, interpolation.

Decides: share i is f(i) for i = 1..N, where f has degree M-1 and f(0) is the secret (the numbering
Ethereum DV clients use: node index + 1); how Lagrange coefficients at a point are computed for a set
of share indices, and that they are cached per signer set. Works on plain integers mod r, so the same
coefficients serve secret keys (scalars), public keys (G1) and signatures (G2) in `bls.py`.

Must not: draw randomness. The caller passes the polynomial's coefficients (the runtime from
`secrets`, the simulator from its seed via `coefficients_from_seed`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from functools import lru_cache

from covalidator.model.crypto.backends.base import CURVE_ORDER


def evaluate(coefficients: Sequence[int], x: int) -> int:
    """f(x) mod r for f = coefficients[0] + coefficients[1] x + ... (Horner)."""
    result = 0
    for coefficient in reversed(coefficients):
        result = (result * x + coefficient) % CURVE_ORDER
    return result


def split(secret: int, threshold: int, shares: int, coefficients: Sequence[int]) -> dict[int, int]:
    """Share `secret` M-of-N: {i: f(i)} for i = 1..N, f(0) = secret, f's other coefficients given."""
    assert 1 <= threshold <= shares, f"threshold {threshold} outside [1, {shares}]"
    assert len(coefficients) == threshold - 1, f"need {threshold - 1} coefficients, got {len(coefficients)}"
    assert 0 < secret < CURVE_ORDER, "secret key outside [1, r)"
    polynomial = [secret, *(c % CURVE_ORDER for c in coefficients)]
    result = {i: evaluate(polynomial, i) for i in range(1, shares + 1)}
    # A zero share has no public key; it happens with probability N/r: the caller draws again.
    assert all(result.values()), "a share is zero: draw other coefficients"
    return result


def coefficients_from_seed(seed: bytes, count: int) -> list[int]:
    """`count` field elements derived from `seed` (64 hash bytes each, so the bias mod r is ~2^-256)."""
    out = []
    for k in range(count):
        wide = hashlib.sha512(b"covalidator/shamir" + seed + k.to_bytes(4, "big")).digest()
        out.append(int.from_bytes(wide, "big") % CURVE_ORDER)
    return out


def _check_indices(indices: Iterable[int]) -> tuple[int, ...]:
    # Indices may come from peers' messages: refuse loudly rather than assert (asserts vanish with -O).
    ordered = tuple(sorted(indices))
    if not ordered:
        raise ValueError("need at least one share index")
    if len(set(ordered)) != len(ordered):
        raise ValueError(f"duplicate share index in {ordered}")
    if not all(0 < i < CURVE_ORDER for i in ordered):
        raise ValueError(f"share index outside [1, r) in {ordered}")
    return ordered


@lru_cache(maxsize=4096)
def _lagrange(indices: tuple[int, ...], at: int) -> tuple[int, ...]:
    coefficients = []
    for i in indices:
        numerator, denominator = 1, 1
        for j in indices:
            if j != i:
                numerator = numerator * (at - j) % CURVE_ORDER
                denominator = denominator * (i - j) % CURVE_ORDER
        coefficients.append(numerator * pow(denominator, -1, CURVE_ORDER) % CURVE_ORDER)
    return tuple(coefficients)


def lagrange_coefficients(indices: Iterable[int], at: int = 0) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(sorted indices, their Lagrange coefficients at `at`): f(at) = sum c_i f(i) for deg f < len.

    Cached per (signer set, point): a cluster has few distinct signer sets, so a combination pays
    only for its group operations.
    """
    ordered = _check_indices(indices)
    return ordered, _lagrange(ordered, at % CURVE_ORDER)


@lru_cache(maxsize=4096)
def _integer_lagrange(indices: tuple[int, ...]) -> tuple[tuple[int, ...], int]:
    exact = []
    for i in indices:
        coefficient = Fraction(1)
        for j in indices:
            if j != i:
                coefficient *= Fraction(-j, i - j)
        exact.append(coefficient)
    denominator = math.lcm(*(c.denominator for c in exact))
    return tuple(int(c * denominator) for c in exact), denominator


def integer_lagrange_coefficients(indices: Iterable[int]) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    """(sorted indices, integer numerators n_i, denominator d > 0) with the Lagrange coefficient at 0 of
    index i equal to n_i / d over the rationals (so n_i * d^-1 mod r is `lagrange_coefficients`' value).

    Why: a signature combination sum n_i * sig_i costs a few group additions when the n_i are small, and
    d^-1 one scalar multiplication only when d != 1. For the M lowest indices 1..M (the set chosen when
    every partial is there) d = 1 and n_i = (-1)^(i+1) C(M, i): no full-size multiplication at all.
    """
    ordered = _check_indices(indices)
    numerators, denominator = _integer_lagrange(ordered)
    return ordered, numerators, denominator


def interpolate(points: Mapping[int, int], at: int = 0) -> int:
    """f(at) for the polynomial of degree < len(points) through {i: f(i)} (recovers a secret at 0)."""
    ordered, coefficients = lagrange_coefficients(points)
    return sum(c * points[i] for i, c in zip(ordered, coefficients, strict=True)) % CURVE_ORDER
