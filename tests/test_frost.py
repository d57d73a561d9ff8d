"""FROST key generation arithmetic (model/crypto/frost.py), against oracles outside it: the group
secret is summed HERE (the test is allowed to; the code never does) and py_ecc gives its public key;
any M secret shares interpolate to that secret; every public share is py_ecc's key of its secret share;
and the lock's own consistency check accepts the result."""

from __future__ import annotations

import random

import pytest
from py_ecc.bls import G2ProofOfPossession as pyecc_bls

from covalidator.model.crypto import bls, frost, shamir
from covalidator.model.crypto.backends.base import CURVE_ORDER

CONTEXT = frost.key_context(b"\x11" * 32, 0)


def _polynomials(n: int, m: int, rng: random.Random) -> dict[int, list[int]]:
    return {i: [rng.randrange(1, CURVE_ORDER) for _ in range(m)] for i in range(1, n + 1)}


def _ceremony(n: int, m: int, seed: int) -> tuple[dict[int, list[int]], dict[int, frost.Commitment]]:
    rng = random.Random(seed)
    polys = _polynomials(n, m, rng)
    commitments = {
        i: frost.commit(i, poly, rng.randrange(1, CURVE_ORDER), CONTEXT) for i, poly in polys.items()
    }
    return polys, commitments


@pytest.mark.parametrize(("n", "m"), [(4, 3), (7, 5)])
def test_a_ceremony_gives_shares_of_one_key(n: int, m: int) -> None:
    polys, commitments = _ceremony(n, m, seed=n)
    for i, c in commitments.items():
        assert frost.commitment_fault(i, c, m, CONTEXT) is None
    shares: dict[int, int] = {}
    for receiver in range(1, n + 1):
        received = {sender: frost.share_for(poly, receiver) for sender, poly in polys.items()}
        for sender, share in received.items():
            assert frost.share_is_valid(receiver, share, commitments[sender])
        shares[receiver] = frost.secret_share(received)
    group_secret = sum(poly[0] for poly in polys.values()) % CURVE_ORDER  # the oracle only
    summed = frost.summed_commitments(commitments)
    group = summed[0]
    assert group == pyecc_bls.SkToPk(group_secret)
    rng = random.Random(1)
    for _ in range(3):
        chosen = rng.sample(sorted(shares), m)
        assert shamir.interpolate({i: shares[i] for i in chosen}) == group_secret
        fewer = chosen[: m - 1]
        assert shamir.interpolate({i: shares[i] for i in fewer}) != group_secret
    public = [frost.public_share(i, summed) for i in range(1, n + 1)]
    assert public == [pyecc_bls.SkToPk(shares[i]) for i in range(1, n + 1)]
    assert bls.public_shares_consistent(group, public, m)


def test_a_wrong_share_is_caught_against_its_senders_commitments() -> None:
    polys, commitments = _ceremony(4, 3, seed=9)
    good = frost.share_for(polys[2], 3)
    assert frost.share_is_valid(3, good, commitments[2])
    assert not frost.share_is_valid(3, (good + 1) % CURVE_ORDER, commitments[2])
    assert not frost.share_is_valid(4, good, commitments[2])  # meant for participant 3
    assert not frost.share_is_valid(3, good, commitments[1])  # not participant 1's
    assert not frost.share_is_valid(3, 0, commitments[2])
    # a sender whose polynomial differs in one higher coefficient from what it committed to
    other = list(polys[2])
    other[2] = (other[2] + 1) % CURVE_ORDER
    assert not frost.share_is_valid(3, frost.share_for(other, 3), commitments[2])


def test_proof_of_knowledge_is_bound_to_index_context_and_constant() -> None:
    _, commitments = _ceremony(4, 3, seed=5)
    c = commitments[1]
    assert frost.commitment_fault(1, c, 3, CONTEXT) is None
    assert "does not verify" in str(frost.commitment_fault(2, c, 3, CONTEXT))  # replayed as another's
    other_key = frost.key_context(b"\x11" * 32, 1)
    assert "does not verify" in str(frost.commitment_fault(1, c, 3, other_key))  # another validator
    other_ceremony = frost.key_context(b"\x22" * 32, 0)
    assert "does not verify" in str(frost.commitment_fault(1, c, 3, other_ceremony))
    # rogue key: participant 1 claims the constant term C_0' = P - (others) without knowing its log
    rogue = frost.Commitment((commitments[2].coefficients[0], *c.coefficients[1:]), c.proof_r, c.proof_mu)
    assert "does not verify" in str(frost.commitment_fault(1, rogue, 3, CONTEXT))
    mu = frost.Commitment(c.coefficients, c.proof_r, (c.proof_mu + 1) % CURVE_ORDER)
    assert "does not verify" in str(frost.commitment_fault(1, mu, 3, CONTEXT))
    assert "scalar" in str(
        frost.commitment_fault(1, frost.Commitment(c.coefficients, c.proof_r, CURVE_ORDER), 3, CONTEXT)
    )
    assert "commitments for threshold" in str(frost.commitment_fault(1, c, 4, CONTEXT))
    infinity = frost.Commitment(
        (c.coefficients[0], bytes([0xC0]) + bytes(47), c.coefficients[2]), c.proof_r, c.proof_mu
    )
    assert "valid G1 point" in str(frost.commitment_fault(1, infinity, 3, CONTEXT))
    garbage = frost.Commitment(
        (c.coefficients[0], b"\x80" + bytes(47), c.coefficients[2]), c.proof_r, c.proof_mu
    )
    assert "valid G1 point" in str(frost.commitment_fault(1, garbage, 3, CONTEXT))


def test_generator_constant_is_the_specs_generator() -> None:
    assert pyecc_bls.SkToPk(1) == frost.G1_GENERATOR


def test_a_cancelled_column_of_commitments_is_no_crash() -> None:
    """A participant who saw the others' commitments first can pick its a_1 so that the k = 1 column
    sums to the point at infinity (its proof of knowledge covers only a_0). The sums and public shares
    are still computed (what the lock check then judges), never an exception."""
    rng = random.Random(3)
    first = [rng.randrange(1, CURVE_ORDER) for _ in range(3)]
    second = [rng.randrange(1, CURVE_ORDER), CURVE_ORDER - first[1], rng.randrange(1, CURVE_ORDER)]
    commitments = {
        1: frost.commit(1, first, 5, CONTEXT),
        2: frost.commit(2, second, 6, CONTEXT),
    }
    summed = frost.summed_commitments(commitments)
    assert summed[1] == bytes([0xC0]) + bytes(47)
    for index in (1, 2, 3):
        secret = (frost.share_for(first, index) + frost.share_for(second, index)) % CURVE_ORDER
        assert frost.public_share(index, summed) == pyecc_bls.SkToPk(secret)
