"""files/alerts.yaml: valid for promtool, and every metric it names really exists,
in switchyard's registry or in what a real Envoy exports for the rendered config."""

from __future__ import annotations

import contextlib
import re
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from extproc.cache.metrics import CacheMetrics
from extproc.metrics import Metrics
from extproc.request.metrics import RequestMetrics
from extproc.rollout.metrics import RolloutMetrics
from extproc.store.metrics import StoreMetrics
from extproc.tools import devstack
from extproc.tools.devstack import free_port
from extproc.workers.pool import WorkerMetrics
from tests.helm.conftest import CHART, render, switchyard_yaml, tool

ALERTS = CHART / "files" / "alerts.yaml"


def _exprs() -> str:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return "\n".join(rule["expr"] for group in groups for rule in group["rules"])


def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run(
        [tool("promtool"), "check", "rules", str(ALERTS)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 7 rules found" in result.stdout


def test_switchyard_metrics_in_the_rules_exist() -> None:
    registry = Metrics().registry  # the server's, with every area's metrics on it
    for area in (RequestMetrics, RolloutMetrics, StoreMetrics, CacheMetrics, WorkerMetrics):
        area(registry)
    exported = {family.name for family in registry.collect()}
    named = set(re.findall(r"\b(switchyard_[a-z_]+)", _exprs()))
    assert named == {
        "switchyard_rollbacks_total",
        "switchyard_processing_errors_total",
        "switchyard_config_reloads_total",
        "switchyard_classifier_degraded_total",
        "switchyard_state_store_up",
        "switchyard_worker_restarts_total",
    }
    for name in named:
        assert name.removesuffix("_total") in exported, name  # counters: the family name


def test_envoy_fail_open_metric_is_what_envoy_exports(tmp_path: Path) -> None:
    """Envoy with the chart's config (all of it inline: no switchyard to serve it) and no
    switchyard behind it: it fails open."""
    cfg = yaml.safe_load(switchyard_yaml(render()))
    listen, admin = free_port(), free_port()
    cfg["envoy"].update(listen=f"127.0.0.1:{listen}", admin=f"127.0.0.1:{admin}")
    cfg["server"]["listen"] = f"unix:{tmp_path}/nobody.sock"
    cfg["backends"][0]["address"] = f"127.0.0.1:{free_port()}"
    (tmp_path / "switchyard.yaml").write_text(yaml.safe_dump(cfg))
    subprocess.run(
        [
            tool("switchyard"),
            "envoy",
            "--static",
            "-c",
            str(tmp_path / "switchyard.yaml"),
            "-o",
            str(tmp_path / "envoy.yaml"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    envoy = devstack.envoy(tmp_path, tmp_path / "envoy.yaml", admin, log_level="error")
    try:
        envoy.wait_ready(20)
        request = urllib.request.Request(
            f"http://127.0.0.1:{listen}/v1/chat/completions",
            data=b'{"messages":[{"role":"user","content":"hi"}]}',
            headers={"content-type": "application/json"},
        )
        # No backend either: a 503, after ext_proc failed open.
        with contextlib.suppress(urllib.error.HTTPError):
            urllib.request.urlopen(request, timeout=10).read()
        stats = (
            urllib.request.urlopen(f"http://127.0.0.1:{admin}/stats/prometheus", timeout=5)
            .read()
            .decode()
        )
    finally:
        envoy.stop()
    (name,) = set(re.findall(r"\b(envoy_[a-z_]+)", _exprs()))
    sample = re.search(rf"^{name}\{{[^}}]*\}} (\d+)$", stats, re.M)
    assert sample, f"{name} not in Envoy's /stats/prometheus"
    assert int(sample.group(1)) >= 1
