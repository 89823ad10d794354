"""Keeps the `config` part of the chart's values.schema.json equal to extproc/config/.

The switchyard config model is the one source of truth: its JSON schema (pydantic's)
is copied into the chart's values.schema.json under `$defs/switchyard.*`, so that
`helm template`/`install` rejects a wrong type or bound before anything runs.
The rest of values.schema.json (the chart's own values) is written by hand.

    .venv/bin/python -m tests.helm.schema_gen          # rewrite the chart's schema
    tests/helm/test_schema.py                          # fails when it is stale
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from extproc.config import NAME_PATTERN, Config

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "helm" / "switchyard" / "values.schema.json"
PREFIX = "switchyard."
_DROPPED = ("title", "default")


def _clean(node: Any) -> Any:
    """Validation keywords only: defaults live in the model, titles add nothing."""
    if isinstance(node, dict):
        cleaned = {k: _clean(v) for k, v in node.items() if k not in _DROPPED}
        if cleaned.get("format") == "path":
            del cleaned["format"]
        return cleaned
    if isinstance(node, list):
        return [_clean(item) for item in node]
    return node


def config_defs() -> dict[str, Any]:
    """pydantic's schema of Config, as `$defs` entries named switchyard.<Model>."""
    schema = Config.model_json_schema(ref_template="#/$defs/" + PREFIX + "{model}")
    defs = {PREFIX + name: _clean(body) for name, body in schema.pop("$defs").items()}
    defs[PREFIX + "Config"] = _clean(schema)
    # MatchConfig's `label` and `model` also take a single string (a before-validator
    # turns it into a list), which the type annotation alone does not say.
    match = defs[PREFIX + "MatchConfig"]["properties"]
    match["label"]["anyOf"].insert(0, {"type": "string", "pattern": NAME_PATTERN})
    match["model"]["anyOf"].insert(0, {"type": "string"})
    return defs


def updated_schema(current: dict[str, Any]) -> dict[str, Any]:
    chart_defs = {k: v for k, v in current.get("$defs", {}).items() if not k.startswith(PREFIX)}
    return {**current, "$defs": {**chart_defs, **config_defs()}}


def dump(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=False) + "\n"


def main() -> int:
    current = json.loads(SCHEMA_PATH.read_text())
    SCHEMA_PATH.write_text(dump(updated_schema(current)))
    print(f"updated {SCHEMA_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
