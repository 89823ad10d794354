"""The bootstrap Envoy starts with (`switchyard envoy`): its static part, and either ADS
on switchyard for the rest, or the rest inlined (`render`). Built as Envoy's Bootstrap
message; `bootstrap` and `render` give its YAML form (typed.yaml_form)."""

from __future__ import annotations

from functools import partial
from typing import Any

from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.core.v3 import (
    backoff_pb2,
    base_pb2,
    config_source_pb2,
    extension_pb2,
    grpc_service_pb2,
)
from envoy.extensions.bootstrap.internal_listener.v3 import internal_listener_pb2

from extproc.config import Config
from extproc.envoy_config.builders import ads, packed, seconds, socket_address
from extproc.envoy_config.clusters import static_clusters
from extproc.envoy_config.listeners import inline_routes, stats_listener
from extproc.envoy_config.names import NODE_CLUSTER, XDS_CLUSTER
from extproc.envoy_config.served import resources
from extproc.envoy_config.typed import built, yaml_form

Bootstrap = bootstrap_pb2.Bootstrap
WHAT = "envoy bootstrap"


def _static(config: Config) -> Any:
    """The parts of the bootstrap that do not come over xDS."""
    layers = [
        bootstrap_pb2.RuntimeLayer(name="static", static_layer={}),
        bootstrap_pb2.RuntimeLayer(
            name="admin", admin_layer=bootstrap_pb2.RuntimeLayer.AdminLayer()
        ),
    ]
    static = Bootstrap(
        node=base_pb2.Node(id="envoy", cluster=NODE_CLUSTER),
        admin=bootstrap_pb2.Admin(address=socket_address(config.envoy.admin)),
        layered_runtime=bootstrap_pb2.LayeredRuntime(layers=layers),
        # Always there: a shadow added later by xDS needs the internal listener extension.
        bootstrap_extensions=[
            extension_pb2.TypedExtensionConfig(
                name="envoy.bootstrap.internal_listener",
                typed_config=packed(internal_listener_pb2.InternalListener()),
            )
        ],
    )
    if config.analysis.source == "envoy":
        # Histograms reach the admin's view only when Envoy merges them (default 5 s).
        static.stats_flush_interval.CopyFrom(seconds(config.analysis.interval_s))
    return static


def _ads_config() -> Any:
    service = grpc_service_pb2.GrpcService(
        envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(
            cluster_name=XDS_CLUSTER,
            # Back within a second of switchyard's restart; Envoy serves its last
            # config meanwhile.
            retry_policy=base_pb2.RetryPolicy(
                retry_back_off=backoff_pb2.BackoffStrategy(
                    base_interval=seconds(0.1), max_interval=seconds(1)
                )
            ),
        )
    )
    return config_source_pb2.ApiConfigSource(
        api_type="GRPC",
        transport_api_version="V3",
        grpc_services=[service],
        set_node_on_first_message_only=True,
    )


def _ads_bootstrap(config: Config) -> Any:
    # initial_fetch_timeout 0: Envoy is not ready (GET /ready) until switchyard has served it
    # a config, rather than live with no listener after 15 s.
    from_switchyard = ads(initial_fetch_timeout=seconds(0))
    listeners = []
    if config.envoy.stats_listen is not None:
        listeners.append(stats_listener(config.envoy.stats_listen))
    message = _static(config)
    message.MergeFrom(
        Bootstrap(
            dynamic_resources=bootstrap_pb2.Bootstrap.DynamicResources(
                ads_config=_ads_config(),
                cds_config=from_switchyard,
                lds_config=from_switchyard,
            ),
            static_resources=bootstrap_pb2.Bootstrap.StaticResources(
                listeners=listeners, clusters=static_clusters(config)
            ),
        )
    )
    return message


def ads_bootstrap(config: Config) -> Any:
    """The Bootstrap message `switchyard envoy` writes: Envoy's static part, the rest from
    switchyard (ADS)."""
    # Refuses what switchyard could not serve (Envoy would reject it), before Envoy starts.
    resources(config)
    return built(WHAT, "bootstrap", partial(_ads_bootstrap, config))


def _static_bootstrap(config: Config) -> Any:
    served = resources(config)
    tables = served.route_configs
    listeners = [inline_routes(listener, tables) for listener in served.listeners.values()]
    if config.envoy.stats_listen is not None:
        listeners.append(stats_listener(config.envoy.stats_listen))
    message = _static(config)
    message.static_resources.CopyFrom(
        bootstrap_pb2.Bootstrap.StaticResources(
            listeners=listeners,
            clusters=[*static_clusters(config), *served.clusters.values()],
        )
    )
    return message


def static_bootstrap(config: Config) -> Any:
    """The whole configuration as one static Bootstrap message (the resources inlined, no
    xDS): for `envoy --mode validate`, and for an Envoy that cannot reach switchyard's xDS."""
    return built(WHAT, "bootstrap", partial(_static_bootstrap, config))


def bootstrap(config: Config) -> dict[str, Any]:
    """`ads_bootstrap` as the YAML Envoy reads."""
    return yaml_form(ads_bootstrap(config))


def render(config: Config) -> dict[str, Any]:
    """`static_bootstrap` as the YAML Envoy reads."""
    return yaml_form(static_bootstrap(config))
