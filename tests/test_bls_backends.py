"""The three backends agree byte for byte: arkworks (default), blst, and py_ecc (the pure-Python
reference). blst is fast, so Hypothesis runs many examples against it; py_ecc costs ~0.1-0.3 s per
operation, so it gets a bounded handful of random examples plus the edge cases."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import Phase, assume, given, settings
from hypothesis import strategies as st

from covalidator.model.crypto import bls, shamir
from covalidator.model.crypto.backends.base import CURVE_ORDER, FIELD_MODULUS, Backend, BlsError

from .bls_points import NON_SUBGROUP_G1, non_subgroup_g2

ARKWORKS = bls.load_backend("arkworks")
BLST = bls.load_backend("blst")
PYECC = bls.load_backend("pyecc")

secrets = st.integers(min_value=1, max_value=CURVE_ORDER - 1)
messages = st.binary(min_size=0, max_size=64)


def same_everywhere(backends: list[Backend[Any, Any]], sk: int, other: int, message: bytes) -> None:
    pks = [b.sk_to_pk(sk) for b in backends]
    sigs = [b.sign(sk, message) for b in backends]
    assert len(set(pks)) == 1 and len(set(sigs)) == 1
    pk, sig = pks[0], sigs[0]
    pk2, sig2 = ARKWORKS.sk_to_pk(other), ARKWORKS.sign(other, message)
    for b in backends:
        assert b.verify(pk, message, sig)
        assert not b.verify(pk2, message, sig)
        assert not b.verify(pk, message + b"!", sig)
    assert len({b.aggregate([sig, sig2]) for b in backends}) == 1
    assert len({b.aggregate_pubkeys([pk, pk2]) for b in backends}) == 1
    scalars = [sk, other]
    assert len({b.g1_linear_combination([pk, pk2], scalars) for b in backends}) == 1
    assert len({b.g2_linear_combination([sig, sig2], scalars) for b in backends}) == 1


@settings(max_examples=40, deadline=None)
@given(secrets, secrets, messages)
def test_blst_equals_arkworks(sk: int, other: int, message: bytes) -> None:
    assume(sk != other)
    same_everywhere([ARKWORKS, BLST], sk, other, message)


# No shrinking: each py_ecc example costs seconds; a failure is reported as found.
@settings(max_examples=3, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(secrets, secrets, messages)
def test_pyecc_equals_arkworks(sk: int, other: int, message: bytes) -> None:
    assume(sk != other)
    same_everywhere([ARKWORKS, PYECC], sk, other, message)


@pytest.mark.parametrize("backend", [ARKWORKS, BLST, PYECC], ids=lambda b: b.name)
def test_edge_cases_on_every_backend(backend: Backend[Any, Any]) -> None:
    g1_inf, g2_inf = bytes([0xC0]) + bytes(47), bytes([0xC0]) + bytes(95)
    pk, sig = ARKWORKS.sk_to_pk(3), ARKWORKS.sign(3, b"")
    assert backend.verify(pk, b"", sig)  # empty message
    assert backend.sk_to_pk(CURVE_ORDER - 1) == ARKWORKS.sk_to_pk(CURVE_ORDER - 1)
    assert not backend.is_valid_pubkey(g1_inf)
    assert backend.is_valid_signature(g2_inf)
    assert not backend.verify(pk, b"", g2_inf)
    assert not backend.is_valid_pubkey(NON_SUBGROUP_G1)
    assert not backend.is_valid_signature(non_subgroup_g2())
    assert not backend.is_valid_pubkey(b"\xff" * 48)
    assert not backend.is_valid_pubkey((FIELD_MODULUS | (1 << 383)).to_bytes(48, "big"))
    assert not backend.fast_aggregate_verify([], b"", sig)
    # A point plus its negation: the linear combination may be infinity and must encode canonically.
    assert backend.g2_linear_combination([sig, sig], [1, CURVE_ORDER - 1]) == g2_inf
    assert backend.g1_linear_combination([pk, pk], [1, -1]) == g1_inf
    with pytest.raises(BlsError):
        backend.sign(0, b"")
    with pytest.raises(BlsError):
        backend.aggregate([])


@pytest.mark.parametrize("backend", [ARKWORKS, BLST, PYECC], ids=lambda b: b.name)
def test_batch_and_threshold_decisions_agree(backend: Backend[Any, Any]) -> None:
    """Same batch verdicts and the same combined signature on every backend (partials made by arkworks)."""
    message = b"duty"
    shares = shamir.split(77, 2, 3, [5])
    pubkeys = {i: ARKWORKS.sk_to_pk(s) for i, s in shares.items()}
    partials = {i: ARKWORKS.sign(s, message) for i, s in shares.items()}
    items = [bls.SignedItem(pubkeys[i], message, partials[i]) for i in (1, 2)]
    weights = bls.batch_weights(items)
    assert backend.batch_verify(items, weights)
    swapped = [bls.SignedItem(pubkeys[1], message, partials[2]), items[1]]
    assert not backend.batch_verify(swapped, bls.batch_weights(swapped))
    indices, coefficients = shamir.lagrange_coefficients([1, 3])
    combined = backend.g2_linear_combination([partials[i] for i in indices], list(coefficients))
    assert combined == ARKWORKS.sign(77, message)
    indices, numerators, denominator = shamir.integer_lagrange_coefficients([1, 3])
    assert denominator != 1  # (3 / 2, -1 / 2): the division by the denominator runs too
    for checked in (True, False):
        signatures = [partials[i] for i in indices]
        assert backend.g2_interpolate(signatures, numerators, denominator, checked=checked) == combined


def test_bench_step_counts_every_group_operation_a_check_reaches() -> None:
    """`bench/step.py --bls` (the README's crypto floor) counts the backend's group operations on the
    instance; the memos must reach them through the instance too, or hashing and decoding would go
    uncounted and the floor would read low."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "bench_step", Path(__file__).parents[1] / "bench" / "step.py"
    )
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    backend = type(ARKWORKS)()  # a fresh instance (not the shared one): its memos are empty
    counts, _ = bench.count_bls(backend)
    pk, message = ARKWORKS.sk_to_pk(7), b"counted"
    signature = ARKWORKS.sign(7, message)  # made elsewhere: this instance has not seen it
    assert backend.verify(pk, message, signature)
    assert backend.verify(pk, message, signature)  # memoised: nothing decoded or hashed again
    assert {name: int(calls) for name, (calls, _) in counts.items()} == {
        "g1_decode": 1,
        "g2_decode": 1,
        "hash_to_g2": 1,
        "pairings_equal": 2,
    }
    on_curve = backend.g2_xy(backend.signature_point(signature))
    assert on_curve is not None
    backend.signature_from_uncompressed(on_curve)
    assert counts["g2_xy"][0] == 1 and counts["g2_from_xy"][0] == 1
