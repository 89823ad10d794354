"""The chart's Grafana dashboard: generated, fresh, shipped only when asked for.

Whether its queries return data on a running stack: tests/e2e/test_dashboard.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.helm.conftest import of_kind, render, write_values
from tests.helm.dashboard_gen import DASHBOARD_PATH, dashboard, dump


def test_dashboard_json_is_fresh() -> None:
    assert dump(dashboard()) == DASHBOARD_PATH.read_text(), (
        "helm/switchyard/files/dashboard.json is stale: run make dashboard"
    )


def _dashboard_maps(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [doc for doc in of_kind(docs, "ConfigMap") if "switchyard.json" in doc["data"]]


def test_dashboard_is_off_by_default() -> None:
    assert _dashboard_maps(render()) == []


def test_enabled_dashboard_is_a_configmap_for_grafanas_sidecar(tmp_path: Path) -> None:
    values = write_values(
        tmp_path,
        "dashboard",
        {"dashboard": {"enabled": True, "annotations": {"grafana_folder": "LLM"}}},
    )
    (config_map,) = _dashboard_maps(render(values))
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "LLM"}
    assert json.loads(config_map["data"]["switchyard.json"]) == dashboard()


def test_sidecar_label_and_namespace_are_configurable(tmp_path: Path) -> None:
    values = write_values(
        tmp_path,
        "dashboard-label",
        {
            "dashboard": {
                "enabled": True,
                "labels": {"grafana_dashboard": "switchyard"},
                "namespace": "monitoring",
            }
        },
    )
    (config_map,) = _dashboard_maps(render(values))
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "switchyard"
    assert config_map["metadata"]["namespace"] == "monitoring"


def test_every_panel_has_a_query_and_the_variables_are_used() -> None:
    board = dashboard()
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert len(panels) >= 12
    assert all(p["targets"] and all(t["expr"] for t in p["targets"]) for p in panels)
    exprs = " ".join(t["expr"] for p in panels for t in p["targets"])
    for variable in ("$namespace", "$route", "$backend"):
        assert variable in exprs
    assert [v["name"] for v in board["templating"]["list"]] == [
        "datasource",
        "namespace",
        "route",
        "backend",
    ]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
