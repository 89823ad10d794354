from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from extproc.config import Config, PassthroughConfig, load_config
from extproc.envoy_config import bootstrap, model_names, render

REPO = Path(__file__).resolve().parents[2]
ENVOY = str(Path(sys.executable).parent / "envoy")


@pytest.mark.parametrize(
    ("name", "build"), [("envoy.yaml", bootstrap), ("envoy-static.yaml", render)]
)
def test_committed_example_bootstrap_is_fresh(name: str, build: Callable[[Config], dict]) -> None:
    rendered = build(load_config(REPO / "switchyard.yaml"))
    committed = yaml.safe_load((REPO / "envoy" / name).read_text())
    assert _unversioned(committed) == _unversioned(rendered), (
        f"envoy/{name} is stale: run make envoy-config"
    )


def _unversioned(rendered: object) -> object:
    """The config version a route table names is a digest of the loaded config, whose paths
    are resolved from the checkout's folder: equal configs in two checkouts differ there."""
    text = yaml.safe_dump(rendered)
    return yaml.safe_load(re.sub(r"value: [0-9a-f]{12}\n", "value: VERSION\n", text))


@pytest.mark.parametrize("name", ["envoy.yaml", "envoy-static.yaml"])
def test_example_bootstrap_passes_envoy_validate(name: str) -> None:
    result = subprocess.run(
        [ENVOY, "--mode", "validate", "-c", str(REPO / "envoy" / name)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_xds_bootstrap_holds_only_what_never_changes_with_a_reload() -> None:
    config = load_config(REPO / "switchyard.yaml")
    static = bootstrap(config)
    clusters = [c["name"] for c in static["static_resources"]["clusters"]]
    assert clusters == [
        "_switchyard_ext_proc",
        "_switchyard_observe",
        "_switchyard_xds",
        "_switchyard_admin",
    ]
    assert [x["name"] for x in static["static_resources"]["listeners"]] == ["stats"]
    ads = static["dynamic_resources"]["ads_config"]["grpc_services"][0]["envoy_grpc"]
    assert ads["cluster_name"] == "_switchyard_xds"
    for kind in ("cds_config", "lds_config"):
        source = static["dynamic_resources"][kind]
        assert source["ads"] == {} and source["resource_api_version"] == "V3"
        # Not ready before switchyard served a config: no listener-less live Envoy.
        assert source["initial_fetch_timeout"] == "0s"
    backends = {b.name for b in config.backends}
    assert not backends & set(clusters)


def _routes(bootstrap: dict) -> list[dict]:
    hcm = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    routes: list[dict] = hcm["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
    return routes


def _route(bootstrap: dict, name: str) -> dict:
    return next(route for route in _routes(bootstrap) if route["name"] == name)


def test_routes_forward_to_the_backend_switchyard_named() -> None:
    bootstrap = render(load_config(REPO / "switchyard.yaml"))
    # The canary, retried on the stable backend the session would have had.
    canary = _route(bootstrap, "clinical.canary.clinical-v2.clinical-v1")
    assert canary["route"]["cluster"] == "_retry.clinical.clinical-v2.clinical-v1"
    assert canary["match"]["headers"] == [
        {"name": "x-switchyard-route", "string_match": {"exact": "clinical"}},
        {"name": "x-switchyard-cohort", "string_match": {"exact": "canary"}},
        {"name": "x-switchyard-upstream", "string_match": {"exact": "clinical-v2"}},
        {"name": "x-switchyard-retry-on", "string_match": {"exact": "clinical-v1"}},
    ]
    for backend in ("support-selfhosted", "support-api-a", "support-api-b"):
        assert _route(bootstrap, f"support.stable.{backend}")["route"]["cluster"] == backend
    unrouted = [r for r in _routes(bootstrap) if r["name"].startswith("unrouted/")]
    assert unrouted
    for route in unrouted:
        assert route["match"]["headers"] == [{"name": ":method", "string_match": {"exact": "POST"}}]


def test_only_known_endpoints_reach_a_backend() -> None:
    config = load_config(REPO / "switchyard.yaml")
    config = config.model_copy(
        update={"passthrough": [PassthroughConfig(path="/v1/files", backend="support-api-a")]}
    )
    bootstrap = render(config)
    models = _route(bootstrap, "models")
    assert models["match"]["path"] == "/v1/models"
    listed = json.loads(models["direct_response"]["body"]["inline_string"])
    assert listed["object"] == "list"
    assert [m["id"] for m in listed["data"]] == model_names(config)
    assert config.default_route in model_names(config)
    opened = _route(bootstrap, "passthrough/v1/files")
    assert opened["match"] == {"path_separated_prefix": "/v1/files"}
    assert opened["route"]["cluster"] == "support-api-a"
    assert opened["typed_per_filter_config"]["switchyard.route"]["disabled"] is True
    last = _route(bootstrap, "not_found")
    assert last is _routes(bootstrap)[-1] and last["match"] == {"prefix": "/"}
    assert last["direct_response"]["status"] == 404
    error = json.loads(last["direct_response"]["body"]["inline_string"])["error"]
    assert error["code"] == "unknown_url" and "/v1/files" in error["message"]
    # Nothing but the named routes forwards anywhere.
    forwarding = [r["name"] for r in _routes(bootstrap) if "route" in r]
    assert all(
        name.startswith(("unrouted/", "passthrough/")) or name.count(".") >= 2
        for name in forwarding
    )


def test_client_address_comes_from_the_peer_or_trusted_hops_and_stays_inside() -> None:
    config = load_config(REPO / "switchyard.yaml")
    hcm = render(config)["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    typed = hcm["typed_config"]
    assert typed["use_remote_address"] is True
    # 0 is the field's default: the YAML leaves it out, Envoy reads 0.
    assert "xff_num_trusted_hops" not in typed and config.envoy.trusted_proxy_hops == 0
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


def _listener(bootstrap: dict, name: str) -> dict:
    listeners = bootstrap["static_resources"]["listeners"]
    return next(listener for listener in listeners if listener["name"] == name)


def _cluster(bootstrap: dict, name: str) -> dict:
    return next(c for c in bootstrap["static_resources"]["clusters"] if c["name"] == name)


def test_admin_stays_on_loopback_and_the_stats_listener_passes_on_two_reads() -> None:
    bootstrap = render(load_config(REPO / "switchyard.yaml"))
    assert bootstrap["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    stats = _listener(bootstrap, "stats")
    hcm = stats["filter_chains"][0]["filters"][0]["typed_config"]
    assert [f["name"] for f in hcm["http_filters"]] == ["envoy.filters.http.router"]
    routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
    forwarded = [r for r in routes if "route" in r]
    assert {r["match"]["path"] for r in forwarded} == {"/stats/prometheus", "/ready"}
    for route in forwarded:
        assert route["match"]["headers"] == [{"name": ":method", "string_match": {"exact": "GET"}}]
        assert route["route"]["cluster"] == "_switchyard_admin"
    assert routes[-1] == {
        "match": {"prefix": "/"},
        "direct_response": {"status": 404, "body": {"inline_string": "not found\n"}},
    }
    admin = _cluster(bootstrap, "_switchyard_admin")["load_assignment"]["endpoints"][0]
    assert admin["lb_endpoints"][0]["endpoint"]["address"] == bootstrap["admin"]["address"]


def test_no_stats_listener_when_turned_off() -> None:
    config = load_config(REPO / "switchyard.yaml")
    config = config.model_copy(
        update={"envoy": config.envoy.model_copy(update={"stats_listen": None})}
    )
    bootstrap = render(config)
    # The example's shadow has its internal listener; no socket but the ingress's.
    listeners = bootstrap["static_resources"]["listeners"]
    assert [x["name"] for x in listeners if "address" in x] == ["ingress"]
    assert all(c["name"] != "_switchyard_admin" for c in bootstrap["static_resources"]["clusters"])


def test_processor_tls_gives_both_ext_proc_clusters_a_client_certificate(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    config = yaml.safe_load((REPO / "switchyard.yaml").read_text())
    config["classifier"]["model"] = str(REPO / "build" / "model")
    config["envoy"]["processor"] = "10.0.0.9:50051"
    config["envoy"]["processor_tls"] = {
        "cert_file": "/tls/envoy.crt",
        "key_file": "/tls/envoy.key",
        "ca_file": "/tls/ca.crt",
        "server_name": "switchyard.llm.svc",
    }
    path.write_text(yaml.safe_dump(config))
    bootstrap = render(load_config(path))
    for name in ("_switchyard_ext_proc", "_switchyard_observe"):
        socket = _cluster(bootstrap, name)["transport_socket"]["typed_config"]
        assert socket["sni"] == "switchyard.llm.svc"
        common = socket["common_tls_context"]
        assert common["alpn_protocols"] == ["h2"]
        assert common["tls_certificates"] == [
            {
                "certificate_chain": {"filename": "/tls/envoy.crt"},
                "private_key": {"filename": "/tls/envoy.key"},
            }
        ]
        validation = common["validation_context"]
        assert validation["trusted_ca"] == {"filename": "/tls/ca.crt"}
        assert validation["match_typed_subject_alt_names"] == [
            {"san_type": "DNS", "matcher": {"exact": "switchyard.llm.svc"}}
        ]
    plain = render(load_config(REPO / "switchyard.yaml"))
    assert "transport_socket" not in _cluster(plain, "_switchyard_ext_proc")


def test_the_observe_filter_gets_only_the_response_headers_it_reads() -> None:
    from extproc.envoy_config import observed_headers

    config = load_config(REPO / "switchyard.yaml")
    hcm = render(config)["static_resources"]["listeners"][0]
    typed = hcm["filter_chains"][0]["filters"][0]["typed_config"]
    filters = {f["name"]: f["typed_config"] for f in typed["http_filters"]}
    observed = filters["switchyard.observe"]["forward_rules"]["allowed_headers"]["patterns"]
    assert [p["exact"] for p in observed] == observed_headers(config)
    # Quality signals are joined by request id, a backend's score comes as a header, and
    # the example's cache fills from the observed answers.
    assert {"x-request-id", "x-quality-score", "x-switchyard-cache-fill"} <= set(
        observed_headers(config)
    )
    # Header routes and session sources reload without a new bootstrap: all headers go.
    assert "forward_rules" not in filters["switchyard.route"]


def test_nothing_envoy_config_imports_imports_it_back() -> None:
    """No cycle through envoy_config: the modules it loads (config, request.adapt,
    response.sampling, ...) never import it, and rollout reads Envoy's stat names from
    the neutral extproc.envoy_stat_names."""
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, extproc.envoy_config; "
            "print('\\n'.join(m.__file__ for n, m in sys.modules.items() "
            "if n.startswith('extproc.') and not n.startswith('extproc.envoy_config')))",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    assert any(path.endswith("sampling.py") for path in loaded)
    back = [path for path in loaded if _imports_envoy_config(Path(path))]
    assert back == []
    readers = [
        *(REPO / "extproc" / "rollout").glob("*.py"),
        *(REPO / "extproc" / "response").glob("*.py"),
    ]
    assert [p.name for p in readers if _imports_envoy_config(p)] == []


def _imports_envoy_config(path: Path) -> bool:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "extproc.envoy_config"
        ):
            return True
        if isinstance(node, ast.Import) and any(
            a.name.startswith("extproc.envoy_config") for a in node.names
        ):
            return True
    return False
