"""The trace encoding of events and actions: `encode` / `decode` one line, and `to_json(obj)`, what
dataclasses-json's `obj.to_dict(encode_json=True)` gives, ~10x faster.

Decides nothing: it is the encoding the traces and the peer frames already use, computed with a plan
made once per dataclass (its fields and their `config(encoder=...)` overrides) instead of
dataclasses-json's per-object, per-field introspection, which cost a node at 1,000 validators ~1.7 s
of CPU per epoch on its event loop (traces) plus again per peer frame. The JSON it produces is the
same, value for value (`tests/test_json_encode.py` compares both on every event and action kind):

  dataclass -> {field: value} (a field's own encoder, if any, applied to the raw value);
  Enum -> its value; Mapping -> dict (keys as they are, enums as their values); bytes without an
  encoder -> a list of ints (as dataclasses-json does); str -> itself; other collections -> list;
  int / float / bool / None -> themselves.

Must not: decode (dataclasses-json's `from_dict` does that, checked by types), or change an output.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import fields, is_dataclass
from enum import Enum
from typing import Any

from covalidator.model.node.events import ACTION_TYPES, EVENT_TYPES, PassToBN

Plan = tuple[tuple[str, Callable[[Any], Any] | None], ...]

_PLANS: dict[type, Plan] = {}
_SCALARS = (str, int, float, bool, type(None))


def _plan(cls: type) -> Plan:
    plan = _PLANS.get(cls)
    if plan is None:
        config = getattr(cls, "dataclass_json_config", None) or {}
        assert not config, f"{cls.__name__}: class-level dataclasses-json config is not supported"
        plan = _PLANS[cls] = tuple(
            (f.name, f.metadata.get("dataclasses_json", {}).get("encoder")) for f in fields(cls)
        )
    return plan


def _key(key: Any) -> Any:
    return key.value if isinstance(key, Enum) else key


def to_json(obj: Any) -> Any:
    """The JSON value (dict / list / str / int / float / bool / None) of a dataclass or value:
    `json_default` applied all the way down (an enum's value as it is)."""
    cls = type(obj)
    if cls in _SCALARS:
        return obj
    if isinstance(obj, str) and not isinstance(obj, Enum):
        return str(obj)
    shallow = json_default(obj)
    if type(shallow) is dict:
        return {key: to_json(value) for key, value in shallow.items()}
    if type(shallow) is list:
        return [to_json(item) for item in shallow]
    return shallow


def json_default(obj: Any) -> Any:
    """`json.dumps`'s `default` hook that makes `json.dumps(obj, default=json_default)` write what
    `json.dumps(to_json(obj))` writes: the C encoder walks dicts, lists, tuples, str, int and float
    (str and int enums as their values, as their members are those values), and calls this only for
    the rest, one level at a time: a dataclass gives its fields (each through its encoder, if any),
    any other enum its value, bytes a list of ints, another mapping or collection a dict or list.
    A node's traces and peer frames are mostly such nested JSON: walking it in C saves the per-value
    Python call of `to_json` (`dumps` falls back to `to_json` for what the C encoder refuses, such as
    an enum key that is not a str or int)."""
    cls = type(obj)
    plan = _PLANS.get(cls)
    if plan is None and is_dataclass(obj):
        plan = _plan(cls)
    if plan is not None:
        return {
            name: encoder(getattr(obj, name)) if encoder is not None else getattr(obj, name)
            for name, encoder in plan
        }
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, Mapping):
        return {_key(k): v for k, v in obj.items()}
    if isinstance(obj, bytes | bytearray):
        return list(obj)
    if isinstance(obj, Collection):
        return list(obj)
    raise TypeError(f"cannot encode {cls.__name__} as JSON")


def dumps(value: Any, *, ensure_ascii: bool = True) -> str:
    """`json.dumps(to_json(value), separators=(",", ":"), allow_nan=False, ensure_ascii=...)`, faster."""
    try:
        return json.dumps(
            value, default=json_default, separators=(",", ":"), allow_nan=False, ensure_ascii=ensure_ascii
        )
    except TypeError:  # e.g. a dict key json cannot take: to_json converts it, or raises the real error
        return json.dumps(to_json(value), separators=(",", ":"), allow_nan=False, ensure_ascii=ensure_ascii)


# ---- events and actions as trace lines ------------------------------------------------------------------


def typed(item: Any) -> dict[str, Any]:
    """`encode(item)` one level deep, for `dumps`: {"type": class name, field: raw value, ...}."""
    return {"type": type(item).__name__, **json_default(item)}


def encode(item: Any) -> dict[str, Any]:
    """{"type": class name, **fields}: one line of a trace."""
    encoded: dict[str, Any] = to_json(item)  # = item.to_dict(encode_json=True), planned once per class
    return {"type": type(item).__name__, **encoded}


def decode(obj: dict[str, Any]) -> Any:
    """The event or action of a trace line, including lines written by earlier versions."""
    obj = dict(obj)
    name = obj.pop("type")
    if name == "ReplyToVC" and obj.get("status") == 0:  # before PassToBN existed: status 0 said it
        return PassToBN(int(obj["request_id"]))
    cls = EVENT_TYPES.get(name) or ACTION_TYPES[name]
    return cls.from_dict(obj)
