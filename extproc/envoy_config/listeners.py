"""Envoy's listeners: the ingress (clients), the shadow (internal, for shadow copies) and
the stats listener (Prometheus and probes)."""

from __future__ import annotations

from typing import Any

from extproc.config import Config
from extproc.envoy_config.builders import (
    hcm,
    header_match,
    rds,
    router_filter,
    socket_address,
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


def _switchyard_hcm(
    stat_prefix: str, routes: str, filters: list[dict[str, Any]], **fields: Any
) -> dict[str, Any]:
    """A listener's HTTP connection manager; its routes come by RDS under that name."""
    chain = [*filters, router_filter(quiet=True)]
    return hcm(stat_prefix, chain, **fields, rds=rds(routes))


def ingress_listener(config: Config, filters: list[dict[str, Any]]) -> dict[str, Any]:
    manager = _switchyard_hcm(
        HCM_STAT_PREFIX,
        INGRESS_ROUTES,
        filters,
        # Envoy is the edge: the client's address is the peer's, or taken from
        # x-forwarded-for only past the proxies the operator says are in front.
        use_remote_address=True,
        xff_num_trusted_hops=config.envoy.trusted_proxy_hops,
        # The client gets the request's id to post quality feedback for it
        # (POST /feedback); at the edge Envoy makes the id, never the client.
        always_set_request_id_in_response=True,
        local_reply_config=_upstream_failure_reply(),
    )
    return {
        "name": INGRESS_LISTENER,
        "address": socket_address(config.envoy.listen),
        "per_connection_buffer_limit_bytes": config.server.max_body_bytes * BUFFER_FACTOR,
        "filter_chains": [{"filters": [manager]}],
    }


def shadow_listener(config: Config) -> dict[str, Any]:
    """Where Envoy sends shadow copies: reachable from Envoy itself only (no socket)."""
    filters = [routing_filter(config), observe_filter(config)]
    manager = _switchyard_hcm("shadow", SHADOW_ROUTES, filters)
    return {
        "name": SHADOW_LISTENER,
        "internal_listener": {},
        "per_connection_buffer_limit_bytes": config.server.max_body_bytes * BUFFER_FACTOR,
        "filter_chains": [{"filters": [manager]}],
    }


def _upstream_failure_reply() -> dict[str, Any]:
    """When no backend of a route answered, the client still gets OpenAI's error shape
    (JSON), not Envoy's plain text."""
    return {
        "mappers": [
            {
                "filter": {"response_flag_filter": {"flags": UPSTREAM_FAILURE_FLAGS}},
                "body_format_override": {
                    "json_format": {
                        "error": {
                            "type": "upstream_unavailable",
                            "code": "upstream_unavailable",
                            "message": "no model backend of this route answered: "
                            "%LOCAL_REPLY_BODY%",
                        }
                    },
                    "content_type": "application/json",
                },
            }
        ]
    }


def stats_listener(address: str) -> dict[str, Any]:
    """Prometheus and probes reach these admin paths here; the admin itself stays on loopback."""
    allowed = [
        {
            "match": {"path": path, "headers": [header_match(":method", "GET")]},
            "route": {"cluster": ADMIN_CLUSTER, "timeout": "10s"},
        }
        for path in STATS_PATHS
    ]
    not_found = {
        "match": {"prefix": "/"},
        "direct_response": {"status": 404, "body": {"inline_string": "not found\n"}},
    }
    route_config = {
        "name": "stats",
        "virtual_hosts": [{"name": "stats", "domains": ["*"], "routes": [*allowed, not_found]}],
    }
    manager = hcm("stats_listener", [router_filter(quiet=False)], route_config=route_config)
    return {
        "name": "stats",
        "address": socket_address(address),
        "filter_chains": [{"filters": [manager]}],
    }


def inline_routes(listener: dict[str, Any], tables: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The listener with its RDS route tables put inline (for a bootstrap without xDS)."""
    chains = []
    for chain in listener["filter_chains"]:
        filters = []
        for network_filter in chain["filters"]:
            manager = dict(network_filter["typed_config"])
            manager["route_config"] = tables[manager.pop("rds")["route_config_name"]]
            filters.append({**network_filter, "typed_config": manager})
        chains.append({**chain, "filters": filters})
    return {**listener, "filter_chains": chains}
