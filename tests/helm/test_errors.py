"""Mistakes in values fail `helm template` with a message that names the key."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helm.conftest import EXTPROC_ONLY, FULL, template_result, write_values

BASE: dict[str, Any] = yaml.safe_load(FULL.read_text())


def _values(edit: Any) -> dict[str, Any]:
    values = copy.deepcopy(BASE)
    edit(values)
    return values


def _set(path: str, value: Any) -> Any:
    def edit(values: dict[str, Any]) -> None:
        node: Any = values
        keys = [int(k) if k.isdigit() else k for k in path.split(".")]
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    return edit


CASES = {
    # Cross-references, checked by the templates.
    "unknown backend in a route": (
        _set("config.routes.3.backends.1.backend", "gpt-5"),
        [
            'config.routes[3].backends[1].backend: unknown backend "gpt-5"',
            "llama-local, gpt, claude",
        ],
    ),
    "unknown canary backend": (
        _set("config.routes.0.canary.backend", "med-v3"),
        ['config.routes[0].canary.backend: unknown backend "med-v3"'],
    ),
    "unknown default route": (
        _set("config.default_route", "generl"),
        ['config.default_route: unknown route "generl"', "medical, code, premium, general"],
    ),
    "duplicate backend name": (
        _set("config.backends.1.name", "llama-local"),
        ['config.backends[1].name: duplicate name "llama-local"'],
    ),
    "a key the chart sets": (
        _set("config.envoy.listen", "0.0.0.0:1"),
        ["config.envoy.listen: set by the chart"],
    ),
    # Types and bounds, checked by values.schema.json.
    "negative weight": (
        _set("config.routes.3.backends.0.weight", -70),
        ["/config/routes/3/backends/0/weight", "minimum"],
    ),
    "canary percent above 100": (
        _set("config.routes.0.canary.percent", 150),
        ["/config/routes/0/canary/percent", "maximum"],
    ),
    "a string where a number goes": (
        _set("config.server.drain_s", "five"),
        ["/config/server/drain_s", "want number"],
    ),
    "a misspelt config key": (
        _set("config.rotues", []),
        ["/config", "rotues"],
    ),
    "a misspelt chart value": (
        _set("podDisruptionBudget.maxUnavilable", 1),
        ["/podDisruptionBudget", "maxUnavilable"],
    ),
    "a bad backend name": (
        _set("config.backends.0.name", "Llama Local"),
        ["/config/backends/0/name"],
    ),
    "an unknown mode": (
        _set("mode", "gateway"),
        ["/mode", "sidecar", "extproc-only"],
    ),
    "an out-of-range port": (
        _set("ports.http", 70000),
        ["/ports/http", "maximum"],
    ),
    "drain_s removed": (
        _set("config.server.drain_s", None),
        ["config.server.drain_s: the chart needs it"],
    ),
    "extension policy in sidecar mode": (
        _set(
            "extensionPolicy",
            {
                "enabled": True,
                "targetRefs": [
                    {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "eg"}
                ],
            },
        ),
        ["extensionPolicy.enabled: only with mode: extproc-only"],
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_mistake_fails_naming_the_key(case: str, tmp_path: Path) -> None:
    edit, expected = CASES[case]
    result = template_result(write_values(tmp_path, "bad", _values(edit)))
    assert result.returncode != 0, f"{case}: helm template accepted it"
    for text in expected:
        assert text in result.stderr, result.stderr


def test_extproc_only_network_policy_needs_peers(tmp_path: Path) -> None:
    values = yaml.safe_load(EXTPROC_ONLY.read_text())
    values["networkPolicy"]["extProcFrom"] = []
    result = template_result(write_values(tmp_path, "bad", values))
    assert result.returncode != 0
    assert "networkPolicy.extProcFrom: list the peers" in result.stderr
