"""Log lines of a running node: one line per record, `key=value` fields after the message (default), or
one JSON object per line (`--log-format json`: time, level, logger, node, msg, the fields, error).

The runtime logs with `extra={"fields": {...}}` (the model's `Log` actions carry their fields that way);
these formatters print them so that an operator can grep a duty, a validator or a reason.

No secrets: covalidator never holds a share secret (the VC signs), and nothing logs the identity key
or a keystore. As a second line of defence a field whose NAME says it is secret (`SECRET_FIELD_WORDS`)
is printed as `<redacted>`; tests grep a cluster's logs for its key material.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

SECRET_FIELD_WORDS = ("secret", "password", "passphrase", "private", "mnemonic", "identity_key")
REDACTED = "<redacted>"


def safe_fields(fields: Any) -> dict[str, Any]:
    if not isinstance(fields, dict):
        return {}
    return {
        str(k): REDACTED if any(w in str(k).lower() for w in SECRET_FIELD_WORDS) else v
        for k, v in fields.items()
    }


def _stamp(record: logging.LogRecord) -> str:
    return time.strftime("%H:%M:%S", time.localtime(record.created)) + f".{int(record.msecs):03d}"


class FieldsFormatter(logging.Formatter):
    def __init__(self, node: str = "") -> None:
        super().__init__()
        self.node = node

    def format(self, record: logging.LogRecord) -> str:
        fields = safe_fields(getattr(record, "fields", None))
        text = record.getMessage()
        if fields:
            text += " " + " ".join(f"{k}={_quote(str(v))}" for k, v in fields.items())
        prefix = f"{_stamp(record)} {record.levelname:<7} {self.node + ' ' if self.node else ''}{record.name}"
        line = f"{prefix}: {text}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JSONFormatter(logging.Formatter):
    def __init__(self, node: str = "") -> None:
        super().__init__()
        self.node = node

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        if self.node:
            entry["node"] = self.node
        entry["msg"] = record.getMessage()
        for key, value in safe_fields(getattr(record, "fields", None)).items():
            entry.setdefault(key, value)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def _quote(value: str) -> str:
    return json.dumps(value) if (" " in value or '"' in value or "=" in value or not value) else value


def setup_logging(level: str = "info", node: str = "", json_lines: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter(node) if json_lines else FieldsFormatter(node))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
