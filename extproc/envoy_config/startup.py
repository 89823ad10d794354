"""The bootstrap Envoy starts with (`switchyard envoy`): its static part, and either ADS
on switchyard for the rest, or the rest inlined (`render`)."""

from __future__ import annotations

from typing import Any

from extproc.config import Config
from extproc.envoy_config.builders import TYPE, socket_address
from extproc.envoy_config.clusters import static_clusters
from extproc.envoy_config.listeners import inline_routes, stats_listener
from extproc.envoy_config.names import NODE_CLUSTER, XDS_CLUSTER
from extproc.envoy_config.served import resources
from extproc.envoy_config.typed import checked_bootstrap, typed_resources


def _static(config: Config) -> dict[str, Any]:
    """The parts of the bootstrap that do not come over xDS."""
    static: dict[str, Any] = {
        "node": {"id": "envoy", "cluster": NODE_CLUSTER},
        "admin": {"address": socket_address(config.envoy.admin)},
        "layered_runtime": {
            "layers": [
                {"name": "static", "static_layer": {}},
                {"name": "admin", "admin_layer": {}},
            ]
        },
        # Always there: a shadow added later by xDS needs the internal listener extension.
        "bootstrap_extensions": [
            {
                "name": "envoy.bootstrap.internal_listener",
                "typed_config": {"@type": TYPE + "bootstrap.internal_listener.v3.InternalListener"},
            }
        ],
    }
    if config.analysis.source == "envoy":
        # Histograms reach the admin's view only when Envoy merges them (default 5 s).
        static["stats_flush_interval"] = f"{config.analysis.interval_s}s"
    return static


def bootstrap(config: Config) -> dict[str, Any]:
    """What `switchyard envoy` writes: Envoy's static part, the rest from switchyard (ADS)."""
    # Refuses what switchyard could not serve (Envoy would reject it), before Envoy starts.
    typed_resources(resources(config))
    # initial_fetch_timeout 0: Envoy is not ready (GET /ready) until switchyard has served it
    # a config, rather than live with no listener after 15 s.
    ads = {"ads": {}, "resource_api_version": "V3", "initial_fetch_timeout": "0s"}
    listeners = []
    if config.envoy.stats_listen is not None:
        listeners.append(stats_listener(config.envoy.stats_listen))
    ads_service = {
        "envoy_grpc": {
            "cluster_name": XDS_CLUSTER,
            # Back within a second of switchyard's restart; Envoy serves its last
            # config meanwhile.
            "retry_policy": {"retry_back_off": {"base_interval": "0.1s", "max_interval": "1s"}},
        }
    }
    rendered = {
        **_static(config),
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "grpc_services": [ads_service],
                "set_node_on_first_message_only": True,
            },
            "cds_config": ads,
            "lds_config": ads,
        },
        "static_resources": {"listeners": listeners, "clusters": static_clusters(config)},
    }
    return checked_bootstrap(rendered)


def render(config: Config) -> dict[str, Any]:
    """The whole configuration as one static bootstrap (the resources inlined, no xDS):
    for `envoy --mode validate`, and for an Envoy that cannot reach switchyard's xDS."""
    served = resources(config)
    tables = served.route_configs
    listeners = [inline_routes(listener, tables) for listener in served.listeners.values()]
    if config.envoy.stats_listen is not None:
        listeners.append(stats_listener(config.envoy.stats_listen))
    rendered = {
        **_static(config),
        "static_resources": {
            "listeners": listeners,
            "clusters": [*static_clusters(config), *served.clusters.values()],
        },
    }
    return checked_bootstrap(rendered)
