"""Logging setup and prompt redaction.

Prompts are health, finance and legal data: switchyard never logs them unless
server.log_prompts is on, and even then only redacted, at debug level.
"""

from __future__ import annotations

import json
import logging
import re
import sys

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
_DIGITS = re.compile(r"\d")
REDACTED_CHARS = 120


def redact(text: str) -> str:
    """Drops e-mail addresses and every digit (ids, card and phone numbers), and truncates."""
    text = _DIGITS.sub("#", _EMAIL.sub("<email>", text))
    return text if len(text) <= REDACTED_CHARS else text[:REDACTED_CHARS] + "…"


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log pipelines."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("request_id", "route", "cohort", "label"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
