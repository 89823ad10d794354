"""Small pieces of Envoy's v3 API that the listeners, routes and clusters repeat.

Each returns one of Envoy's own messages (the xds-protos classes), built field by field:
a field Envoy's API does not have, an enum label it does not know or a value of the
wrong kind raises (ValueError or TypeError) where the message is made, so a mistake
fails in a unit test, never in Envoy. typed_config fields hold their message packed
into an Any (`packed`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from envoy.config.cluster.v3 import circuit_breaker_pb2
from envoy.config.common.mutation_rules.v3 import mutation_rules_pb2
from envoy.config.core.v3 import (
    address_pb2,
    base_pb2,
    config_source_pb2,
    grpc_service_pb2,
    protocol_pb2,
)
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2
from envoy.config.route.v3 import route_components_pb2
from envoy.extensions.filters.http.ext_proc.v3 import ext_proc_pb2, processing_mode_pb2
from envoy.extensions.filters.http.lua.v3 import lua_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from envoy.type.matcher.v3 import string_pb2
from google.protobuf import any_pb2, duration_pb2, wrappers_pb2
from google.protobuf.message import Message

HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
HCM_FILTER = "envoy.filters.network.http_connection_manager"

Route = route_components_pb2.Route
HttpFilter = hcm_pb2.HttpFilter


def packed(message: Message) -> Any:
    """`message` in an Any, as every typed_config (and typed_per_filter_config) holds it."""
    out = any_pb2.Any()
    out.Pack(message)
    return out


def seconds(value: float) -> Any:
    """A Duration of `value` seconds (exact to the nanosecond)."""
    out = duration_pb2.Duration()
    out.FromNanoseconds(round(value * 1_000_000_000))
    return out


def uint32(value: int) -> Any:
    """A UInt32Value: set, even to 0 (where Envoy's default for unset is another number)."""
    return wrappers_pb2.UInt32Value(value=value)


def data_source(text: str) -> Any:
    return base_pb2.DataSource(inline_string=text)


def exact(value: str) -> Any:
    return string_pb2.StringMatcher(exact=value)


DISABLED = packed(ext_proc_pb2.ExtProcPerRoute(disabled=True))
"""An ext_proc filter's per-route config that turns it off on that route."""
LUA_DISABLED = packed(lua_pb2.LuaPerRoute(disabled=True))
"""A Lua filter's per-route config that turns it off on that route."""


def router_filter(*, quiet: bool) -> Any:
    """The router, last in every filter chain. Quiet: no x-envoy-* request header reaches a
    backend (x-envoy-original-host tells it the gateway's own name); the one response
    header switchyard reads comes from the route instead (routes.UPSTREAM_TIME_HEADER)."""
    router = router_pb2.Router(suppress_envoy_headers=quiet)
    return HttpFilter(name="envoy.filters.http.router", typed_config=packed(router))


def hcm(stat_prefix: str, filters: Iterable[Any], **fields: Any) -> Any:
    """A listener's HTTP connection manager (network filter) with these HTTP filters, the
    router last; `fields` hold the rest (where its routes come from, edge settings)."""
    manager = hcm_pb2.HttpConnectionManager(stat_prefix=stat_prefix, http_filters=filters, **fields)
    return listener_components_pb2.Filter(name=HCM_FILTER, typed_config=packed(manager))


def ads(**fields: Any) -> Any:
    """A ConfigSource: over ADS, on switchyard."""
    return config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(), resource_api_version="V3", **fields
    )


def rds(route_config_name: str) -> Any:
    """An HCM's routes by name, from switchyard over ADS."""
    return hcm_pb2.Rds(config_source=ads(), route_config_name=route_config_name)


def lua_filter(name: str, source: str | None = None) -> Any:
    """A Lua HTTP filter; without a source it does nothing unless a route gives it one."""
    config = lua_pb2.Lua()
    if source is not None:
        config.default_source_code.CopyFrom(data_source(source))
    return HttpFilter(name=name, typed_config=packed(config))


def lua_per_route(source: str) -> Any:
    """A Lua filter's script for one route, in place of its default."""
    return packed(lua_pb2.LuaPerRoute(source_code=data_source(source)))


def ext_proc_filter(name: str, cluster: str, mode: Any, **fields: Any) -> Any:
    """An ext_proc HTTP filter whose gRPC stream goes to `cluster` (switchyard)."""
    service = grpc_service_pb2.GrpcService(
        envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(cluster_name=cluster)
    )
    config = ext_proc_pb2.ExternalProcessor(grpc_service=service, processing_mode=mode, **fields)
    return HttpFilter(name=name, typed_config=packed(config))


def processing_mode(
    *, request_headers: str, response_headers: str, request_body: str, response_body: str
) -> Any:
    """What an ext_proc filter sends switchyard; trailers never."""
    return processing_mode_pb2.ProcessingMode(
        request_header_mode=request_headers,
        response_header_mode=response_headers,
        request_body_mode=request_body,
        response_body_mode=response_body,
        request_trailer_mode="SKIP",
        response_trailer_mode="SKIP",
    )


def ext_proc_metadata(metadata: dict[str, str]) -> Any:
    """An ext_proc filter's per-route config: gRPC metadata added to its stream."""
    pairs = [base_pb2.HeaderValue(key=key, value=value) for key, value in metadata.items()]
    overrides = ext_proc_pb2.ExtProcOverrides(grpc_initial_metadata=pairs)
    return packed(ext_proc_pb2.ExtProcPerRoute(overrides=overrides))


def header_value(key: str, value: str, action: str | None = "OVERWRITE_IF_EXISTS_OR_ADD") -> Any:
    """A header to add (HeaderValueOption); action None leaves Envoy's default (append)."""
    option = base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(key=key, value=value))
    if action is not None:
        option.append_action = base_pb2.HeaderValueOption.HeaderAppendAction.Value(action)
    return option


def header_mutation(key: str, value: str) -> Any:
    """A HeaderMutation that sets one header (a mirror's copy)."""
    return mutation_rules_pb2.HeaderMutation(append=header_value(key, value))


def header_match(name: str, value: str) -> Any:
    """A route match on one header's exact value."""
    return route_components_pb2.HeaderMatcher(name=name, string_match=exact(value))


def header_present(name: str) -> Any:
    return route_components_pb2.HeaderMatcher(name=name, present_match=True)


def make_route(name: str, match: Any, *parts: Any, **fields: Any) -> Any:
    """A Route named `name` matching `match`, with `fields`, then each of `parts` (partial
    Routes: the forwarding, a direct answer, ...) merged in."""
    built = Route(name=name, match=match, **fields)
    for part in parts:
        built.MergeFrom(part)
    return built


def route_variant(original: Any, suffix: str, *matched: Any) -> Any:
    """The route once more, under its name plus `suffix`, matching also `matched`: placed
    ahead of it, it takes the requests that carry those headers."""
    variant = Route()
    variant.CopyFrom(original)
    variant.name = f"{original.name}.{suffix}"
    headers: Sequence[Any] = [*original.match.headers, *matched]
    variant.match.CopyFrom(route_components_pb2.RouteMatch(prefix="/", headers=headers))
    return variant


def socket_address(address: str) -> Any:
    """An Address from host:port ([v6]:port too)."""
    host, _, port = address.rpartition(":")
    socket = address_pb2.SocketAddress(address=host.strip("[]"), port_value=int(port))
    return address_pb2.Address(socket_address=socket)


def endpoint_address(address: str) -> Any:
    """An Address from host:port or unix:PATH."""
    if address.startswith("unix:"):
        return address_pb2.Address(pipe=address_pb2.Pipe(path=address.removeprefix("unix:")))
    return socket_address(address)


def load_assignment(cluster: str, *addresses: Any) -> Any:
    """A cluster's endpoints (most have one)."""
    endpoints = [
        endpoint_components_pb2.LbEndpoint(
            endpoint=endpoint_components_pb2.Endpoint(address=address)
        )
        for address in addresses
    ]
    return endpoint_pb2.ClusterLoadAssignment(
        cluster_name=cluster,
        endpoints=[endpoint_components_pb2.LocalityLbEndpoints(lb_endpoints=endpoints)],
    )


def http_protocol_options(*, http2: bool, http_filters: Sequence[Any] = ()) -> dict[str, Any]:
    """A cluster's typed_extension_protocol_options: the HTTP version it speaks upstream,
    and its upstream HTTP filters if any."""
    config = http_protocol_options_pb2.HttpProtocolOptions.ExplicitHttpConfig
    # Set, though empty: which of the two is set says the version.
    if http2:
        explicit = config(http2_protocol_options=protocol_pb2.Http2ProtocolOptions())
    else:
        explicit = config(http_protocol_options=protocol_pb2.Http1ProtocolOptions())
    options = http_protocol_options_pb2.HttpProtocolOptions(
        explicit_http_config=explicit, http_filters=http_filters
    )
    return {HTTP_PROTOCOL_OPTIONS: packed(options)}


def circuit_breaker(
    *, max_requests: int, max_pending_requests: int, max_retries: int | None = None, **fields: Any
) -> Any:
    """A cluster's circuit breakers, one threshold set for the default priority."""
    if max_retries is not None:
        fields["max_retries"] = uint32(max_retries)
    limits = circuit_breaker_pb2.CircuitBreakers.Thresholds(
        max_requests=uint32(max_requests),
        max_pending_requests=uint32(max_pending_requests),
        **fields,
    )
    return circuit_breaker_pb2.CircuitBreakers(thresholds=[limits])
