"""Log records as one JSON object per line, for a log pipeline (``LOG_FORMAT=json``).

Each line holds the time (ISO 8601, UTC), the level, the logger's name, the process id, the
message and the structured fields the code passed in ``extra``; a failure adds its traceback.
Only fields of plain JSON types are kept: objects such as the ``request`` Django's loggers attach
carry whatever the client sent, and are left out rather than written as text.
"""

from __future__ import annotations

import datetime
import json
import logging
from typing import Any

# Every attribute a LogRecord has of its own; anything else on a record came from ``extra``.
_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
_PLAIN = (str, int, float, bool, type(None))


def _plain(value: Any) -> bool:
    """Whether ``value`` is made of JSON's own types (and so is data the code chose to log)."""
    if isinstance(value, _PLAIN):
        return True
    if isinstance(value, list | tuple):
        return all(_plain(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and _plain(item) for key, item in value.items())
    return False


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines inside values are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, tz=datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "process": record.process,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if (
                key not in _RECORD_ATTRIBUTES
                and key not in entry
                and not key.startswith("_")
                and _plain(value)
            ):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry)
