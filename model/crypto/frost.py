"""FROST distributed key generation (Komlo & Goldberg, 2020, figure 1): the arithmetic of one key.

Each of N participants (share index i = 1..N) draws a polynomial f_i of degree M-1 and:

- round 1 broadcasts its commitments C_i = (a_i0 G, ..., a_i(M-1) G) in G1 and a Schnorr proof of
  knowledge of a_i0: R = k G, c = H(context, i, a_i0 G, R), mu = k + a_i0 c. The proof stops a
  participant from choosing its commitment after seeing the others' (rogue keys); `context` binds it to
  one ceremony and one validator, so a proof cannot be replayed into another.
- round 2 sends f_i(l) to each participant l point to point. Participant l checks every share it gets
  against its sender's commitments: f_i(l) G == sum_k l^k C_ik.

Then participant l's secret share is s_l = sum_i f_i(l); its public share is s_l G =
sum_i sum_k l^k C_ik (computable by everyone from the broadcasts), and the group key is sum_i C_i0
(position 0 of `summed_commitments`). The
group secret sum_i a_i0 is never formed: no function here adds up the constant terms of secrets.

Decides: the commitment and proof format (compressed G1 points, the challenge hash), each check, and how
shares, public shares and the group key follow. Points on the wire are checked as public keys are
(canonical, on the curve, in G1, not infinity), so an honest participant draws every coefficient and
nonce in [1, r).

Must not: draw randomness (the caller passes coefficients and nonces), send anything, or keep state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from covalidator.model.crypto import bls, shamir
from covalidator.model.crypto.backends.base import CURVE_ORDER, G1_INFINITY

CHALLENGE_DOMAIN: Final = b"covalidator/frost-pok/v1\n"
G1_GENERATOR: Final = bytes.fromhex(
    "97f1d3a73197d7942695638c4fa9ac0fc3688c4f9774b905a14e3a3f171bac586c55e83ff97a1aeffb3af00adb22c6bb"
)


@dataclass(frozen=True)
class Commitment:
    """One participant's round-1 broadcast for one key."""

    coefficients: tuple[bytes, ...]  # a_k G for k = 0..M-1 (compressed G1)
    proof_r: bytes  # R = k G
    proof_mu: int  # mu = k + a_0 c mod r


def key_context(ceremony: bytes, key_index: int) -> bytes:
    """The context string of key `key_index` of a ceremony (`ceremony`: the definition hash)."""
    return ceremony + key_index.to_bytes(4, "big")


def challenge(context: bytes, index: int, constant: bytes, proof_r: bytes) -> int:
    wide = hashlib.sha512(CHALLENGE_DOMAIN + context + index.to_bytes(4, "big") + constant + proof_r).digest()
    return int.from_bytes(wide, "big") % CURVE_ORDER


def commit(index: int, coefficients: Sequence[int], nonce: int, context: bytes) -> Commitment:
    """Participant `index`'s round-1 message for the polynomial with `coefficients` (a_0 first)."""
    assert all(0 < a < CURVE_ORDER for a in coefficients) and 0 < nonce < CURVE_ORDER
    points = tuple(bls.sk_to_pk(a) for a in coefficients)
    proof_r = bls.sk_to_pk(nonce)
    mu = (nonce + coefficients[0] * challenge(context, index, points[0], proof_r)) % CURVE_ORDER
    return Commitment(points, proof_r, mu)


def commitment_fault(index: int, commitment: Commitment, threshold: int, context: bytes) -> str | None:
    """Why participant `index`'s round-1 message is not acceptable, or None: M coefficients, each a
    valid G1 point, and a proof of knowledge of the constant term that verifies in this context."""
    if len(commitment.coefficients) != threshold:
        return f"{len(commitment.coefficients)} commitments for threshold {threshold}"
    if not all(bls.key_validate(p) for p in (*commitment.coefficients, commitment.proof_r)):
        return "a commitment or the proof's R is not a valid G1 point"
    if not 0 <= commitment.proof_mu < CURVE_ORDER:
        return "the proof's mu is not a scalar"
    c = challenge(context, index, commitment.coefficients[0], commitment.proof_r)
    # R == mu G - c a_0 G
    expected = bls.backend().g1_linear_combination(
        [G1_GENERATOR, commitment.coefficients[0]], [commitment.proof_mu, CURVE_ORDER - c]
    )
    if expected != commitment.proof_r:
        return "the proof of knowledge of the constant term does not verify"
    return None


def share_for(coefficients: Sequence[int], recipient: int) -> int:
    """f(recipient): what the owner of `coefficients` sends participant `recipient` in round 2."""
    return shamir.evaluate(coefficients, recipient)


def share_is_valid(recipient: int, share: int, commitment: Commitment) -> bool:
    """Whether `share` is f(recipient) of the polynomial `commitment` commits to."""
    if not 0 < share < CURVE_ORDER:
        return False
    return bls.sk_to_pk(share) == public_share(recipient, commitment.coefficients)


def secret_share(shares: Mapping[int, int]) -> int:
    """Participant l's secret share: the sum of the (verified) f_i(l) it received, its own included."""
    total = sum(shares.values()) % CURVE_ORDER
    assert total != 0, "a zero share (probability N/r): run the ceremony again"
    return total


def summed_commitments(commitments: Mapping[int, Commitment]) -> tuple[bytes, ...]:
    """sum_i C_ik for each k: the commitments to the sum of every participant's polynomial (position
    0 is the group key). One sum per coefficient, so each public share after it is an M-point MSM.
    A sum may be the point at infinity (a participant that saw the others' commitments first can
    cancel a k >= 1 column; the proofs of knowledge rule it out for k = 0): encoded as such."""
    backend = bls.backend()
    ordered = [commitments[i] for i in sorted(commitments)]
    width = len(ordered[0].coefficients)
    assert all(len(c.coefficients) == width for c in ordered), "commitments of different degrees"
    sums = []
    for k in range(width):
        total = backend.pubkey_point(ordered[0].coefficients[k])
        for c in ordered[1:]:
            total = backend.g1_add(total, backend.pubkey_point(c.coefficients[k]))
        sums.append(backend.g1_encode(total))
    return tuple(sums)


def public_share(index: int, summed: Sequence[bytes]) -> bytes:
    """Participant `index`'s public share s_index G = sum_k index^k (sum_i C_ik), from
    `summed_commitments` (G1_INFINITY if it is the point at infinity: no valid key); of one
    participant's coefficients, f(index) G for its polynomial f (what a share is checked against)."""
    terms = [(p, pow(index, k, CURVE_ORDER)) for k, p in enumerate(summed) if p != G1_INFINITY]
    if not terms:
        return G1_INFINITY
    return bls.backend().g1_linear_combination([p for p, _ in terms], [s for _, s in terms])
