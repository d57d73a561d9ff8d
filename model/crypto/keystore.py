"""EIP-2335 BLS keystores: decrypt and encrypt, over dicts and bytes (the runtime does the file I/O).

Decides: the password normalisation (NFKD, then the C0, C1 and DEL control codes stripped, then
UTF-8), the two KDFs (scrypt, pbkdf2 with hmac-sha256), AES-128-CTR, the sha256 checksum over
dk[16:32] + ciphertext, and how failures are told apart:
- `WrongPassword`: the checksum fails and the decrypted bytes are not the keystore's key;
- `CorruptChecksum`: the checksum fails but the decrypted secret IS the key of the keystore's
  `pubkey` (so the password was right and the checksum field was damaged);
- `UnsupportedKeystore`: unknown KDF, cipher, checksum function, PRF or version;
- `KeystoreError` (their base) for malformed fields and a pubkey that does not match the secret.

Work factors: `SCRYPT` is EIP-2335's default (n = 2^18, ~1 s per keystore here) and what real clusters
use. `pbkdf2(c)` with the EIP's c = 262144 is ~5x cheaper; tests and local demos that write dozens of
keystores may pass a smaller c (never for keys that hold value).

Must not: read files, draw randomness (salt, iv and uuid are passed in), or keep secrets around.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from Crypto.Cipher import AES
from Crypto.Protocol.KDF import scrypt

from covalidator.model.crypto import bls


class KeystoreError(ValueError):
    """A keystore that cannot be decrypted (the message says why)."""


class WrongPassword(KeystoreError):
    pass


class CorruptChecksum(KeystoreError):
    pass


class UnsupportedKeystore(KeystoreError):
    pass


@dataclass(frozen=True)
class Scrypt:
    n: int = 262144
    r: int = 8
    p: int = 1
    dklen: int = 32

    def params(self, salt: bytes) -> dict[str, Any]:
        return {"dklen": self.dklen, "n": self.n, "p": self.p, "r": self.r, "salt": salt.hex()}


@dataclass(frozen=True)
class Pbkdf2:
    c: int = 262144
    dklen: int = 32

    def params(self, salt: bytes) -> dict[str, Any]:
        return {"dklen": self.dklen, "c": self.c, "prf": "hmac-sha256", "salt": salt.hex()}


SCRYPT: Final = Scrypt()
PBKDF2: Final = Pbkdf2()


def normalise_password(password: str) -> bytes:
    """NFKD, control codes (C0, DEL, C1) removed, UTF-8: the bytes the KDF sees."""
    normalised = unicodedata.normalize("NFKD", password)
    kept = "".join(ch for ch in normalised if not (ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F))
    return kept.encode("utf-8")


def _field(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping) or key not in obj:
            raise KeystoreError(f"keystore lacks {'.'.join(path)}")
        obj = obj[key]
    return obj


def _hex(obj: Any, *path: str) -> bytes:
    value = _field(obj, *path)
    try:
        return bytes.fromhex(str(value).removeprefix("0x"))
    except ValueError:
        raise KeystoreError(f"{'.'.join(path)} is not hex: {value!r}") from None


def _int(obj: Any, *path: str) -> int:
    value = _field(obj, *path)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise KeystoreError(f"{'.'.join(path)} must be a positive integer, got {value!r}")
    return value


# Ceilings on the KDF parameters a keystore may ask for: a hostile or broken keystore cannot make the
# node allocate gigabytes or spin for minutes. Each is well above what EIP-2335 tools write.
MAX_DKLEN = 64
MAX_SCRYPT_MEMORY = 2**30  # bytes (128 * n * r); the EIP's default needs 256 MiB
MAX_SCRYPT_WORK = 2**24  # n * r * p; the EIP's default is 2^21
MAX_PBKDF2_ROUNDS = 2**22  # the EIP's default is 2^18


def scrypt_within_ceilings(n: int, r: int, p: int) -> bool:
    return 128 * n * r <= MAX_SCRYPT_MEMORY and n * r * p <= MAX_SCRYPT_WORK


def derive_key(kdf: Mapping[str, Any], password: str) -> bytes:
    """The decryption key material of a keystore's `crypto.kdf` section."""
    function = _field(kdf, "function")
    params = _field(kdf, "params")
    salt = _hex(params, "salt")
    dklen = _int(params, "dklen")
    if not 32 <= dklen <= MAX_DKLEN:
        raise KeystoreError(f"kdf dklen {dklen} is outside 32..{MAX_DKLEN} (the checksum needs dk[16:32])")
    secret = normalise_password(password)
    if function == "scrypt":
        n, r, p = _int(params, "n"), _int(params, "r"), _int(params, "p")
        if n < 2 or n & (n - 1):
            raise KeystoreError(f"scrypt n must be a power of two > 1, got {n}")
        if not scrypt_within_ceilings(n, r, p):
            raise KeystoreError(
                f"scrypt n={n} r={r} p={p} is beyond the ceiling (memory 128*n*r <= {MAX_SCRYPT_MEMORY >> 20} MiB, "
                f"work n*r*p <= 2^{MAX_SCRYPT_WORK.bit_length() - 1}; the EIP's default n=2^18 r=8 p=1 is within)"
            )
        key = scrypt(secret, salt, dklen, n, r, p)
        assert isinstance(key, bytes)
        return key
    if function == "pbkdf2":
        if _field(params, "prf") != "hmac-sha256":
            raise UnsupportedKeystore(f"unsupported pbkdf2 prf {params['prf']!r} (EIP-2335 uses hmac-sha256)")
        c = _int(params, "c")
        if c > MAX_PBKDF2_ROUNDS:
            raise KeystoreError(
                f"pbkdf2 c={c} is beyond the ceiling {MAX_PBKDF2_ROUNDS} (the EIP's is 262144)"
            )
        return hashlib.pbkdf2_hmac("sha256", secret, salt, c, dklen)
    raise UnsupportedKeystore(f"unknown KDF {function!r}; EIP-2335 keystores use scrypt or pbkdf2")


def _aes_128_ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    if len(iv) != 16:
        raise KeystoreError(f"cipher iv must be 16 bytes, got {len(iv)}")
    # EIP-2335's iv is the whole 128-bit initial counter block (big-endian), as in the vectors.
    return bytes(AES.new(key, AES.MODE_CTR, nonce=b"", initial_value=iv).encrypt(data))


def _checksum(dk: bytes, ciphertext: bytes) -> bytes:
    return hashlib.sha256(dk[16:32] + ciphertext).digest()


def _is_key_of(secret: bytes, pubkey: bytes) -> bool:
    try:
        return bls.sk_to_pk(bls.secret_from_bytes(secret)) == pubkey
    except bls.BlsError:
        return False


def decrypt(keystore: Mapping[str, Any], password: str) -> bytes:
    """The 32-byte secret key of an EIP-2335 keystore (checked against its `pubkey` when present)."""
    if _field(keystore, "version") != 4:
        raise UnsupportedKeystore(f"unsupported keystore version {keystore['version']!r} (EIP-2335 is 4)")
    crypto = _field(keystore, "crypto")
    if _field(keystore, "crypto", "cipher", "function") != "aes-128-ctr":
        raise UnsupportedKeystore(
            f"unsupported cipher {crypto['cipher']['function']!r} (EIP-2335 uses aes-128-ctr)"
        )
    if _field(keystore, "crypto", "checksum", "function") != "sha256":
        raise UnsupportedKeystore(
            f"unsupported checksum {crypto['checksum']['function']!r} (EIP-2335 uses sha256)"
        )
    ciphertext = _hex(keystore, "crypto", "cipher", "message")
    iv = _hex(keystore, "crypto", "cipher", "params", "iv")
    expected = _hex(keystore, "crypto", "checksum", "message")
    pubkey = _hex(keystore, "pubkey") if keystore.get("pubkey") else None
    dk = derive_key(_field(keystore, "crypto", "kdf"), password)
    secret = _aes_128_ctr(dk[:16], iv, ciphertext)
    if not hmac.compare_digest(_checksum(dk, ciphertext), expected):
        if pubkey is not None and _is_key_of(secret, pubkey):
            raise CorruptChecksum(
                "keystore checksum is corrupt (the password is right: the secret matches pubkey)"
            )
        raise WrongPassword("wrong password (or a corrupt ciphertext): the keystore checksum does not match")
    if pubkey is not None and not _is_key_of(secret, pubkey):
        raise KeystoreError("the decrypted secret is not the key of the keystore's pubkey")
    return secret


def encrypt(
    secret: bytes,
    password: str,
    *,
    salt: bytes,
    iv: bytes,
    uuid: str,
    kdf: Scrypt | Pbkdf2 = SCRYPT,
    path: str = "",
    description: str = "",
) -> dict[str, Any]:
    """An EIP-2335 keystore (version 4) holding `secret`; salt (32 bytes), iv (16) and uuid are the
    caller's fresh randomness."""
    pubkey = bls.sk_to_pk(bls.secret_from_bytes(secret))
    kdf_section = {
        "function": "scrypt" if isinstance(kdf, Scrypt) else "pbkdf2",
        "params": kdf.params(salt),
        "message": "",
    }
    dk = derive_key(kdf_section, password)
    ciphertext = _aes_128_ctr(dk[:16], iv, secret)
    return {
        "crypto": {
            "kdf": kdf_section,
            "checksum": {"function": "sha256", "params": {}, "message": _checksum(dk, ciphertext).hex()},
            "cipher": {"function": "aes-128-ctr", "params": {"iv": iv.hex()}, "message": ciphertext.hex()},
        },
        "description": description,
        "pubkey": pubkey.hex(),
        "path": path,
        "uuid": uuid,
        "version": 4,
    }
