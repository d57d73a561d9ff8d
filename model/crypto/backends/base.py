"""The contract every BLS12-381 backend fulfils, and the algorithms they share.

Decides: what a strict decoding is (the byte-level rules of the ZCash compressed format, checked here
once for every backend, before the library sees the bytes), and how sign, verify, aggregate,
fast-aggregate-verify, linear combinations and random-linear-combination batch verification are built
from a handful of group operations. A backend module (`bls_arkworks`, `bls_pyecc`, `bls_blst`) only
supplies those group operations for its library; everything observable is decided here, which is why
the backends agree byte for byte.

Must not: choose a backend (that is `bls.py`), hold secrets beyond a call, or touch I/O. The only state
is memoisation (decoded points, hashed messages): a pure function of its key, bounded in size.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Final

from covalidator.model.memo import Memo

# The Ethereum ciphersuite: minimal-pubkey-size, proof-of-possession scheme (consensus specs, BLS).
DST: Final = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_"
# Order r of G1, G2 and of the scalar field.
CURVE_ORDER: Final = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001
# The base field modulus p.
FIELD_MODULUS: Final = int(
    "1a0111ea397fe69a4b1ba7b6434bacd764774b84f38512bf6730d2a0f6b0f6241eabfffeb153ffffb9feffffffffaaab", 16
)
PUBKEY_LENGTH: Final = 48
SIGNATURE_LENGTH: Final = 96
SIGNATURE_UNCOMPRESSED_LENGTH: Final = 192
G1_INFINITY: Final = bytes([0xC0]) + bytes(47)
G2_INFINITY: Final = bytes([0xC0]) + bytes(95)

# Memo sizes: a node holds every group pubkey and share pubkey of its cluster (5,000 validators x a few
# shares fit); signatures and message hashes are per duty and short-lived.
PUBKEY_CACHE: Final = 65536
SIGNATURE_CACHE: Final = 8192
HASH_CACHE: Final = 4096


class BlsError(ValueError):
    """A byte string that is not what it claims to be (bad encoding, not on the curve, not in G1/G2)."""


def check_encoding(data: bytes, length: int) -> bool:
    """Validate the flag bits and field elements of a compressed point; return whether it is infinity.

    Rules (ZCash serialisation, as the consensus specs use it): exact length; the compression flag set;
    an infinity encoding is exactly 0xc0 followed by zeros (no sign bit, no stray bits); otherwise every
    coordinate word is a canonical field element (< p). Libraries differ on these (arkworks accepts
    0xff..ff as infinity), so every backend runs this first.
    """
    if not isinstance(data, (bytes, bytearray)) or len(data) != length:
        raise BlsError(
            f"expected {length} bytes, got {len(data) if isinstance(data, (bytes, bytearray)) else data!r}"
        )
    flags = data[0] & 0xE0
    if not flags & 0x80:
        raise BlsError("not a compressed point (compression flag unset)")
    if flags & 0x40:
        if bytes(data) != (G1_INFINITY if length == PUBKEY_LENGTH else G2_INFINITY):
            raise BlsError("non-canonical encoding of the point at infinity")
        return True
    words = [int.from_bytes(data[i : i + 48], "big") for i in range(0, length, 48)]
    words[0] &= (1 << 381) - 1
    if any(word >= FIELD_MODULUS for word in words):
        raise BlsError("coordinate is not a canonical field element (>= p)")
    return False


def fp2_mul(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    """(a0 + a1 i)(b0 + b1 i) in Fp2 = Fp[i] / (i^2 + 1)."""
    p = FIELD_MODULUS
    return (a[0] * b[0] - a[1] * b[1]) % p, (a[0] * b[1] + a[1] * b[0]) % p


def compress_uncompressed_g2(data: bytes, *, curve_checked: bool = False) -> bytes:
    """The compressed encoding of a point of the curve E'(Fp2) given in the ZCash uncompressed
    encoding (192 bytes: x.c1, x.c0, y.c1, y.c0, big-endian; flag bits: compression unset, infinity,
    no sign); BlsError unless the bytes are canonical and the point is on the curve. No subgroup
    check: this is the on-curve decoding, pure Python (the backends' fast path must agree with it).
    curve_checked: the caller checks the curve equation (a backend's reader does): only the encoding
    is checked here.
    """
    if not isinstance(data, (bytes, bytearray)) or len(data) != SIGNATURE_UNCOMPRESSED_LENGTH:
        raise BlsError(f"expected {SIGNATURE_UNCOMPRESSED_LENGTH} bytes of an uncompressed point")
    flags = data[0] & 0xE0
    if flags & 0x80 or flags & 0x20:
        raise BlsError("not an uncompressed point (compression or sign flag set)")
    if flags & 0x40:
        if bytes(data) != bytes([0x40]) + bytes(SIGNATURE_UNCOMPRESSED_LENGTH - 1):
            raise BlsError("non-canonical encoding of the point at infinity")
        return G2_INFINITY
    x1, x0, y1, y0 = (int.from_bytes(data[i : i + 48], "big") for i in range(0, 192, 48))
    if any(word >= FIELD_MODULUS for word in (x1, x0, y1, y0)):
        raise BlsError("coordinate is not a canonical field element (>= p)")
    if not curve_checked:
        x, y = (x0, x1), (y0, y1)
        x3 = fp2_mul(fp2_mul(x, x), x)
        curve = ((x3[0] + 4) % FIELD_MODULUS, (x3[1] + 4) % FIELD_MODULUS)  # x^3 + 4(1 + i)
        if fp2_mul(y, y) != curve:
            raise BlsError("point is not on the curve")
    half = (FIELD_MODULUS - 1) // 2
    larger = y1 > half if y1 else y0 > half  # the ZCash sign: y is the lexicographically larger root
    return bytes([data[0] | 0x80 | (0x20 if larger else 0)]) + bytes(data[1:96])


def reduce_scalar(value: int) -> int:
    return value % CURVE_ORDER


class Backend[P1, P2](ABC):
    """A BLS12-381 library seen through the group operations the shared algorithms need.

    Subclasses implement the abstract group operations (points are the library's own objects); the
    concrete methods below are the observable interface and are identical for every backend.
    """

    name: str = ""

    def __init__(self) -> None:
        self._pubkey = Memo[bytes, P1](self._decode_pubkey, PUBKEY_CACHE)
        self._signature = Memo[bytes, P2](self._decode_signature, SIGNATURE_CACHE)
        # compressed bytes -> a point known to be on the curve only (from an uncompressed encoding)
        # (looked up at each miss, not bound here: `bench/step.py --bls` counts the backend's calls)
        self._on_curve = Memo[bytes, P2](lambda data: self.g2_decode_unchecked(data), SIGNATURE_CACHE)
        self._message = Memo[bytes, P2](lambda message: self.hash_to_g2(message), HASH_CACHE)
        self.generator = self.g1_generator()

    # ---- group operations a backend supplies ------------------------------------------------------

    @abstractmethod
    def library(self) -> str:
        """Library name and version, for `covalidator version`."""

    @abstractmethod
    def g1_generator(self) -> P1: ...

    @abstractmethod
    def g1_decode(self, data: bytes) -> P1:
        """Decode checked bytes (flags already validated): on-curve and subgroup checks; raise BlsError."""

    @abstractmethod
    def g2_decode(self, data: bytes) -> P2:
        """As g1_decode, in G2."""

    def g2_decode_unchecked(self, data: bytes) -> P2:
        """Decompress checked bytes onto the curve WITHOUT the subgroup check; raise BlsError. Only for a
        point whose every use is checked afterwards (`g2_interpolate`). Default: the checked decoder."""
        return self.g2_decode(data)

    def g2_neg(self, point: P2) -> P2:
        return self.g2_mul(point, CURVE_ORDER - 1)

    def g2_in_subgroup(self, point: P2) -> bool:
        try:
            self.g2_decode(self.g2_encode(point))
        except BlsError:
            return False
        return True

    @abstractmethod
    def g1_encode(self, point: P1) -> bytes: ...

    @abstractmethod
    def g2_encode(self, point: P2) -> bytes: ...

    @abstractmethod
    def g1_is_identity(self, point: P1) -> bool: ...

    @abstractmethod
    def g2_is_identity(self, point: P2) -> bool: ...

    @abstractmethod
    def g1_mul(self, point: P1, scalar: int) -> P1: ...

    @abstractmethod
    def g2_mul(self, point: P2, scalar: int) -> P2: ...

    @abstractmethod
    def g1_add(self, a: P1, b: P1) -> P1: ...

    @abstractmethod
    def g2_add(self, a: P2, b: P2) -> P2: ...

    @abstractmethod
    def g1_msm(self, points: Sequence[P1], scalars: Sequence[int]) -> P1:
        """Sum of scalars[i] * points[i] (scalars already reduced mod r); non-empty input."""

    @abstractmethod
    def g2_msm(self, points: Sequence[P2], scalars: Sequence[int]) -> P2: ...

    @abstractmethod
    def hash_to_g2(self, message: bytes) -> P2:
        """hash_to_curve with the ciphersuite DST (RFC 9380, BLS12381G2_XMD:SHA-256_SSWU_RO_)."""

    @abstractmethod
    def pairings_equal(self, lhs: Sequence[tuple[P1, P2]], rhs: Sequence[tuple[P1, P2]]) -> bool:
        """Whether prod e(P, Q) over lhs equals prod e(P, Q) over rhs (pairs may contain identities)."""

    # ---- strict decoding (memoised) ---------------------------------------------------------------

    def _decode_pubkey(self, data: bytes) -> P1:
        if check_encoding(data, PUBKEY_LENGTH):
            raise BlsError("public key is the point at infinity")
        return self.g1_decode(bytes(data))

    def _decode_signature(self, data: bytes) -> P2:
        check_encoding(data, SIGNATURE_LENGTH)
        return self.g2_decode(bytes(data))

    def pubkey_point(self, data: bytes) -> P1:
        """KeyValidate: canonical encoding, on the curve, in G1, not infinity; raise BlsError."""
        return self._pubkey(bytes(data))

    def signature_point(self, data: bytes) -> P2:
        """Canonical encoding, on the curve, in G2 (infinity is a valid encoding); raise BlsError."""
        return self._signature(bytes(data))

    # ---- the observable interface -----------------------------------------------------------------

    def is_valid_pubkey(self, pubkey: bytes) -> bool:
        try:
            self.pubkey_point(pubkey)
        except BlsError:
            return False
        return True

    def is_valid_signature(self, signature: bytes) -> bool:
        try:
            self.signature_point(signature)
        except BlsError:
            return False
        return True

    def sk_to_pk(self, secret: int) -> bytes:
        secret = reduce_scalar(secret)
        if secret == 0:
            raise BlsError("secret key is zero")
        return self.g1_encode(self.g1_mul(self.generator, secret))

    def sign(self, secret: int, message: bytes) -> bytes:
        secret = reduce_scalar(secret)
        if secret == 0:
            raise BlsError("secret key is zero")
        point = self.g2_mul(self._message(bytes(message)), secret)
        encoded = self.g2_encode(point)
        self._signature.put(encoded, point)  # H(m) is in G2, so is the signature: known as decoded
        return encoded

    def verify(self, pubkey: bytes, message: bytes, signature: bytes) -> bool:
        try:
            pk = self.pubkey_point(pubkey)
            sig = self.signature_point(signature)
        except BlsError:
            return False
        if self.g2_is_identity(sig):
            return False
        return self.pairings_equal([(self.generator, sig)], [(pk, self._message(bytes(message)))])

    def aggregate(self, signatures: Sequence[bytes]) -> bytes:
        if not signatures:
            raise BlsError("cannot aggregate zero signatures")
        points = [self.signature_point(s) for s in signatures]
        total = points[0]
        for point in points[1:]:
            total = self.g2_add(total, point)
        return self.g2_encode(total)

    def aggregate_pubkeys(self, pubkeys: Sequence[bytes]) -> bytes:
        if not pubkeys:
            raise BlsError("cannot aggregate zero public keys")
        points = [self.pubkey_point(p) for p in pubkeys]
        total = points[0]
        for point in points[1:]:
            total = self.g1_add(total, point)
        return self.g1_encode(total)

    def fast_aggregate_verify(self, pubkeys: Sequence[bytes], message: bytes, signature: bytes) -> bool:
        if not pubkeys:
            return False
        try:
            points = [self.pubkey_point(p) for p in pubkeys]
            sig = self.signature_point(signature)
        except BlsError:
            return False
        total = points[0]
        for point in points[1:]:
            total = self.g1_add(total, point)
        if self.g1_is_identity(total) or self.g2_is_identity(sig):
            return False
        return self.pairings_equal([(self.generator, sig)], [(total, self._message(bytes(message)))])

    def g1_linear_combination(self, points: Sequence[bytes], scalars: Sequence[int]) -> bytes:
        """sum scalars[i] * points[i] over validated G1 points (the result may be any point)."""
        if not points or len(points) != len(scalars):
            raise BlsError("need as many scalars as points, at least one")
        decoded = [self.pubkey_point(p) for p in points]
        return self.g1_encode(self.g1_msm(decoded, [reduce_scalar(s) for s in scalars]))

    def g2_linear_combination(self, points: Sequence[bytes], scalars: Sequence[int]) -> bytes:
        """sum scalars[i] * points[i] over validated G2 points; the result is memoised as decoded."""
        if not points or len(points) != len(scalars):
            raise BlsError("need as many scalars as points, at least one")
        decoded = [self.signature_point(p) for p in points]
        point = self.g2_msm(decoded, [reduce_scalar(s) for s in scalars])
        encoded = self.g2_encode(point)
        # A combination of subgroup points is a subgroup point: verifying it next costs no decode.
        self._signature.put(encoded, point)
        return encoded

    def g2_mul_in_g2(self, point: P2, scalar: int) -> P2:
        """scalar * point for a point of G2 (elsewhere on the curve a backend may return another
        point: check the result before it counts). A backend may use the GLS endomorphism here
        (backends/endomorphism.py); by default it is `g2_mul`. Never with a secret scalar."""
        return self.g2_mul(point, scalar)

    def g2_interpolate(
        self, signatures: Sequence[bytes], numerators: Sequence[int], denominator: int, *, checked: bool
    ) -> bytes:
        """sum (numerators[i] / denominator) * signatures[i] (a Lagrange combination in integer form,
        `shamir.integer_lagrange_coefficients`): small signed numerators cost a few additions, the
        denominator one multiplication unless it is 1. Raise BlsError if a signature does not decode.

        checked: the inputs are decoded with the subgroup check (the result is then known to be in G2
        and memoised as decoded). Unchecked: the inputs only need to be on the curve (half the decoding
        cost); the result is memoised as decoded only if it passes the subgroup check, so whatever uses
        it next (`verify`, `batch_verify`) still checks it in full.
        """
        if not signatures or len(signatures) != len(numerators) or denominator < 1:
            raise BlsError("need one numerator per signature, at least one, and a positive denominator")
        total: P2 | None = None
        for signature, numerator in zip(signatures, numerators, strict=True):
            if numerator == 0:
                continue
            point = self.signature_point(signature) if checked else self._signature_on_curve(signature)
            if abs(numerator) != 1:
                point = self.g2_mul(point, reduce_scalar(abs(numerator)))
            if numerator < 0:
                point = self.g2_neg(point)
            total = point if total is None else self.g2_add(total, point)
        if total is None:
            return G2_INFINITY
        if denominator != 1:
            # inputs in G2 (checked) give a sum in G2; unchecked ones give a result checked below
            total = self.g2_mul_in_g2(total, pow(denominator, -1, CURVE_ORDER))
        encoded = self.g2_encode(total)
        if checked or self.g2_in_subgroup(total):
            self._signature.put(encoded, total)
        return encoded

    def _known_point(self, data: bytes) -> P2 | None:
        """The point of a signature this process decoded (checked) or read on the curve, if memoised."""
        known = self._signature.peek(bytes(data))
        return known if known is not None else self._on_curve.peek(bytes(data))

    def _signature_on_curve(self, data: bytes) -> P2:
        known = self._known_point(data)
        if known is not None:
            return known
        check_encoding(data, SIGNATURE_LENGTH)
        return self.g2_decode_unchecked(bytes(data))

    # ---- the uncompressed encoding (peer frames: no square root to decode) --------------------------

    def g2_xy(self, point: P2) -> bytes | None:
        """The uncompressed encoding of a point, if this backend gives it cheaply (else None)."""
        return None

    def g2_from_xy(self, data: bytes) -> P2 | None:
        """The point of a canonical uncompressed encoding (not the point at infinity), if this backend
        reads it cheaply (else None), with the curve equation checked: BlsError if it does not hold."""
        return None

    def signature_uncompressed(self, signature: bytes) -> bytes | None:
        """The uncompressed encoding of a signature this process has decoded already (None if it has
        not, or the backend has no cheap encoder): what a peer can read without a square root."""
        point = self._known_point(signature)
        return None if point is None else self.g2_xy(point)

    def signature_from_uncompressed(self, data: bytes) -> bytes:
        """The compressed signature of an uncompressed encoding, checked to be on the curve (not in
        G2: combining it is `g2_interpolate(checked=False)`, whose result is checked in full). The
        point is remembered as on the curve only, so combining it costs no square root. BlsError if
        the encoding is not canonical or not on the curve. The curve equation is the backend's
        reader's check where it has one (~1 us), else `compress_uncompressed_g2`'s (~8 us)."""
        data = bytes(data)
        compressed = compress_uncompressed_g2(data, curve_checked=True)  # the encoding only, so far
        if compressed == G2_INFINITY:
            return compressed
        point = self.g2_from_xy(data)
        if point is None:
            return compress_uncompressed_g2(data)
        self._on_curve.put(compressed, point)
        return compressed

    def batch_verify(self, items: Sequence[tuple[bytes, bytes, bytes]], weights: Sequence[int]) -> bool:
        """Random linear combination check of (pubkey, message, signature) items, in one multi-pairing.

        e(G1, sum w_i sig_i) == prod over distinct messages m of e(sum_{i: m_i = m} w_i pk_i, H(m)).
        Weights must be nonzero, below r, and unpredictable to whoever chose the signatures (see
        `bls.batch_weights`). A single invalid item makes the check fail with certainty (w_i != 0 mod r).
        """
        if not items or len(items) != len(weights):
            raise BlsError("need one weight per item, at least one item")
        if any(not 0 < w < CURVE_ORDER for w in weights):
            raise BlsError("batch weights must be in [1, r)")
        try:
            sigs = [self.signature_point(sig) for _, _, sig in items]
            pks = [self.pubkey_point(pk) for pk, _, _ in items]
        except BlsError:
            return False
        if any(self.g2_is_identity(s) for s in sigs):
            return False
        by_message: dict[bytes, tuple[list[P1], list[int]]] = {}
        for (_, message, _), pk, weight in zip(items, pks, weights, strict=True):
            group = by_message.setdefault(bytes(message), ([], []))
            group[0].append(pk)
            group[1].append(weight)
        rhs = [(self.g1_msm(p, w), self._message(m)) for m, (p, w) in by_message.items()]
        return self.pairings_equal([(self.generator, self.g2_msm(sigs, list(weights)))], rhs)
