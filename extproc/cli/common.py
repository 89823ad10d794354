"""What several commands share: load the config or exit with its one error, check the model."""

from __future__ import annotations

import sys

from extproc.config import Config, insecure_backends, load_config, model_issues
from extproc.errors import ConfigError


def load_or_exit(path: str) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None


def require_model(config: Config, source: str) -> None:
    """One clear line, before anything tries to load a model that is not there."""
    issues = model_issues(config)
    if issues:
        print(ConfigError(source, issues), file=sys.stderr)
        raise SystemExit(2)


def warn_insecure(config: Config) -> None:
    for name in insecure_backends(config):
        print(
            f"WARNING: backend {name}: insecure_skip_verify is set, its TLS certificate is NOT "
            "verified: anyone on the path can read what is sent to it, keys included",
            file=sys.stderr,
        )
