from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from extproc.config import load_config
from extproc.envoy_config import render

REPO = Path(__file__).resolve().parents[2]
ENVOY = str(Path(sys.executable).parent / "envoy")


def test_committed_example_bootstrap_is_fresh() -> None:
    rendered = render(load_config(REPO / "switchyard.yaml"))
    committed = yaml.safe_load((REPO / "envoy" / "envoy.yaml").read_text())
    assert committed == rendered, "envoy/envoy.yaml is stale: run make envoy-config"


def test_example_bootstrap_passes_envoy_validate() -> None:
    result = subprocess.run(
        [ENVOY, "--mode", "validate", "-c", str(REPO / "envoy" / "envoy.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _route(bootstrap: dict, name: str) -> dict:
    hcm = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    routes = hcm["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
    return next(route for route in routes if route["name"] == name)


def test_routes_forward_by_cohort_and_sticky_header() -> None:
    bootstrap = render(load_config(REPO / "switchyard.yaml"))
    canary = _route(bootstrap, "clinical.canary")
    assert canary["route"]["cluster"] == "clinical-v2"
    assert {m["name"] for m in canary["match"]["headers"]} == {
        "x-switchyard-route",
        "x-switchyard-cohort",
    }
    split = _route(bootstrap, "support.stable")["route"]["weighted_clusters"]
    assert split["header_name"] == "x-switchyard-sticky"
    assert [(c["name"], c["weight"]) for c in split["clusters"]] == [
        ("support-selfhosted", 70),
        ("support-api-a", 20),
        ("support-api-b", 10),
    ]
    passthrough = _route(bootstrap, "passthrough")
    assert passthrough["typed_per_filter_config"]["switchyard.route"]["disabled"] is True


def test_client_address_comes_from_the_peer_or_trusted_hops_and_stays_inside() -> None:
    config = load_config(REPO / "switchyard.yaml")
    hcm = render(config)["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    typed = hcm["typed_config"]
    assert typed["use_remote_address"] is True
    assert typed["xff_num_trusted_hops"] == config.envoy.trusted_proxy_hops == 0
    behind_lb = config.model_copy(
        update={"envoy": config.envoy.model_copy(update={"trusted_proxy_hops": 2})}
    )
    hcm = render(behind_lb)["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    assert hcm["typed_config"]["xff_num_trusted_hops"] == 2
    lua = typed["http_filters"][0]["typed_config"]["default_source_code"]["inline_string"]
    assert 'headers:replace("x-switchyard-client"' in lua
    # switchyard reads it; the models behind Envoy never see it.
    vhost = typed["route_config"]["virtual_hosts"][0]
    assert "x-switchyard-client" in vhost["request_headers_to_remove"]
