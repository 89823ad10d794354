"""Small pieces of Envoy's v3 API that the listeners, routes and clusters repeat.

Each returns the dict form of one Envoy message (the form Envoy's YAML and protobuf's
ParseDict read); tests/unit/test_envoy_builders.py parses each into that message, and
everything rendered from them is parsed whole (extproc.envoy_config.typed), so a field
Envoy's API does not have fails in a test, not in Envoy.
"""

from __future__ import annotations

from typing import Any

TYPE = "type.googleapis.com/envoy.extensions."
EXT_PROC_TYPE = TYPE + "filters.http.ext_proc.v3.ExternalProcessor"
EXT_PROC_PER_ROUTE_TYPE = TYPE + "filters.http.ext_proc.v3.ExtProcPerRoute"
HCM_TYPE = TYPE + "filters.network.http_connection_manager.v3.HttpConnectionManager"
LUA_TYPE = TYPE + "filters.http.lua.v3.Lua"
LUA_PER_ROUTE_TYPE = TYPE + "filters.http.lua.v3.LuaPerRoute"
ROUTER_TYPE = TYPE + "filters.http.router.v3.Router"
HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
HCM_FILTER = "envoy.filters.network.http_connection_manager"

DISABLED = {"@type": EXT_PROC_PER_ROUTE_TYPE, "disabled": True}
"""An ext_proc filter's per-route config that turns it off on that route."""
LUA_DISABLED = {"@type": LUA_PER_ROUTE_TYPE, "disabled": True}
"""A Lua filter's per-route config that turns it off on that route."""


def router_filter(*, quiet: bool) -> dict[str, Any]:
    """The router, last in every filter chain. Quiet: no x-envoy-* request header reaches a
    backend (x-envoy-original-host tells it the gateway's own name); the one response
    header switchyard reads comes from the route instead (routes.UPSTREAM_TIME_HEADER)."""
    config: dict[str, Any] = {"@type": ROUTER_TYPE}
    if quiet:
        config["suppress_envoy_headers"] = True
    return {"name": "envoy.filters.http.router", "typed_config": config}


def hcm(stat_prefix: str, filters: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    """A listener's HTTP connection manager (network filter) with these HTTP filters, the
    router last; `fields` hold the rest (where its routes come from, edge settings)."""
    config = {
        "@type": HCM_TYPE,
        "stat_prefix": stat_prefix,
        **fields,
        "http_filters": filters,
    }
    return {"name": HCM_FILTER, "typed_config": config}


def rds(route_config_name: str) -> dict[str, Any]:
    """An HCM's routes by name, from switchyard over ADS."""
    return {
        "config_source": {"ads": {}, "resource_api_version": "V3"},
        "route_config_name": route_config_name,
    }


def lua_filter(name: str, source: str | None = None) -> dict[str, Any]:
    """A Lua HTTP filter; without a source it does nothing unless a route gives it one."""
    config: dict[str, Any] = {"@type": LUA_TYPE}
    if source is not None:
        config["default_source_code"] = {"inline_string": source}
    return {"name": name, "typed_config": config}


def lua_per_route(source: str) -> dict[str, Any]:
    """A Lua filter's script for one route, in place of its default."""
    return {"@type": LUA_PER_ROUTE_TYPE, "source_code": {"inline_string": source}}


def ext_proc_filter(
    name: str, cluster: str, processing_mode: dict[str, str], **fields: Any
) -> dict[str, Any]:
    """An ext_proc HTTP filter whose gRPC stream goes to `cluster` (switchyard)."""
    config = {
        "@type": EXT_PROC_TYPE,
        "grpc_service": {"envoy_grpc": {"cluster_name": cluster}},
        "processing_mode": processing_mode,
        **fields,
    }
    return {"name": name, "typed_config": config}


def processing_mode(
    *, request_headers: str, response_headers: str, request_body: str, response_body: str
) -> dict[str, str]:
    """What an ext_proc filter sends switchyard; trailers never."""
    return {
        "request_header_mode": request_headers,
        "response_header_mode": response_headers,
        "request_body_mode": request_body,
        "response_body_mode": response_body,
        "request_trailer_mode": "SKIP",
        "response_trailer_mode": "SKIP",
    }


def ext_proc_metadata(metadata: dict[str, str]) -> dict[str, Any]:
    """An ext_proc filter's per-route config: gRPC metadata added to its stream."""
    pairs = [{"key": key, "value": value} for key, value in metadata.items()]
    return {
        "@type": EXT_PROC_PER_ROUTE_TYPE,
        "overrides": {"grpc_initial_metadata": pairs},
    }


def header_value(
    key: str, value: str, action: str | None = "OVERWRITE_IF_EXISTS_OR_ADD"
) -> dict[str, Any]:
    """A header to add (HeaderValueOption); action None leaves Envoy's default (append)."""
    option: dict[str, Any] = {"header": {"key": key, "value": value}}
    if action is not None:
        option["append_action"] = action
    return option


def header_mutation(key: str, value: str) -> dict[str, Any]:
    """A HeaderMutation that sets one header (a mirror's copy)."""
    return {"append": header_value(key, value)}


def header_match(name: str, value: str) -> dict[str, Any]:
    """A route match on one header's exact value."""
    return {"name": name, "string_match": {"exact": value}}


def header_present(name: str) -> dict[str, Any]:
    return {"name": name, "present_match": True}


def route_variant(route: dict[str, Any], suffix: str, *matched: dict[str, Any]) -> dict[str, Any]:
    """The route once more, under its name plus `suffix`, matching also `matched`: placed
    ahead of it, it takes the requests that carry those headers."""
    headers = [*route["match"]["headers"], *matched]
    return {
        **route,
        "name": f"{route['name']}.{suffix}",
        "match": {"prefix": "/", "headers": headers},
    }


def socket_address(address: str) -> dict[str, Any]:
    """An Address from host:port ([v6]:port too)."""
    host, _, port = address.rpartition(":")
    return {"socket_address": {"address": host.strip("[]"), "port_value": int(port)}}


def endpoint_address(address: str) -> dict[str, Any]:
    """An Address from host:port or unix:PATH."""
    if address.startswith("unix:"):
        return {"pipe": {"path": address.removeprefix("unix:")}}
    return socket_address(address)


def load_assignment(cluster: str, address: dict[str, Any]) -> dict[str, Any]:
    """A cluster's one endpoint."""
    return {
        "cluster_name": cluster,
        "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address}}]}],
    }


def http_protocol_options(protocol: str, **fields: Any) -> dict[str, Any]:
    """A cluster's typed_extension_protocol_options: the HTTP version it speaks upstream
    (http_protocol_options or http2_protocol_options), and e.g. its upstream filters."""
    options = {
        "@type": TYPE + "upstreams.http.v3.HttpProtocolOptions",
        "explicit_http_config": {protocol: {}},
        **fields,
    }
    return {HTTP_PROTOCOL_OPTIONS: options}


def circuit_breaker(**limits: Any) -> dict[str, Any]:
    """A cluster's circuit breakers, one threshold set for the default priority."""
    return {"thresholds": [limits]}
