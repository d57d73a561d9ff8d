"""Threshold BLS: M-of-N combination equals the whole key's signature for every M-subset, M-1 shares
never do, corrupted partials are found before they are combined, and batch verification is a random
linear combination (not a plain sum that cancelling errors could fool)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from covalidator.model.crypto import bls, shamir
from covalidator.model.crypto.backends.base import CURVE_ORDER

from .bls_points import non_subgroup_g2


def cluster(
    secret: int, threshold: int, n: int, seed: bytes = b"t"
) -> tuple[dict[int, int], dict[int, bytes]]:
    shares = bls.split(secret, threshold, n, shamir.coefficients_from_seed(seed, threshold - 1))
    return shares, bls.share_pubkeys(shares)


def default_threshold(n: int) -> int:
    return math.ceil(2 * n / 3)


@pytest.mark.parametrize("n", [3, 4, 5, 6])
def test_every_m_subset_combines_to_the_group_signature(n: int) -> None:
    m = default_threshold(n)
    secret = 0xC0FFEE + n
    shares, _ = cluster(secret, m, n)
    message = b"attestation data root"
    expected = bls.sign(secret, message)
    partials = {i: bls.sign(s, message) for i, s in shares.items()}
    for subset in itertools.combinations(range(1, n + 1), m):
        assert bls.combine({i: partials[i] for i in subset}, m) == expected, subset
    # M-1 shares interpolate a different polynomial: their "combination" is never the signature.
    for subset in itertools.combinations(range(1, n + 1), m - 1):
        wrong = bls.combine({i: partials[i] for i in subset}, m - 1)
        assert wrong != expected
        assert not bls.verify(bls.sk_to_pk(secret), message, wrong)
    with pytest.raises(bls.BlsError, match=f"need {m} shares"):
        bls.combine({i: partials[i] for i in range(1, m)}, m)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(min_value=3, max_value=10),
    secret=st.integers(min_value=1, max_value=CURVE_ORDER - 1),
    seed=st.binary(max_size=8),
    data=st.data(),
)
def test_random_subsets_up_to_ten_nodes(n: int, secret: int, seed: bytes, data: st.DataObject) -> None:
    m = data.draw(st.integers(min_value=n // 2 + 1, max_value=n), label="threshold")
    shares, pubkeys = cluster(secret, m, n, seed)
    group = bls.sk_to_pk(secret)
    subset = data.draw(st.sets(st.integers(1, n), min_size=m, max_size=n), label="signers")
    message = seed + b"message"
    partials = {i: bls.sign(shares[i], message) for i in subset}
    assert bls.combine(partials, m) == bls.sign(secret, message)
    assert shamir.interpolate({i: shares[i] for i in subset}) == secret
    assert bls.combine_pubkeys({i: pubkeys[i] for i in subset}, m) == group
    assert bls.public_shares_consistent(group, [pubkeys[i] for i in range(1, n + 1)], m)
    result = bls.verify_and_combine(group, pubkeys, message, partials, m)
    assert result.signature == bls.sign(secret, message) and not result.invalid


def test_corrupted_partials_are_found_before_combination() -> None:
    n, m, secret = 7, 5, 424242
    shares, pubkeys = cluster(secret, m, n)
    group = bls.sk_to_pk(secret)
    message = b"block root"
    partials = {i: bls.sign(s, message) for i, s in shares.items()}
    corrupted = dict(partials)
    corrupted[1] = bls.sign(shares[1], b"another message")  # valid signature, wrong message
    corrupted[4] = partials[5]  # someone else's partial
    corrupted[6] = b"\xff" * 96  # garbage
    result = bls.verify_and_combine(group, pubkeys, message, corrupted, m)
    assert result.invalid == {1, 4, 6}
    assert result.signature is None and result.signers == ()  # only 4 valid partials left, threshold 5
    corrupted[8] = partials[2]  # an index that is not a share of this cluster
    corrupted[1] = partials[1]
    result = bls.verify_and_combine(group, pubkeys, message, corrupted, m)
    assert result.invalid == {4, 6, 8}
    assert result.signers == (1, 2, 3, 5, 7)
    assert result.signature == bls.sign(secret, message)


def test_a_partial_outside_g2_is_named_and_never_combined() -> None:
    """The fast path decodes the chosen partials without the subgroup check; a partial on the curve but
    outside G2 must still be caught (by the full check of the combination) and left out."""
    secret = 0xBEEF
    shares, pubkeys = cluster(secret, 3, 4)
    message = b"m"
    partials = {i: bls.sign(s, message) for i, s in shares.items()}
    partials[2] = non_subgroup_g2()
    result = bls.verify_and_combine(bls.sk_to_pk(secret), pubkeys, message, partials, 3)
    assert result.invalid == {2} and result.signers == (1, 3, 4)
    assert result.signature == bls.sign(secret, message)
    del partials[4]
    result = bls.verify_and_combine(bls.sk_to_pk(secret), pubkeys, message, partials, 3)
    assert result.invalid == {2} and result.signature is None


def test_an_unchecked_combination_outside_g2_is_not_remembered_as_valid() -> None:
    backend = bls.backend()
    outside = non_subgroup_g2()
    combined = backend.g2_interpolate([outside], [1], 1, checked=False)
    assert combined == outside and not bls.signature_validate(combined)
    with pytest.raises(bls.BlsError):
        backend.g2_interpolate([outside], [1], 1, checked=True)


@pytest.mark.parametrize("n", range(1, 11))
def test_integer_lagrange_coefficients_are_the_lagrange_coefficients(n: int) -> None:
    """Oracle: the defining property over the rationals (sum l_i i^k = 1 if k == 0 else 0, k < M),
    and the modular coefficients; the M lowest indices need no division at all."""
    for m in range(1, n + 1):
        for subset in itertools.combinations(range(1, n + 1), m):
            ordered, numerators, denominator = shamir.integer_lagrange_coefficients(subset)
            assert ordered == subset and denominator >= 1
            exact = [Fraction(x, denominator) for x in numerators]
            for k in range(m):
                assert sum(c * i**k for c, i in zip(exact, subset, strict=True)) == (k == 0), subset
            _, modular = shamir.lagrange_coefficients(subset)
            inverse = pow(denominator, -1, CURVE_ORDER)
            assert tuple(x * inverse % CURVE_ORDER for x in numerators) == modular
        assert shamir.integer_lagrange_coefficients(range(1, m + 1))[2] == 1


def test_a_partial_claimed_verified_is_still_covered_by_the_result_check() -> None:
    """A caller that wrongly marks a bad partial as verified gets no signature, never a wrong one."""
    shares, pubkeys = cluster(99, 3, 4)
    message = b"m"
    partials = {i: bls.sign(s, message) for i, s in shares.items()}
    good = bls.verify_and_combine(bls.sk_to_pk(99), pubkeys, message, partials, 3, verified={1})
    assert good.signature == bls.sign(99, message)
    partials[1] = bls.sign(shares[1], b"other")
    bad = bls.verify_and_combine(bls.sk_to_pk(99), pubkeys, message, partials, 3, verified={1})
    assert bad.signature is None


@pytest.fixture(params=[None, b"\x5a" * 32], ids=["public weights", "secret weights"])
def batch_secret(request: pytest.FixtureRequest) -> Iterator[bytes | None]:
    bls.use_batch_secret(request.param)
    yield request.param
    bls.use_batch_secret(None)


def test_batch_verify_is_a_random_linear_combination(batch_secret: bytes | None) -> None:
    """Two signatures with errors that cancel in a plain sum pass an aggregate check but not the batch."""
    message = b"same message"
    sk1, sk2 = 1001, 2002
    pk1, pk2 = bls.sk_to_pk(sk1), bls.sk_to_pk(sk2)
    delta = bls.sign(7, b"error")
    s1 = bls.aggregate([bls.sign(sk1, message), delta])
    s2 = bls.backend().g2_linear_combination([bls.sign(sk2, message), delta], [1, -1])
    assert not bls.verify(pk1, message, s1) and not bls.verify(pk2, message, s2)
    assert bls.fast_aggregate_verify([pk1, pk2], message, bls.aggregate([s1, s2]))  # the naive sum is fooled
    assert not bls.batch_verify([bls.SignedItem(pk1, message, s1), bls.SignedItem(pk2, message, s2)])
    good = [
        bls.SignedItem(pk1, message, bls.sign(sk1, message)),
        bls.SignedItem(pk2, b"other", bls.sign(sk2, b"other")),
    ]
    assert bls.batch_verify(good)  # distinct messages batch too
    assert bls.batch_verify(good, seed=b"fresh randomness")
    with pytest.raises(bls.BlsError):
        bls.batch_verify([])


def test_batch_weights_are_deterministic_nonzero_and_input_bound(batch_secret: bytes | None) -> None:
    items = [bls.SignedItem(bls.sk_to_pk(k), b"m", bls.sign(k, b"m")) for k in (1, 2, 3)]
    w = bls.batch_weights(items)
    assert w == bls.batch_weights(items)
    bits = 128 if batch_secret is None else 64  # unknowable weights can be shorter
    assert all(0 < x < 2**bits and x % 2 for x in w) and len(set(w)) == 3
    assert max(w) >= 2 ** (bits - 8)  # and they really use that width
    assert bls.batch_weights(items, seed=b"s") != w
    assert bls.batch_weights(items[::-1]) != w[::-1]
    bls.use_batch_secret(b"\x01" * 16 if batch_secret is None else None)
    assert bls.batch_weights(items) != w  # the secret is mixed in
    with pytest.raises(ValueError, match="at least 16 bytes"):
        bls.use_batch_secret(b"short")


def test_verify_and_combine_outcome_does_not_depend_on_the_batch_secret() -> None:
    shares, pubkeys = cluster(31337, 3, 4)
    partials = {i: bls.sign(s, b"m") for i, s in shares.items()}
    partials[2] = partials[3]
    outcomes = []
    for secret in (None, b"a" * 16, b"b" * 32):
        bls.use_batch_secret(secret)
        outcomes.append(bls.verify_and_combine(bls.sk_to_pk(31337), pubkeys, b"m", partials, 3))
    bls.use_batch_secret(None)
    assert outcomes[0] == outcomes[1] == outcomes[2]
    assert outcomes[0].invalid == {2} and outcomes[0].signature == bls.sign(31337, b"m")


def test_find_invalid_locates_every_bad_item() -> None:
    items = [bls.SignedItem(bls.sk_to_pk(k), bytes([k]), bls.sign(k, bytes([k]))) for k in range(1, 12)]
    assert bls.find_invalid(items) == []
    bad = {0, 5, 10}
    for p in bad:
        items[p] = bls.SignedItem(items[p].pubkey, items[p].message, bls.sign(999, b"x"))
    assert bls.find_invalid(items) == sorted(bad)


def test_public_shares_consistency_catches_every_kind_of_wrong_share() -> None:
    n, m = 5, 4
    _, pubkeys = cluster(12345, m, n)
    group = bls.sk_to_pk(12345)
    public = [pubkeys[i] for i in range(1, n + 1)]
    assert bls.public_shares_consistent(group, public, m)
    assert not bls.public_shares_consistent(bls.sk_to_pk(12346), public, m)  # wrong group key
    assert not bls.public_shares_consistent(group, public[::-1], m)  # wrong order
    _, stranger = cluster(12345, m, n, seed=b"other polynomial")
    assert not bls.public_shares_consistent(group, [*public[:4], stranger[5]], m)  # last share off-curve
    assert not bls.public_shares_consistent(group, public, m - 1)  # claims a lower threshold
    assert not bls.public_shares_consistent(group, public, n + 1)
    assert not bls.public_shares_consistent(group, [*public[:4], b"\x00" * 48], m)


def test_lagrange_coefficients_are_cached_per_signer_set() -> None:
    shamir.lagrange_coefficients([1, 2, 9])
    before = shamir._lagrange.cache_info().hits
    ordered, coefficients = shamir.lagrange_coefficients([9, 2, 1])
    assert ordered == (1, 2, 9)
    assert shamir._lagrange.cache_info().hits == before + 1
    assert sum(coefficients) % CURVE_ORDER == 1  # interpolating a constant polynomial


def test_split_preconditions_and_interpolation() -> None:
    shares = bls.split(5, 3, 5, [7, 11])
    assert shares == {i: (5 + 7 * i + 11 * i * i) % CURVE_ORDER for i in range(1, 6)}
    assert shamir.interpolate({1: shares[1], 4: shares[4], 5: shares[5]}) == 5
    with pytest.raises(AssertionError):
        bls.split(5, 4, 3, [1, 2, 3])
    with pytest.raises(AssertionError):
        bls.split(5, 3, 5, [1])
    with pytest.raises(ValueError, match="duplicate"):
        shamir.lagrange_coefficients([1, 1, 2])
    with pytest.raises(ValueError, match="outside"):
        shamir.lagrange_coefficients([0, 1])
