"""The messages of a DKG ceremony (`covalidator dkg`), their JSON, and what a well-formed one is.

Each message is the `data` of one peer-transport frame (runtime/peers.py: signed by its sender's
identity key, over TLS pinned to the definition's keys), one per sender and round:

    hello     {"round": "hello", "definition_hash": "0x<32>", "session": "0x<32: fresh random>"}  broadcast
    commit    {"round": "commit", "commitments": [{"coefficients": ["0x<48>", ... M],
               "r": "0x<48>", "mu": "0x<32>"}, ... V], "signature": "0x<64>"}  broadcast
    echo      {"round": "echo", "seen": [{"digest": "0x<32>", "signature": "0x<64>"}, ... N]}   broadcast
    shares    {"round": "shares", "shares": ["0x<32>", ... V]}                  to one operator
    partials  {"round": "partials", "deposit": ["0x<96>", ... V], "registration": ["0x<96>", ... V]}
    lock      {"round": "lock", "signature": "0x<64>"}                          broadcast
    done      {"round": "done"}                                                 broadcast
    abort     {"round": "abort", "reason": str (<= 500 characters)}             broadcast, any time

Decides: these shapes and their sizes (V and N from the definition, M its threshold), so nothing
larger or of another shape reaches the ceremony. What a message MEANS is checked in `ceremony.py`.

Must not: check signatures or group elements (ceremony.py and frost.py do), or do I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from covalidator.model.crypto.frost import Commitment

ROUNDS: Final = ("hello", "commit", "echo", "shares", "partials", "lock", "done")
MAX_REASON: Final = 500


@dataclass(frozen=True)
class Hello:
    definition_hash: bytes
    session: bytes  # this run's random nonce (ceremony.session_id hashes every operator's)


@dataclass(frozen=True)
class Commit:
    commitments: tuple[Commitment, ...]  # one per validator
    signature: bytes  # the sender's Ed25519 signature over `ceremony.commit_digest`


@dataclass(frozen=True)
class Echo:
    seen: tuple[tuple[bytes, bytes], ...]  # position l-1: (digest, signature) of operator l's Commit


@dataclass(frozen=True)
class Shares:
    shares: tuple[int, ...]  # f_sender(recipient) for each validator


@dataclass(frozen=True)
class Partials:
    deposit: tuple[bytes, ...]  # the sender's partial signature of each validator's deposit message
    registration: tuple[bytes, ...]  # ... and of each validator's builder registration


@dataclass(frozen=True)
class LockSignature:
    signature: bytes


@dataclass(frozen=True)
class Done:
    pass


@dataclass(frozen=True)
class Abort:
    reason: str


DkgMessage = Hello | Commit | Echo | Shares | Partials | LockSignature | Done | Abort

ROUND_OF: Final[dict[type, str]] = {
    Hello: "hello",
    Commit: "commit",
    Echo: "echo",
    Shares: "shares",
    Partials: "partials",
    LockSignature: "lock",
    Done: "done",
    Abort: "abort",
}


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


def to_json(message: DkgMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"round": ROUND_OF[type(message)]}
    match message:
        case Hello(definition_hash, session):
            out["definition_hash"] = _hex(definition_hash)
            out["session"] = _hex(session)
        case Commit(commitments, signature):
            out["commitments"] = [
                {
                    "coefficients": [_hex(p) for p in c.coefficients],
                    "r": _hex(c.proof_r),
                    "mu": _hex(c.proof_mu.to_bytes(32, "big")),
                }
                for c in commitments
            ]
            out["signature"] = _hex(signature)
        case Echo(seen):
            out["seen"] = [{"digest": _hex(d), "signature": _hex(s)} for d, s in seen]
        case Shares(shares):
            out["shares"] = [_hex(s.to_bytes(32, "big")) for s in shares]
        case Partials(deposit, registration):
            out["deposit"] = [_hex(s) for s in deposit]
            out["registration"] = [_hex(s) for s in registration]
        case LockSignature(signature):
            out["signature"] = _hex(signature)
        case Abort(reason):
            out["reason"] = reason
    return out


def _bytes(value: Any, length: int, what: str) -> bytes:
    if not isinstance(value, str) or len(value) != 2 + 2 * length or not re.fullmatch(r"0x[0-9a-f]*", value):
        raise ValueError(f"{what} must be 0x-hex of {length} bytes")
    return bytes.fromhex(value[2:])


def _list(value: Any, length: int, what: str) -> list[Any]:
    if not isinstance(value, list) or len(value) != length:
        raise ValueError(f"{what} must be a list of {length}")
    return value


def _fields(data: dict[str, Any], *names: str) -> None:
    if set(data) != {"round", *names}:
        raise ValueError(f"a {data['round']} message has exactly the fields round, {', '.join(names)}")


def decoder(nodes: int, validators: int, threshold: int) -> Callable[[Any, int], DkgMessage]:
    """The transport's `decode` for a ceremony of N nodes, V validators, threshold M: the message a
    frame's data holds, or ValueError naming what is wrong."""

    def decode(data: Any, _nodes: int) -> DkgMessage:
        if not isinstance(data, dict) or data.get("round") not in (*ROUNDS, "abort"):
            raise ValueError("not a DKG message")
        match data["round"]:
            case "hello":
                _fields(data, "definition_hash", "session")
                return Hello(
                    _bytes(data["definition_hash"], 32, "definition_hash"),
                    _bytes(data["session"], 32, "session"),
                )
            case "commit":
                _fields(data, "commitments", "signature")
                commitments = []
                for c in _list(data["commitments"], validators, "commitments"):
                    if not isinstance(c, dict) or set(c) != {"coefficients", "r", "mu"}:
                        raise ValueError("a commitment has exactly coefficients, r, mu")
                    coefficients = tuple(
                        _bytes(p, 48, "a coefficient commitment")
                        for p in _list(c["coefficients"], threshold, "coefficients")
                    )
                    mu = int.from_bytes(_bytes(c["mu"], 32, "mu"), "big")
                    commitments.append(Commitment(coefficients, _bytes(c["r"], 48, "r"), mu))
                return Commit(tuple(commitments), _bytes(data["signature"], 64, "signature"))
            case "echo":
                _fields(data, "seen")
                seen = []
                for entry in _list(data["seen"], nodes, "seen"):
                    if not isinstance(entry, dict) or set(entry) != {"digest", "signature"}:
                        raise ValueError("an echo entry has exactly digest, signature")
                    seen.append(
                        (_bytes(entry["digest"], 32, "digest"), _bytes(entry["signature"], 64, "signature"))
                    )
                return Echo(tuple(seen))
            case "shares":
                _fields(data, "shares")
                return Shares(
                    tuple(
                        int.from_bytes(_bytes(s, 32, "a share"), "big")
                        for s in _list(data["shares"], validators, "shares")
                    )
                )
            case "partials":
                _fields(data, "deposit", "registration")
                return Partials(
                    tuple(_bytes(s, 96, "a partial") for s in _list(data["deposit"], validators, "deposit")),
                    tuple(
                        _bytes(s, 96, "a partial")
                        for s in _list(data["registration"], validators, "registration")
                    ),
                )
            case "lock":
                _fields(data, "signature")
                return LockSignature(_bytes(data["signature"], 64, "signature"))
            case "done":
                _fields(data)
                return Done()
            case _:
                _fields(data, "reason")
                reason = data["reason"]
                if not isinstance(reason, str):
                    raise ValueError("an abort's reason must be a string")
                return Abort("".join(c for c in reason[:MAX_REASON] if c.isprintable()))

    return decode
