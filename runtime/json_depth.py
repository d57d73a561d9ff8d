"""How deeply nested a JSON document from outside may be: bounded before anything else touches it.

Decides: `MAX_JSON_DEPTH` (64: a signed Beacon block, the deepest thing covalidator handles, is about a
dozen levels) and `loads_bounded`, the `json.loads` every untrusted input goes through (the VC-facing
API, the Remote Signing API, peer frames). Python's json module parses ~1,500 levels, but the trace
encoder and other recursive code fail near 1,000: a document between the two stopped the node.
Counting is iterative, so a hostile document cannot exhaust the stack here.

Must not: interpret the document.
"""

from __future__ import annotations

import json
from typing import Any, Final

MAX_JSON_DEPTH: Final = 64
_CONTAINERS: Final = (dict, list)  # what json.loads makes that nests


def too_deep(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether `value` (parsed JSON) nests lists and objects more than `limit` levels deep."""
    level = [value] if type(value) in _CONTAINERS else []  # the containers at one depth, level by level
    for _ in range(limit):
        if not level:
            return False
        level = [
            child
            for item in level
            for child in (item.values() if type(item) is dict else item)
            if type(child) in _CONTAINERS
        ]
    return bool(level)


def loads_bounded(text: str | bytes) -> Any:
    """json.loads, and ValueError for a document nested deeper than MAX_JSON_DEPTH (or too deep to parse)."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    if too_deep(value):
        raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return value
