"""The one BLS interface covalidator uses: Ethereum signatures and M-of-N threshold signatures.

Decides: which backend runs (chosen once at start-up: `use_backend(name)`, which the runtime calls
from COVALIDATOR_BLS_BACKEND; else arkworks); the threshold scheme (share i = f(i), i = 1..N;
combination by Lagrange interpolation at 0 in G2 with coefficients cached per signer set; share
pubkeys checked to interpolate to the group pubkey in G1); how partial signatures are verified in a
batch (a random linear combination whose weights are hashed from the inputs, plus a secret the
runtime may configure once, since the model draws no randomness: see `batch_weights`); and how one
duty's partials are turned into one group signature (`verify_and_combine`, the hot path).

Must not: draw randomness, read files, or know about duties. Every function is deterministic: the
same inputs give the same bytes on every backend.

Secret keys are ints in [1, r); public keys are 48-byte and signatures 96-byte compressed points.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from covalidator.model.crypto import shamir
from covalidator.model.crypto.backends.base import CURVE_ORDER, DST, Backend, BlsError

__all__ = [
    "CURVE_ORDER",
    "DST",
    "BlsError",
    "Combination",
    "SignedItem",
    "aggregate",
    "aggregate_pubkeys",
    "backend",
    "backend_name",
    "batch_verify",
    "batch_weights",
    "combine",
    "combine_pubkeys",
    "fast_aggregate_verify",
    "find_invalid",
    "key_validate",
    "public_shares_consistent",
    "secret_from_bytes",
    "secret_to_bytes",
    "share_pubkey",
    "share_pubkeys",
    "sign",
    "signature_from_uncompressed",
    "signature_uncompressed",
    "signature_validate",
    "sk_to_pk",
    "split",
    "use_backend",
    "use_batch_secret",
    "verify",
    "verify_and_combine",
    "verify_partial",
]

DEFAULT_BACKEND: Final = "arkworks"
BACKENDS: Final = ("arkworks", "blst", "pyecc")
_ALIASES: Final = {
    "py-arkworks-bls12381": "arkworks",
    "py_arkworks_bls12381": "arkworks",
    "pyblst": "blst",
    "py_ecc": "pyecc",
    "py-ecc": "pyecc",
}

_current: Backend[Any, Any] | None = None
_batch_secret: bytes | None = None


# ---- backend choice ----------------------------------------------------------------------------------


def load_backend(name: str) -> Backend[Any, Any]:
    """The backend called `name` (importing its library only now); ValueError if unknown."""
    key = _ALIASES.get(name.strip().lower(), name.strip().lower())
    if key == "arkworks":
        from covalidator.model.crypto.backends.arkworks import BACKEND as arkworks

        return arkworks
    if key == "blst":
        try:
            from covalidator.model.crypto.backends.blst import BACKEND as blst
        except ImportError as error:  # an optional extra: `run` does not need it
            raise ValueError(
                f"the blst backend needs pyblst: pip install 'covalidator[blst]' ({error})"
            ) from error
        return blst
    if key == "pyecc":
        from covalidator.model.crypto.backends.pyecc import BACKEND as pyecc

        return pyecc
    raise ValueError(f"unknown BLS backend {name!r}; choose one of {', '.join(BACKENDS)}")


def use_backend(name: str) -> Backend[Any, Any]:
    """Select the backend for the rest of the process (call once at start-up)."""
    global _current
    _current = load_backend(name)
    return _current


def backend() -> Backend[Any, Any]:
    """The backend in use: the one `use_backend` chose (the runtime, from COVALIDATOR_BLS_BACKEND,
    at start-up), else arkworks. The model reads no environment."""
    global _current
    if _current is None:
        _current = load_backend(DEFAULT_BACKEND)
    return _current


def backend_name() -> str:
    return backend().name


# ---- keys and plain signatures -----------------------------------------------------------------------


def secret_from_bytes(data: bytes) -> int:
    """A 32-byte big-endian secret key (the EIP-2335 keystore content) as an int in [1, r)."""
    if len(data) != 32:
        raise BlsError(f"a secret key is 32 bytes, got {len(data)}")
    value = int.from_bytes(data, "big")
    if not 0 < value < CURVE_ORDER:
        raise BlsError("secret key outside [1, r)")
    return value


def secret_to_bytes(secret: int) -> bytes:
    if not 0 < secret < CURVE_ORDER:
        raise BlsError("secret key outside [1, r)")
    return secret.to_bytes(32, "big")


def sk_to_pk(secret: int) -> bytes:
    return backend().sk_to_pk(secret)


def sign(secret: int, message: bytes) -> bytes:
    return backend().sign(secret, message)


def verify(pubkey: bytes, message: bytes, signature: bytes) -> bool:
    """CoreVerify with KeyValidate: False (never an exception) for any malformed input."""
    return backend().verify(pubkey, message, signature)


def aggregate(signatures: Sequence[bytes]) -> bytes:
    return backend().aggregate(signatures)


def aggregate_pubkeys(pubkeys: Sequence[bytes]) -> bytes:
    return backend().aggregate_pubkeys(pubkeys)


def fast_aggregate_verify(pubkeys: Sequence[bytes], message: bytes, signature: bytes) -> bool:
    return backend().fast_aggregate_verify(pubkeys, message, signature)


def key_validate(pubkey: bytes) -> bool:
    """Canonical compressed encoding, on the curve, in G1, not the point at infinity."""
    return backend().is_valid_pubkey(pubkey)


def signature_validate(signature: bytes) -> bool:
    """Canonical compressed encoding, on the curve, in G2."""
    return backend().is_valid_signature(signature)


def signature_uncompressed(signature: bytes) -> bytes | None:
    """The ZCash uncompressed encoding (192 bytes) of a signature this process has already decoded,
    or None: a peer reads it with no square root (~1 us against ~60 us), which is most of what
    decoding a peer's partial costs. None when not decoded here (or the backend has no cheap encoder):
    send the compressed one then."""
    return backend().signature_uncompressed(signature)


def signature_from_uncompressed(data: bytes) -> bytes:
    """The compressed encoding of an uncompressed signature, checked to be on the curve, not in G2
    (a peer's partial: its combination is checked in full); BlsError otherwise."""
    return backend().signature_from_uncompressed(data)


# ---- threshold: split, share pubkeys, combine ---------------------------------------------------------


def split(secret: int, threshold: int, shares: int, coefficients: Sequence[int]) -> dict[int, int]:
    """Share a secret key M-of-N: {share index i (1..N): share secret}; see `shamir.split`."""
    return shamir.split(secret, threshold, shares, coefficients)


def share_pubkey(share_secret: int) -> bytes:
    return sk_to_pk(share_secret)


def share_pubkeys(shares: Mapping[int, int]) -> dict[int, bytes]:
    return {i: sk_to_pk(s) for i, s in shares.items()}


def _first(items: Mapping[int, bytes], threshold: int) -> dict[int, bytes]:
    if threshold < 1 or len(items) < threshold:
        raise BlsError(f"need {threshold} shares, got {len(items)}")
    chosen = sorted(items)[:threshold]
    return {i: items[i] for i in chosen}


def combine(partials: Mapping[int, bytes], threshold: int) -> bytes:
    """The group signature from >= M partial signatures {share index: signature}.

    Uses the M lowest indices (so the result, and the cached coefficients, do not depend on arrival
    order); the caller passes only partials it has verified.
    """
    return _interpolate(_first(partials, threshold), checked=True)


def _interpolate(chosen: Mapping[int, bytes], *, checked: bool) -> bytes:
    indices, numerators, denominator = shamir.integer_lagrange_coefficients(chosen)
    return backend().g2_interpolate([chosen[i] for i in indices], numerators, denominator, checked=checked)


def combine_pubkeys(public_shares: Mapping[int, bytes], threshold: int, at: int = 0) -> bytes:
    """Interpolate share pubkeys in G1: the group pubkey (at 0) or the share pubkey of index `at`."""
    chosen = _first(public_shares, threshold)
    indices, coefficients = shamir.lagrange_coefficients(chosen, at)
    return backend().g1_linear_combination([chosen[i] for i in indices], list(coefficients))


def public_shares_consistent(group_pubkey: bytes, public_shares: Sequence[bytes], threshold: int) -> bool:
    """Whether ALL share pubkeys (list position k holds index k+1) lie on one polynomial of degree
    M-1 whose value at 0 is the group pubkey: any M of them then combine to the group key."""
    if not 1 <= threshold <= len(public_shares):
        return False
    if not all(key_validate(p) for p in [group_pubkey, *public_shares]):
        return False
    shares = {i + 1: p for i, p in enumerate(public_shares)}
    if combine_pubkeys(shares, threshold) != bytes(group_pubkey):
        return False
    return all(
        combine_pubkeys(shares, threshold, at=k) == shares[k] for k in range(threshold + 1, len(shares) + 1)
    )


def verify_partial(share_pubkey: bytes, message: bytes, partial: bytes) -> bool:
    """A partial signature is an ordinary signature under the share pubkey."""
    return verify(share_pubkey, message, partial)


# ---- batch verification --------------------------------------------------------------------------------


class SignedItem(NamedTuple):
    pubkey: bytes
    message: bytes
    signature: bytes


def use_batch_secret(secret: bytes | None) -> None:
    """Mix a process-wide secret into batch weights (the runtime passes >= 16 fresh random bytes once,
    at start-up, as it chooses the backend); None returns to weights derived from the inputs alone.

    Which partials are valid and the combined signature do not depend on it (except with negligible
    probability), so the model's outcomes stay deterministic; it only makes the weights unknowable
    to the peers who chose the signatures, which lets them be 64-bit (as blst-based clients use).
    """
    global _batch_secret
    if secret is not None and len(secret) < 16:
        raise ValueError("a batch secret needs at least 16 bytes")
    _batch_secret = secret


def batch_weights(items: Sequence[SignedItem], seed: bytes = b"") -> list[int]:
    """Nonzero weights for a random linear combination, derived by hashing every item (Fiat-Shamir),
    `seed` and the process's batch secret if one is set (`use_batch_secret`).

    One invalid signature never passes (its weight is nonzero mod r). Slipping k >= 2 coordinated
    invalid signatures through needs the weights to satisfy one linear relation: with a secret the
    attacker cannot test candidates offline and each try succeeds with probability 2^-64 (64-bit
    weights, ~2x cheaper in G2); without one the weights are public functions of the signatures, so
    they are 128 bits to put offline grinding at ~2^128 hashes.
    """
    secret = _batch_secret
    h = hashlib.sha256(b"covalidator/batch-verify")
    for part in (secret or b"", seed):
        h.update(len(part).to_bytes(4, "big") + part)
    for item in items:
        for part in item:
            h.update(len(part).to_bytes(4, "big") + bytes(part))
    digest = h.digest()
    width = 8 if secret else 16
    return [
        int.from_bytes(hashlib.sha256(digest + i.to_bytes(4, "big")).digest()[:width], "big") | 1
        for i in range(len(items))
    ]


def batch_verify(items: Sequence[SignedItem], seed: bytes = b"") -> bool:
    """All items verify (with overwhelming probability), checked with one multi-pairing."""
    if not items:
        raise BlsError("a batch needs at least one item")
    items = [SignedItem(*item) for item in items]
    return backend().batch_verify(items, batch_weights(items, seed))


def find_invalid(items: Sequence[SignedItem], seed: bytes = b"") -> list[int]:
    """Positions of the items that do not verify: one batch check, then bisection on failure."""
    items = [SignedItem(*item) for item in items]

    def search(positions: list[int]) -> list[int]:
        if len(positions) <= 2:  # two single checks cost about what a batch and its fallback would
            return [p for p in positions if not verify(*items[p])]
        if batch_verify([items[p] for p in positions], seed):
            return []
        half = len(positions) // 2
        return search(positions[:half]) + search(positions[half:])

    return search(list(range(len(items))))


# ---- one duty: verify the partials, combine, verify the result ----------------------------------------


@dataclass(frozen=True)
class Combination:
    """The outcome of `verify_and_combine`: the group signature if >= M partials were valid."""

    signature: bytes | None
    signers: tuple[int, ...]  # the share indices whose partials were combined
    invalid: frozenset[int]  # share indices whose partial did not verify (or is not a known share)


class CombineJob(NamedTuple):
    """One validator's partials over one message, to verify and combine (see `verify_and_combine`)."""

    group_pubkey: bytes
    share_pubkeys: Mapping[int, bytes]
    message: bytes
    partials: Mapping[int, bytes]
    threshold: int
    verified: Collection[int] = ()


def verify_and_combine(
    group_pubkey: bytes,
    share_pubkeys: Mapping[int, bytes],
    message: bytes,
    partials: Mapping[int, bytes],
    threshold: int,
    seed: bytes = b"",
    verified: Collection[int] = (),
) -> Combination:
    """Combine M partials of one message into a group signature that is VERIFIED before it is returned.

    Fast path: the M lowest-indexed partials are decoded onto the curve (no subgroup check: nothing
    else uses them), combined, and only the combination is checked, in full (subgroup, then pairing)
    under the group pubkey: a valid group signature is all a duty needs, however it was made. Only if
    that check fails is each partial verified alone (`verified` names share indices the caller already
    checked, such as this node's own: they are not checked again), the invalid ones named and
    excluded, and the rest recombined. So `invalid` names the bad partials of a failed combination;
    partials a successful one did not need are not examined.
    """
    job = CombineJob(group_pubkey, share_pubkeys, message, partials, threshold, verified)
    return verify_and_combine_many([job], seed)[0]


def verify_and_combine_many(jobs: Sequence[CombineJob], seed: bytes = b"") -> list[Combination]:
    """`verify_and_combine` for many validators at once: every job's combined signature goes into ONE
    random linear combination. `batch_verify` shares a pairing among items of one message, so
    validators signing the same root (a committee's attestation data, a slot's selection proofs or
    sync committee messages) cost one pairing together. Only if the whole batch fails is each job
    checked on its own (and a failing job repaired partial by partial), so one invalid partial costs
    its own validator's duty nothing and the others' nothing either."""
    prepared = [_prepare(job) for job in jobs]
    items = [item for _, item in prepared if item is not None]
    if all(c is not None for c, _ in prepared) and (not items or batch_verify(items, seed)):
        return [c for c, _ in prepared if c is not None]
    results = []
    for job, (combination, item) in zip(jobs, prepared, strict=True):
        if combination is not None and (item is None or (len(jobs) > 1 and batch_verify([item], seed))):
            results.append(combination)
        else:
            results.append(_repair(job, _unknown(job), seed))
    return results


def _unknown(job: CombineJob) -> frozenset[int]:
    return frozenset(i for i in job.partials if i not in job.share_pubkeys)


def _prepare(job: CombineJob) -> tuple[Combination | None, SignedItem | None]:
    """The combination of the M lowest-indexed partials of known shares and the item that proves it
    (the combined signature under the group pubkey); no item when fewer than M partials are there;
    (None, None) when a chosen partial is not even a curve point (the repair names it)."""
    unknown = _unknown(job)
    candidates = sorted(i for i in job.partials if i not in unknown)
    if len(candidates) < job.threshold:
        return Combination(None, (), unknown), None
    chosen = candidates[: job.threshold]
    try:
        combined = _interpolate({i: job.partials[i] for i in chosen}, checked=False)
    except BlsError:
        return None, None
    item = SignedItem(job.group_pubkey, job.message, combined)
    return Combination(combined, tuple(chosen), unknown), item


def _repair(job: CombineJob, malformed: frozenset[int], seed: bytes) -> Combination:
    """After a failed batch: name the invalid partials (bisection), recombine from the valid ones."""
    invalid = set(malformed)
    candidates = sorted(i for i in job.partials if i not in invalid)
    unchecked = [i for i in candidates if i not in job.verified]
    items = [SignedItem(job.share_pubkeys[i], job.message, job.partials[i]) for i in unchecked]
    invalid |= {unchecked[p] for p in find_invalid(items, seed)}
    good = [i for i in candidates if i not in invalid]
    if len(good) < job.threshold:
        return Combination(None, (), frozenset(invalid))
    chosen = good[: job.threshold]
    combined = combine({i: job.partials[i] for i in chosen}, job.threshold)
    if not verify(job.group_pubkey, job.message, combined):
        # Valid partials that do not combine to a valid signature: the share pubkeys do not belong to
        # this group key (a lock that was not verified). Nothing honest can be produced.
        return Combination(None, (), frozenset(invalid))
    return Combination(combined, tuple(chosen), frozenset(invalid))
