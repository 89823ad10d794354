"""values.schema.json's `config` part is extproc/config/'s model, kept in step."""

from __future__ import annotations

import json

from tests.helm.schema_gen import SCHEMA_PATH, dump, updated_schema


def test_values_schema_matches_the_config_model() -> None:
    text = SCHEMA_PATH.read_text()
    assert dump(updated_schema(json.loads(text))) == text, (
        "helm/switchyard/values.schema.json is stale: run .venv/bin/python -m tests.helm.schema_gen"
    )


def test_config_is_checked_against_the_model_schema() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    assert schema["properties"]["config"] == {"$ref": "#/$defs/switchyard.Config"}
    weight = schema["$defs"]["switchyard.WeightedBackend"]["properties"]["weight"]
    assert weight["minimum"] == 1
    assert schema["$defs"]["switchyard.Config"]["additionalProperties"] is False
