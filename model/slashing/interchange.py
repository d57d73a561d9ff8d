"""EIP-3076 interchange format, version 5: strict parsing, merging, minification, export.

Pure: dict in, dataclasses out (and back). Parsing is strict about what the EIP specifies
(decimal-string uint64 within range, 0x-hex of exact length, version "5", required fields) and
tolerant of unknown extra fields, which the schema allows. Every error names the JSON path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from covalidator.model.slashing.rules import UINT64_MAX, SignedAttestation, SignedBlock, minify

INTERCHANGE_FORMAT_VERSION = "5"
_DECIMAL = re.compile(r"[0-9]+")
_HEX = re.compile(r"0x[0-9a-fA-F]*")


class InterchangeError(ValueError):
    """The document is not a valid EIP-3076 v5 interchange (the message names the JSON path)."""


@dataclass(frozen=True)
class ValidatorHistory:
    pubkey: bytes
    signed_blocks: tuple[SignedBlock, ...]
    signed_attestations: tuple[SignedAttestation, ...]


@dataclass(frozen=True)
class Interchange:
    genesis_validators_root: bytes
    data: tuple[ValidatorHistory, ...]


def parse_uint64(value: object, path: str) -> int:
    if not isinstance(value, str) or not _DECIMAL.fullmatch(value):
        raise InterchangeError(f"{path}: expected a decimal string, got {value!r}")
    number = int(value)
    if number > UINT64_MAX:
        raise InterchangeError(f"{path}: {value} does not fit in a uint64")
    return number


def parse_hex(value: object, length: int, path: str) -> bytes:
    if not isinstance(value, str) or not _HEX.fullmatch(value):
        raise InterchangeError(f"{path}: expected 0x-prefixed hex, got {value!r}")
    if len(value) != 2 + 2 * length:
        raise InterchangeError(f"{path}: expected {length} bytes of hex, got {(len(value) - 2) / 2:g}")
    return bytes.fromhex(value[2:])


def _object(value: object, path: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise InterchangeError(f"{path}: expected an object, got {type(value).__name__}")
    return value


def _list(value: object, path: str) -> list[object]:
    if not isinstance(value, list):
        raise InterchangeError(f"{path}: expected an array, got {type(value).__name__}")
    return value


def _field(obj: dict[str, object], key: str, path: str) -> object:
    if key not in obj:
        raise InterchangeError(f"{path}: missing required field {key!r}")
    return obj[key]


def _optional_root(obj: dict[str, object], path: str) -> bytes | None:
    if "signing_root" not in obj or obj["signing_root"] is None:
        return None
    return parse_hex(obj["signing_root"], 32, f"{path}.signing_root")


def parse_interchange(document: object) -> Interchange:
    top = _object(document, "$")
    metadata = _object(_field(top, "metadata", "$"), "$.metadata")
    version = _field(metadata, "interchange_format_version", "$.metadata")
    if version != INTERCHANGE_FORMAT_VERSION:
        raise InterchangeError(
            f"$.metadata.interchange_format_version: unsupported version {version!r} (only {INTERCHANGE_FORMAT_VERSION!r})"
        )
    gvr = parse_hex(
        _field(metadata, "genesis_validators_root", "$.metadata"), 32, "$.metadata.genesis_validators_root"
    )
    histories = []
    for i, item in enumerate(_list(_field(top, "data", "$"), "$.data")):
        path = f"$.data[{i}]"
        entry = _object(item, path)
        pubkey = parse_hex(_field(entry, "pubkey", path), 48, f"{path}.pubkey")
        blocks = []
        for j, b in enumerate(_list(_field(entry, "signed_blocks", path), f"{path}.signed_blocks")):
            bpath = f"{path}.signed_blocks[{j}]"
            block = _object(b, bpath)
            blocks.append(
                SignedBlock(
                    parse_uint64(_field(block, "slot", bpath), f"{bpath}.slot"), _optional_root(block, bpath)
                )
            )
        attestations = []
        for j, a in enumerate(
            _list(_field(entry, "signed_attestations", path), f"{path}.signed_attestations")
        ):
            apath = f"{path}.signed_attestations[{j}]"
            att = _object(a, apath)
            attestations.append(
                SignedAttestation(
                    parse_uint64(_field(att, "source_epoch", apath), f"{apath}.source_epoch"),
                    parse_uint64(_field(att, "target_epoch", apath), f"{apath}.target_epoch"),
                    _optional_root(att, apath),
                )
            )
        histories.append(ValidatorHistory(pubkey, tuple(blocks), tuple(attestations)))
    return Interchange(gvr, tuple(histories))


def merge(interchanges: Iterable[Interchange]) -> Interchange:
    """Union of several interchanges for one chain: one entry per pubkey, duplicate records removed.

    Entries for the same pubkey (within one document or across several) are concatenated; nothing is
    dropped, so a merged document is at least as restrictive as each of its parts.
    """
    interchanges = list(interchanges)
    if not interchanges:
        raise InterchangeError("nothing to merge")
    gvr = interchanges[0].genesis_validators_root
    blocks: dict[bytes, dict[SignedBlock, None]] = {}
    attestations: dict[bytes, dict[SignedAttestation, None]] = {}
    for inter in interchanges:
        if inter.genesis_validators_root != gvr:
            raise InterchangeError(
                "$.metadata.genesis_validators_root: interchanges for different chains cannot be merged "
                f"(0x{gvr.hex()} and 0x{inter.genesis_validators_root.hex()})"
            )
        for history in inter.data:
            blocks.setdefault(history.pubkey, {}).update(dict.fromkeys(history.signed_blocks))
            attestations.setdefault(history.pubkey, {}).update(dict.fromkeys(history.signed_attestations))
    return Interchange(
        gvr,
        tuple(ValidatorHistory(pk, tuple(blocks[pk]), tuple(attestations[pk])) for pk in blocks),
    )


def minify_interchange(inter: Interchange) -> Interchange:
    """EIP-3076 minification: per validator keep only the max-slot block and one attestation at
    (max source, max target), without signing roots. A DB importing it refuses everything not strictly
    beyond those watermarks (proved sound in proofs/slashing.py)."""
    out = []
    for history in merge([inter]).data:
        minimal = minify(history.signed_attestations, history.signed_blocks)
        blocks = () if minimal.max_slot is None else (SignedBlock(minimal.max_slot),)
        atts: tuple[SignedAttestation, ...] = ()
        if minimal.max_source is not None and minimal.max_target is not None:
            atts = (SignedAttestation(minimal.max_source, minimal.max_target),)
        out.append(ValidatorHistory(history.pubkey, blocks, atts))
    return Interchange(inter.genesis_validators_root, tuple(out))


def _root_json(root: bytes | None) -> dict[str, str]:
    return {} if root is None else {"signing_root": "0x" + root.hex()}


def to_json(inter: Interchange) -> dict[str, object]:
    return {
        "metadata": {
            "interchange_format_version": INTERCHANGE_FORMAT_VERSION,
            "genesis_validators_root": "0x" + inter.genesis_validators_root.hex(),
        },
        "data": [
            {
                "pubkey": "0x" + h.pubkey.hex(),
                "signed_blocks": [
                    {"slot": str(b.slot), **_root_json(b.signing_root)} for b in h.signed_blocks
                ],
                "signed_attestations": [
                    {
                        "source_epoch": str(a.source_epoch),
                        "target_epoch": str(a.target_epoch),
                        **_root_json(a.signing_root),
                    }
                    for a in h.signed_attestations
                ],
            }
            for h in inter.data
        ],
    }
