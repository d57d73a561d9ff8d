"""QBFT wire types: values, the signed message, and the envelope that carries bodies and justifications.

Decides what a QBFT message *is*, what part of it is signed, and how a value is identified; it does not
decide whether a message is acceptable (that is `qbft_rules` and `qbft`).

- A `Value` is a body (any bytes with a canonical encoding; the node model passes canonical JSON of a
  map pubkey -> Beacon API data) plus its hash, `0x` + sha256(body). Votes carry only the hash.
- A `Message` is the unit a co-validator signs: type, instance, sender, round, value hash and, for
  ROUND-CHANGE, the prepared round and hash. `signing_bytes` is its canonical encoding without the
  signature; the runtime signs and verifies it (`signature` is opaque here and ignored by the model).
- An `Envelope` is what travels: one `Message`, optionally the body of the value it names, and its
  justification as a tuple of *signed messages of other senders* (never a bare count), so a receiver can
  check that the senders are distinct, in 1..N, and name the right instance, round and value:
    PRE-PREPARE (round > 1): a quorum of ROUND-CHANGEs for that round, plus the quorum of PREPAREs for
                             the highest prepared round among them (when any is prepared);
    ROUND-CHANGE (prepared): the quorum of PREPAREs for its prepared round and hash;
    DECIDED:                 the quorum of COMMITs for the decided round and hash (sent to laggards).
  Messages inside a justification carry no body and no nested justification.

Every type here round-trips through dataclasses-json (bytes as hex), because the runtime records traces.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from dataclasses_json import DataClassJsonMixin, config

from covalidator.model.duty import DutyId

NO_HASH = ""  # "no value" (an unprepared ROUND-CHANGE)
NOT_PREPARED = 0  # rounds start at 1; prepared_round 0 means "never prepared" (the paper's ⊥)


class MsgType(IntEnum):
    """Message types; numbering is part of the signed encoding and must never change."""

    PRE_PREPARE = 1
    PREPARE = 2
    COMMIT = 3
    ROUND_CHANGE = 4
    DECIDED = 5


def _hex_or_none(body: bytes | None) -> str | None:
    return None if body is None else body.hex()


def _bytes_or_none(text: str | None) -> bytes | None:
    return None if text is None else bytes.fromhex(text)


def _hex(body: bytes) -> str:
    return body.hex()


def _bytes(text: str) -> bytes:
    return bytes.fromhex(text)


def compute_value_hash(body: bytes) -> str:
    """`0x` + sha256(body): the identity of a value in every vote."""
    return "0x" + hashlib.sha256(body).hexdigest()


def canonical_json(obj: Any) -> bytes:
    """The canonical bytes of a JSON-compatible object (sorted keys, no whitespace, UTF-8)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Value(DataClassJsonMixin):
    """A proposable value: its hash and the body it is the hash of."""

    hash: str
    body: bytes = field(metadata=config(encoder=_hex, decoder=_bytes))

    def __repr__(self) -> str:  # bodies can be hundreds of kB
        return f"Value({self.hash[:12]}…, {len(self.body)} bytes)"


def make_value(body: bytes) -> Value:
    return Value(compute_value_hash(body), body)


def is_value_consistent(value_hash: str, body: bytes) -> bool:
    return compute_value_hash(body) == value_hash


@dataclass(frozen=True)
class Message(DataClassJsonMixin):
    """One signed QBFT vote or announcement. `sender` is a share index in 1..N."""

    type: MsgType
    instance: DutyId
    sender: int
    round: int
    value_hash: str = NO_HASH
    prepared_round: int = NOT_PREPARED
    prepared_hash: str = NO_HASH
    signature: str = ""  # set and checked by the runtime over signing_bytes(); opaque to the model

    def __repr__(self) -> str:
        extra = (
            f" pr={self.prepared_round} {self.prepared_hash[:10]}"
            if self.type == MsgType.ROUND_CHANGE
            else ""
        )
        return f"{self.type.name}(s{self.sender} r{self.round} {self.value_hash[:10]}{extra})"


def signing_bytes(message: Message) -> bytes:
    """The canonical encoding the sender signs: every field but the signature."""
    return canonical_json(
        [
            "covalidator/qbft/v1",
            int(message.type),
            message.instance.slot,
            int(message.instance.kind),
            message.sender,
            message.round,
            message.value_hash,
            message.prepared_round,
            message.prepared_hash,
        ]
    )


@dataclass(frozen=True)
class Envelope(DataClassJsonMixin):
    """What travels between co-validators: a message, maybe a body, and its justification."""

    message: Message
    body: bytes | None = field(default=None, metadata=config(encoder=_hex_or_none, decoder=_bytes_or_none))
    justification: tuple[Message, ...] = ()

    def __repr__(self) -> str:
        body = f" +{len(self.body)}B" if self.body is not None else ""
        just = f" +{len(self.justification)}j" if self.justification else ""
        return f"Envelope({self.message!r}{body}{just})"
