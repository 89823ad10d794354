"""Envoy's resources as Envoy's own typed messages, and the versions the request path keeps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.extensions.filters.http.ext_proc.v3 import ext_proc_pb2
from google.protobuf.json_format import ParseDict

import extproc.envoy_config.clusters
from extproc.config import AuthConfig, PassthroughConfig, load_config, parse_config
from extproc.envoy_config import (
    ads_bootstrap,
    bootstrap,
    config_version,
    render,
    resources,
    static_bootstrap,
    yaml_form,
)
from extproc.errors import ConfigError
from extproc.request.runtime import Runtime, RuntimeHolder
from extproc.xds import CLUSTERS, LISTENERS, ROUTES, snapshot

REPO = Path(__file__).resolve().parents[2]

SMALL: dict[str, Any] = {
    "backends": [
        {"name": "a", "address": "127.0.0.1:1", "model": "m-a"},
        {"name": "b", "address": "127.0.0.1:2", "model": "m-b"},
    ],
    "routes": [{"name": "chat", "backends": [{"backend": "a"}]}],
    "default_route": "chat",
}


def _variants() -> list[Any]:
    example = load_config(REPO / "switchyard.yaml")
    sampled = example.model_copy(
        update={"envoy": example.envoy.model_copy(update={"observe_sample": 0.1})}
    )
    canaries = example.model_copy(
        update={"envoy": example.envoy.model_copy(update={"observe": "canaries"})}
    )
    quiet = example.model_copy(
        update={"envoy": example.envoy.model_copy(update={"observe": "off", "stats_listen": None})}
    )
    gateway = example.model_copy(
        update={
            "auth": AuthConfig(keys_file=Path("clients.keys"), clients={"ab" * 32: "alice"}),
            "passthrough": [PassthroughConfig(path="/v1/embeddings", backend="cheap")],
        }
    )
    hosted = {
        **SMALL,
        "backends": [
            {"name": "a", "address": "api.example.com:443", "tls": True, "model": "m-a"},
            {"name": "b", "address": "10.0.0.2:443", "tls": True, "insecure_skip_verify": True},
            {"name": "c", "address": "[::1]:8080"},
        ],
        "routes": [
            {
                "name": "chat",
                "backends": [{"backend": "a"}],
                "fallbacks": [{"backend": "b"}, {"backend": "c"}],
                "canary": {"backend": "b", "percent": 5, "retry_on_stable": True},
            }
        ],
    }
    return [
        example,
        sampled,
        canaries,
        quiet,
        gateway,
        parse_config(SMALL, "small.yaml"),
        parse_config(hosted, "hosted.yaml"),
    ]


@pytest.mark.parametrize("config", _variants())
def test_every_rendered_variant_is_made_of_envoys_own_messages(config: Any) -> None:
    snap = snapshot(resources(config))
    assert snap.resources[CLUSTERS] and snap.resources[LISTENERS] and snap.resources[ROUTES]
    # The YAML Envoy reads is Envoy's Bootstrap message again, field for field (an Any's
    # bytes may order a map differently, so compared in the form that unpacks them).
    for rendered, message in ((bootstrap, ads_bootstrap), (render, static_bootstrap)):
        parsed = ParseDict(rendered(config), bootstrap_pb2.Bootstrap())
        assert yaml_form(parsed) == yaml_form(message(config)) == rendered(config)


def test_the_yaml_keeps_what_envoy_reads_differently_when_absent() -> None:
    """Set fields at their default still say something: an empty message chooses a oneof
    (ads: {}), a wrapper at 0 differs from unset (num_retries: Envoy's default is 1)."""
    config = parse_config(SMALL, "small.yaml")
    no_retries = config.model_copy(update={"envoy": config.envoy.model_copy(update={"retries": 0})})
    rendered = bootstrap(no_retries)
    lds = rendered["dynamic_resources"]["lds_config"]
    assert lds == {"ads": {}, "initial_fetch_timeout": "0s", "resource_api_version": "V3"}
    assert rendered["layered_runtime"]["layers"][0] == {"name": "static", "static_layer": {}}
    static = render(no_retries)
    routes = static["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    table = routes["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
    assert table[0]["route"]["retry_policy"]["num_retries"] == 0


def test_a_field_envoy_does_not_have_fails_before_envoy_sees_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster = extproc.envoy_config.clusters.Cluster

    def misspelled(**fields: Any) -> Any:
        return cluster(**fields, conect_timeout=fields["connect_timeout"])

    monkeypatch.setattr(extproc.envoy_config.clusters, "Cluster", misspelled)
    with pytest.raises(ConfigError, match=r"clusters\.a: not a valid Envoy.*conect_timeout"):
        resources(parse_config(SMALL, "small.yaml"))


def test_a_config_value_out_of_a_fields_range_is_a_config_error() -> None:
    """The config model bounds what it can; a message refuses the rest, naming the resource."""
    config = parse_config(SMALL, "small.yaml")
    huge = config.model_copy(
        update={"server": config.server.model_copy(update={"max_body_bytes": 2**40})}
    )
    with pytest.raises(ConfigError, match=r"listeners\.ingress: not a valid Envoy message"):
        resources(huge)


def test_each_route_table_names_its_config_version_for_the_routing_filter() -> None:
    config = parse_config(SMALL, "small.yaml")
    table = resources(config).route_configs["switchyard"]
    unrouted = next(r for r in table.virtual_hosts[0].routes if r.name.startswith("unrouted/"))
    per_route = ext_proc_pb2.ExtProcPerRoute()
    assert unrouted.typed_per_filter_config["switchyard.route"].Unpack(per_route)
    metadata = per_route.overrides.grpc_initial_metadata
    assert [(m.key, m.value) for m in metadata] == [("x-switchyard-config", config_version(config))]


def test_a_new_version_keeps_the_clusters_only_the_previous_one_names() -> None:
    old = resources(parse_config(SMALL, "small.yaml"))
    changed = {**SMALL, "backends": [SMALL["backends"][0]]}
    new = resources(parse_config(changed, "small.yaml"))
    assert new.version != old.version
    offered = new.keeping(old)
    assert set(offered.clusters) == {"a", "b"}
    assert offered.route_configs == new.route_configs
    assert offered.version == new.version


def _runtime(name: str) -> Runtime:
    return Runtime(config=name, router=None, classifier=None, adapters={})  # type: ignore[arg-type]


def test_requests_are_decided_with_the_version_envoy_matched_them_with() -> None:
    old, new = _runtime("old"), _runtime("new")
    holder = RuntimeHolder(old, "v1")
    holder.offer("v2", new)
    # Offered, not yet acknowledged: Envoy may already match with it; the rest stays.
    assert holder.for_version("v2") is new
    assert holder.for_version("v1") is old and holder.for_version(None) is old
    holder.switch("v2")
    assert holder.current is new and holder.for_version("v1") is old
    holder.retire_all_but("v2")
    assert holder.for_version("v1") is new  # gone: the current one
    holder.offer("v3", _runtime("refused"))
    holder.withdraw("v3")
    assert holder.for_version("v3") is new
