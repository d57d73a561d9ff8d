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


def too_deep(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether `value` (parsed JSON) nests lists and objects more than `limit` levels deep."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def loads_bounded(text: str | bytes) -> Any:
    """json.loads, and ValueError for a document nested deeper than MAX_JSON_DEPTH (or too deep to parse)."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    if too_deep(value):
        raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return value
