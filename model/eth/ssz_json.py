"""Beacon-API JSON <-> the consensus specs' SSZ values, by walking the spec type's fields.

Decides: the JSON encoding of every SSZ type exactly as the beacon-APIs spec writes it (uints as
decimal strings, byte vectors/lists as 0x-hex, bitlists/bitvectors as 0x-hex of their SSZ bytes,
booleans as JSON booleans, containers as objects keyed by the spec's field names), and that parsing
is strict: a missing field, an unknown field, a wrong length, a number where a string belongs or an
out-of-range uint is an error naming its path. Unknown fields are refused because they usually mean
the wrong fork's container, whose root would differ: a signature over it would be useless.

One generic converter serves every container of every fork; there is no per-container code.
"""

from __future__ import annotations

import re
from typing import Any

from ssz.bitfields import BitList, BitVector, ProgressiveBitList
from ssz.boolean import Boolean
from ssz.byte_arrays import ByteList, ByteVector
from ssz.collections import List, ProgressiveList, Vector
from ssz.container import Container, ProgressiveContainer
from ssz.uint import BaseUint

_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_HEX = re.compile(r"0x([0-9a-fA-F]{2})*")


class SszJsonError(ValueError):
    """Beacon-API JSON that does not match the SSZ type it is read as (the message names the path)."""


def _fail(path: str, message: str) -> SszJsonError:
    return SszJsonError(f"{path or '<root>'}: {message}")


def _hex(value: object, path: str) -> bytes:
    if not isinstance(value, str) or not _HEX.fullmatch(value):
        raise _fail(path, f"expected 0x-prefixed hex, got {value!r}"[:200])
    return bytes.fromhex(value[2:])


def from_json(typ: Any, value: object, path: str = "") -> Any:
    """The SSZ value of spec type `typ` that the Beacon-API JSON `value` encodes."""
    if issubclass(typ, Boolean):
        if not isinstance(value, bool):
            raise _fail(path, f"expected a JSON boolean, got {value!r}")
        return typ(value)
    if issubclass(typ, BaseUint):
        if not isinstance(value, str) or not _DECIMAL.fullmatch(value):
            raise _fail(path, f"expected a decimal string, got {value!r}")
        number = int(value)
        if number >= 1 << (8 * typ.get_byte_length()):
            raise _fail(path, f"{value} does not fit in {8 * typ.get_byte_length()} bits")
        return typ(number)
    if issubclass(typ, (BitList, BitVector, ProgressiveBitList)):
        try:
            return typ.decode_bytes(_hex(value, path))
        except SszJsonError:
            raise
        except Exception as error:
            raise _fail(path, f"not a valid {typ.__name__}: {error}") from None
    if issubclass(typ, ByteVector):
        data = _hex(value, path)
        if len(data) != typ.LENGTH:
            raise _fail(path, f"expected {typ.LENGTH} bytes, got {len(data)}")
        return typ(data)
    if issubclass(typ, ByteList):
        data = _hex(value, path)
        if len(data) > typ.LIMIT:
            raise _fail(path, f"{len(data)} bytes exceed the limit {typ.LIMIT}")
        return typ(data=data)
    if issubclass(typ, (List, Vector, ProgressiveList)):
        if not isinstance(value, list):
            raise _fail(path, f"expected a JSON array, got {type(value).__name__}")
        if issubclass(typ, Vector) and len(value) != typ.LENGTH:
            raise _fail(path, f"expected {typ.LENGTH} elements, got {len(value)}")
        if issubclass(typ, List) and len(value) > typ.LIMIT:
            raise _fail(path, f"{len(value)} elements exceed the limit {typ.LIMIT}")
        return typ(data=[from_json(typ.ELEMENT_TYPE, v, f"{path}[{i}]") for i, v in enumerate(value)])
    if issubclass(typ, (Container, ProgressiveContainer)):
        if not isinstance(value, dict):
            raise _fail(path, f"expected a JSON object for {typ.__name__}, got {type(value).__name__}")
        names = [name for name, _ in typ._FIELD_TYPES]
        missing = [n for n in names if n not in value]
        unknown = sorted(set(value) - set(names))
        if missing:
            raise _fail(path, f"{typ.__name__} is missing {', '.join(missing)}")
        if unknown:
            raise _fail(path, f"{typ.__name__} has no field {', '.join(unknown)} (wrong fork?)")
        prefix = f"{path}." if path else ""
        return typ(**{n: from_json(t, value[n], prefix + n) for n, t in typ._FIELD_TYPES})
    raise _fail(path, f"SSZ type {typ.__name__} has no Beacon-API JSON form here")


def to_json(value: Any) -> object:
    """The Beacon-API JSON of an SSZ value (inverse of `from_json`)."""
    if isinstance(value, Boolean):
        return bool(value)
    if isinstance(value, BaseUint):
        return str(int(value))
    if isinstance(value, (BitList, BitVector, ProgressiveBitList)):
        return "0x" + value.encode_bytes().hex()
    if isinstance(value, (ByteVector, ByteList)):
        return "0x" + bytes(value).hex()
    if isinstance(value, (List, Vector, ProgressiveList)):
        return [to_json(v) for v in value]
    if isinstance(value, (Container, ProgressiveContainer)):
        return {n: to_json(getattr(value, n)) for n, _ in type(value)._FIELD_TYPES}
    raise TypeError(f"no Beacon-API JSON form for {type(value).__name__}")


def hash_tree_root(typ: Any, value: object) -> bytes:
    """hash_tree_root of the Beacon-API JSON `value` read as spec type `typ`."""
    return bytes(from_json(typ, value).hash_tree_root())
