"""TLS for the peer mesh, pinned to the identity keys in the cluster lock (no CA, no names).

Each node presents a self-signed X.509 certificate over its Ed25519 identity key (the key the lock
lists for it); TLS 1.3 only. The dialling side accepts the server's certificate only when its public
key is the identity key the lock lists for the operator it dialled (`pinned_key_matches`, checked
right after the TLS handshake, before any frame is sent): an on-path attacker can neither read the
traffic nor stand in for a peer. The listening side authenticates the dialler by its signed
handshake header (runtime/peers.py), sent only inside that verified channel.

The certificate is deterministic (fixed validity, serial from the key; Ed25519 signs
deterministically), so it holds no secret beyond the key and needs no renewal.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import ssl
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.x509.oid import NameOID

NOT_BEFORE = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
NOT_AFTER = datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.UTC)


def certificate(identity_key: Ed25519PrivateKey) -> bytes:
    """The node's self-signed certificate (PEM) over its identity key."""
    public = identity_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "covalidator " + public.hex()[:16])])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(identity_key.public_key())
        .serial_number(int.from_bytes(hashlib.sha256(public).digest()[:16], "big") >> 1)
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .sign(identity_key, None)
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def server_context(identity_key: Ed25519PrivateKey) -> ssl.SSLContext:
    """The listening side: presents the node's certificate; TLS 1.3 only."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    key_pem = identity_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # the ssl module loads a chain only from files: a private folder, removed at once
    with tempfile.TemporaryDirectory(prefix="covalidator-tls-") as folder:
        os.chmod(folder, 0o700)
        cert_path, key_path = Path(folder) / "cert.pem", Path(folder) / "key.pem"
        cert_path.write_bytes(certificate(identity_key))
        key_path.touch(mode=0o600)
        key_path.write_bytes(key_pem)
        context.load_cert_chain(cert_path, key_path)
    return context


def client_context() -> ssl.SSLContext:
    """The dialling side: TLS 1.3; no CA or host name check (there is none to check): the server's key
    is pinned after the handshake instead (`pinned_key_matches`)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def pinned_key_matches(ssl_object: object, expected: Ed25519PublicKey) -> bool:
    """Whether the TLS peer's certificate is over exactly `expected` (the lock's identity key)."""
    getpeercert = getattr(ssl_object, "getpeercert", None)
    if getpeercert is None:
        return False
    der = getpeercert(binary_form=True)
    if not der:
        return False
    try:
        key = x509.load_der_x509_certificate(der).public_key()
    except ValueError:
        return False
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    return isinstance(key, Ed25519PublicKey) and key.public_bytes(*raw) == expected.public_bytes(*raw)
