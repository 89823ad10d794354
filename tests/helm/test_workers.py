"""config.server.workers in the chart: every worker's metrics port is scraped and let in,
and the chart refuses what the workers cannot run with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.helm.conftest import (
    EXTPROC_ONLY,
    FULL,
    container,
    of_kind,
    one,
    render,
    switchyard_yaml,
    template_result,
    write_values,
)


def _values(**extra: Any) -> dict[str, Any]:
    config = {
        "server": {"workers": 2},
        "backends": [{"name": "stable", "address": "llm.svc:8000"}],
        "routes": [{"name": "main", "backends": [{"backend": "stable"}]}],
        "default_route": "main",
        **extra.pop("config", {}),
    }
    return {"config": config, **extra}


def test_every_workers_metrics_port_is_exposed_scraped_and_let_in() -> None:
    docs = render(FULL)
    assert yaml.safe_load(switchyard_yaml(docs))["server"]["workers"] == 2
    ports = {p["name"]: p["containerPort"] for p in container(docs, "switchyard")["ports"]}
    assert ports["metrics-w1"] == ports["metrics"] + 1
    services = [s for s in of_kind(docs, "Service") if s["metadata"]["name"].endswith("-metrics")]
    [metrics_service] = services
    assert "metrics-w1" in {p["name"] for p in metrics_service["spec"]["ports"]}
    monitor = one(docs, "ServiceMonitor")
    assert "metrics-w1" in {e["port"] for e in monitor["spec"]["endpoints"]}
    [policy] = [p for p in of_kind(docs, "NetworkPolicy") if p["metadata"]["name"] == "sy-router"]
    let_in = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    assert "metrics-w1" in let_in


def test_workers_without_the_shared_store_are_refused(tmp_path: Path) -> None:
    result = template_result(write_values(tmp_path, "v", _values()))
    assert result.returncode != 0
    assert "config.server.workers: 2 workers" in result.stderr
    assert "config.state.store: redis" in result.stderr
    shared = _values(redis={"enabled": True})
    assert template_result(write_values(tmp_path, "shared", shared)).returncode == 0


def test_workers_are_for_the_sidecar_mode_only(tmp_path: Path) -> None:
    values = yaml.safe_load(EXTPROC_ONLY.read_text())
    values["config"].setdefault("server", {})["workers"] = 2
    values["redis"] = {"enabled": True}
    result = template_result(write_values(tmp_path, "v", values))
    assert result.returncode != 0
    assert "config.server.workers: more than 1 only with mode: sidecar" in result.stderr
