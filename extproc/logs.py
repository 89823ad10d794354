"""Logging setup, prompt redaction and the start-up announcement.

Prompts are health, finance and legal data: switchyard never logs them unless
server.log_prompts is on, and even then only redacted, at debug level.
"""

from __future__ import annotations

import json
import logging
import re
import sys

from extproc.config import Config, insecure_backends

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


def announce(config: Config, admin_token: str | None) -> None:
    """What is served where, and the settings an operator must not miss."""
    log = logging.getLogger("switchyard")
    cfg = config.server
    log.info(
        "serving ext_proc on %s (%s), metrics on %s",
        cfg.listen,
        "mutual TLS" if cfg.tls else "plaintext",
        cfg.metrics_listen,
    )
    if admin_token is None:
        log.warning(
            "$%s is unset or empty: POST /rollout on %s answers loopback clients only; set it "
            "to accept the bearer token from anywhere",
            cfg.admin_token_env,
            cfg.metrics_listen,
        )
    else:
        log.info("POST /rollout requires the bearer token from $%s", cfg.admin_token_env)
    for name in insecure_backends(config):
        log.warning(
            "backend %s: insecure_skip_verify is set, its TLS certificate is NOT verified", name
        )
