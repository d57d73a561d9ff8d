"""Log lines of a running node: one line per record, `key=value` fields after the message.

The runtime logs with `extra={"fields": {...}}` (the model's `Log` actions carry their fields that way);
this formatter prints them so that an operator can grep a duty, a validator or a reason.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any


class FieldsFormatter(logging.Formatter):
    def __init__(self, node: str = "") -> None:
        super().__init__()
        self.node = node

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created)) + f".{int(record.msecs):03d}"
        fields: Any = getattr(record, "fields", None)
        text = record.getMessage()
        if isinstance(fields, dict) and fields:
            text += " " + " ".join(f"{k}={_quote(str(v))}" for k, v in fields.items())
        prefix = f"{stamp} {record.levelname:<7} {self.node + ' ' if self.node else ''}{record.name}"
        line = f"{prefix}: {text}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _quote(value: str) -> str:
    return f'"{value}"' if (" " in value or not value) else value


def setup_logging(level: str = "info", node: str = "") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(FieldsFormatter(node))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
