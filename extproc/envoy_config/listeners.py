"""Envoy's listeners: the ingress (clients), the shadow (internal, for shadow copies) and
the stats listener (Prometheus and probes)."""

from __future__ import annotations

from typing import Any

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.core.v3 import substitution_format_string_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf import wrappers_pb2

from extproc.config import Config
from extproc.envoy_config.builders import (
    data_source,
    hcm,
    header_match,
    packed,
    rds,
    router_filter,
    seconds,
    socket_address,
    uint32,
)
from extproc.envoy_config.filters import observe_filter, routing_filter
from extproc.envoy_config.names import (
    ADMIN_CLUSTER,
    BUFFER_FACTOR,
    HCM_STAT_PREFIX,
    INGRESS_LISTENER,
    INGRESS_ROUTES,
    SHADOW_LISTENER,
    SHADOW_ROUTES,
    STATS_PATHS,
)

UPSTREAM_FAILURE_FLAGS = ["UF", "UH", "URX", "UO", "UT", "UC", "UMSDR"]
"""Envoy's response flags for an answer it made because no backend answered: connection
failure, no healthy host, retries exhausted, overflow, timeout, reset, stream duration."""


def _switchyard_hcm(stat_prefix: str, routes: str, filters: list[Any], **fields: Any) -> Any:
    """A listener's HTTP connection manager; its routes come by RDS under that name."""
    chain = [*filters, router_filter(quiet=True)]
    return hcm(stat_prefix, chain, **fields, rds=rds(routes))


def _chain(manager: Any) -> Any:
    return listener_components_pb2.FilterChain(filters=[manager])


def ingress_listener(config: Config, filters: list[Any]) -> Any:
    manager = _switchyard_hcm(
        HCM_STAT_PREFIX,
        INGRESS_ROUTES,
        filters,
        # Envoy is the edge: the client's address is the peer's, or taken from
        # x-forwarded-for only past the proxies the operator says are in front.
        use_remote_address=wrappers_pb2.BoolValue(value=True),
        xff_num_trusted_hops=config.envoy.trusted_proxy_hops,
        # The client gets the request's id to post quality feedback for it
        # (POST /feedback); at the edge Envoy makes the id, never the client.
        always_set_request_id_in_response=True,
        local_reply_config=_upstream_failure_reply(),
    )
    return listener_pb2.Listener(
        name=INGRESS_LISTENER,
        address=socket_address(config.envoy.listen),
        per_connection_buffer_limit_bytes=uint32(config.server.max_body_bytes * BUFFER_FACTOR),
        filter_chains=[_chain(manager)],
    )


def shadow_listener(config: Config) -> Any:
    """Where Envoy sends shadow copies: reachable from Envoy itself only (no socket)."""
    filters = [routing_filter(config), observe_filter(config)]
    manager = _switchyard_hcm("shadow", SHADOW_ROUTES, filters)
    return listener_pb2.Listener(
        name=SHADOW_LISTENER,
        internal_listener=listener_pb2.Listener.InternalListenerConfig(),
        per_connection_buffer_limit_bytes=uint32(config.server.max_body_bytes * BUFFER_FACTOR),
        filter_chains=[_chain(manager)],
    )


def _upstream_failure_reply() -> Any:
    """When no backend of a route answered, the client still gets OpenAI's error shape
    (JSON), not Envoy's plain text."""
    error = {
        "type": "upstream_unavailable",
        "code": "upstream_unavailable",
        "message": "no model backend of this route answered: %LOCAL_REPLY_BODY%",
    }
    mapper = hcm_pb2.ResponseMapper(
        filter=accesslog_pb2.AccessLogFilter(
            response_flag_filter=accesslog_pb2.ResponseFlagFilter(flags=UPSTREAM_FAILURE_FLAGS)
        ),
        body_format_override=substitution_format_string_pb2.SubstitutionFormatString(
            json_format={"error": error}, content_type="application/json"
        ),
    )
    return hcm_pb2.LocalReplyConfig(mappers=[mapper])


def stats_listener(address: str) -> Any:
    """Prometheus and probes reach these admin paths here; the admin itself stays on loopback."""
    to_admin = route_components_pb2.RouteAction(cluster=ADMIN_CLUSTER, timeout=seconds(10))
    allowed = [
        route_components_pb2.Route(
            match=route_components_pb2.RouteMatch(
                path=path, headers=[header_match(":method", "GET")]
            ),
            route=to_admin,
        )
        for path in STATS_PATHS
    ]
    not_found = route_components_pb2.Route(
        match=route_components_pb2.RouteMatch(prefix="/"),
        direct_response=route_components_pb2.DirectResponseAction(
            status=404, body=data_source("not found\n")
        ),
    )
    route_config = route_pb2.RouteConfiguration(
        name="stats",
        virtual_hosts=[
            route_components_pb2.VirtualHost(
                name="stats", domains=["*"], routes=[*allowed, not_found]
            )
        ],
    )
    manager = hcm("stats_listener", [router_filter(quiet=False)], route_config=route_config)
    return listener_pb2.Listener(
        name="stats", address=socket_address(address), filter_chains=[_chain(manager)]
    )


def inline_routes(listener: Any, tables: dict[str, Any]) -> Any:
    """The listener with its RDS route tables put inline (for a bootstrap without xDS)."""
    inlined = listener_pb2.Listener()
    inlined.CopyFrom(listener)
    for chain in inlined.filter_chains:
        for network_filter in chain.filters:
            manager = hcm_pb2.HttpConnectionManager()
            network_filter.typed_config.Unpack(manager)
            # One of the two: setting the table inline drops the RDS source.
            manager.route_config.CopyFrom(tables[manager.rds.route_config_name])
            network_filter.typed_config.CopyFrom(packed(manager))
    return inlined
