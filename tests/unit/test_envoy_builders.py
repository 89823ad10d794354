"""Each builder of Envoy's config pieces makes a valid message of Envoy's own API
(xds-protos), and a field Envoy's API does not have fails in the test, not in Envoy."""

from __future__ import annotations

from typing import Any

import pytest
from envoy.config.cluster.v3 import circuit_breaker_pb2
from envoy.config.common.mutation_rules.v3 import mutation_rules_pb2
from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2
from envoy.config.route.v3 import route_components_pb2
from envoy.extensions.filters.http.ext_proc.v3 import processing_mode_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf import any_pb2
from google.protobuf.json_format import ParseDict, ParseError
from google.protobuf.message import Message

import extproc.envoy_config.filters
import extproc.envoy_config.listeners
from extproc.config import parse_config
from extproc.envoy_config import bootstrap, render
from extproc.envoy_config import builders as b
from extproc.envoy_config.typed import typed
from extproc.errors import ConfigError

HttpFilter = hcm_pb2.HttpFilter
ROUTE = {"name": "r", "match": {"prefix": "/", "headers": [b.header_match("a", "1")]}}
ROUTE["route"] = {"cluster": "c"}

CASES: list[tuple[str, type[Message], Any]] = [
    ("router", HttpFilter, b.router_filter(quiet=False)),
    ("quiet router", HttpFilter, b.router_filter(quiet=True)),
    ("hcm with rds", listener_components_pb2.Filter, b.hcm("p", [], rds=b.rds("t"))),
    ("hcm inline", listener_components_pb2.Filter, b.hcm("p", [], route_config={"name": "t"})),
    ("rds", hcm_pb2.Rds, b.rds("t")),
    ("lua filter", HttpFilter, b.lua_filter("f", "function envoy_on_request(h) end")),
    ("lua filter without script", HttpFilter, b.lua_filter("f")),
    ("lua per route", any_pb2.Any, b.lua_per_route("function envoy_on_request(h) end")),
    ("lua disabled", any_pb2.Any, b.LUA_DISABLED),
    ("ext_proc disabled", any_pb2.Any, b.DISABLED),
    ("ext_proc metadata", any_pb2.Any, b.ext_proc_metadata({"k": "v"})),
    (
        "processing mode",
        processing_mode_pb2.ProcessingMode,
        b.processing_mode(
            request_headers="SEND",
            response_headers="SKIP",
            request_body="BUFFERED",
            response_body="NONE",
        ),
    ),
    (
        "ext_proc filter",
        HttpFilter,
        b.ext_proc_filter(
            "f",
            "c",
            b.processing_mode(
                request_headers="SKIP",
                response_headers="SEND",
                request_body="NONE",
                response_body="STREAMED",
            ),
            observability_mode=True,
            message_timeout="1s",
        ),
    ),
    ("header value", base_pb2.HeaderValueOption, b.header_value("k", "v")),
    ("header value appended", base_pb2.HeaderValueOption, b.header_value("k", "v", None)),
    ("header mutation", mutation_rules_pb2.HeaderMutation, b.header_mutation("k", "v")),
    ("header match", route_components_pb2.HeaderMatcher, b.header_match("k", "v")),
    ("header present", route_components_pb2.HeaderMatcher, b.header_present("k")),
    (
        "route variant",
        route_components_pb2.Route,
        b.route_variant(ROUTE, "v", b.header_present("k")),
    ),
    ("socket address", address_pb2.Address, b.socket_address("[::1]:8080")),
    ("pipe address", address_pb2.Address, b.endpoint_address("unix:/run/s.sock")),
    (
        "load assignment",
        endpoint_pb2.ClusterLoadAssignment,
        b.load_assignment("c", b.socket_address("127.0.0.1:1")),
    ),
    ("circuit breaker", circuit_breaker_pb2.CircuitBreakers, b.circuit_breaker(max_requests=5)),
]


@pytest.mark.parametrize(("case", "message", "built"), CASES, ids=[c[0] for c in CASES])
def test_each_builder_makes_envoys_own_message(
    case: str, message: type[Message], built: Any
) -> None:
    parsed = ParseDict(built, message(), ignore_unknown_fields=False)
    assert parsed.ByteSize() > 0


@pytest.mark.parametrize("protocol", ["http_protocol_options", "http2_protocol_options"])
def test_protocol_options_are_envoys_own_message(protocol: str) -> None:
    (options,) = b.http_protocol_options(
        protocol, http_filters=[b.router_filter(quiet=False)]
    ).values()
    parsed = ParseDict(options, any_pb2.Any())
    assert parsed.type_url.endswith("upstreams.http.v3.HttpProtocolOptions")


def test_the_built_values_land_in_the_messages_fields() -> None:
    matcher = ParseDict(b.header_match("x-r", "chat"), route_components_pb2.HeaderMatcher())
    assert (matcher.name, matcher.string_match.exact) == ("x-r", "chat")
    option = ParseDict(b.header_value("k", "v", "ADD_IF_ABSENT"), base_pb2.HeaderValueOption())
    assert option.append_action == base_pb2.HeaderValueOption.ADD_IF_ABSENT
    address = ParseDict(b.socket_address("[::1]:8080"), address_pb2.Address())
    assert (address.socket_address.address, address.socket_address.port_value) == ("::1", 8080)
    variant = ParseDict(
        b.route_variant(ROUTE, "v", b.header_present("k")), route_components_pb2.Route()
    )
    assert variant.name == "r.v" and [m.name for m in variant.match.headers] == ["a", "k"]


MISTAKES: list[tuple[str, type[Message], dict[str, Any]]] = [
    ("misspelled field", listener_components_pb2.Filter, b.hcm("p", [], stat_prefx="typo")),
    (
        "misspelled nested field",
        HttpFilter,
        b.ext_proc_filter("f", "c", {"request_header_mod": "SEND"}),
    ),
    (
        "misspelled top field",
        base_pb2.HeaderValueOption,
        {**b.header_value("k", "v"), "apend_action": "ADD_IF_ABSENT"},
    ),
    ("wrong enum value", base_pb2.HeaderValueOption, b.header_value("k", "v", "OVERWRITE")),
]


@pytest.mark.parametrize(("case", "message", "built"), MISTAKES, ids=[m[0] for m in MISTAKES])
def test_a_field_or_value_envoy_does_not_have_fails(
    case: str, message: type[Message], built: dict[str, Any]
) -> None:
    with pytest.raises(ParseError):
        ParseDict(built, message())
    with pytest.raises(ConfigError, match="where: not a valid Envoy"):
        typed(message, built, "what", "where")


SMALL = {
    "backends": [{"name": "a", "address": "127.0.0.1:1"}],
    "routes": [{"name": "chat", "backends": [{"backend": "a"}]}],
    "default_route": "chat",
}


def test_a_misspelled_field_fails_the_rendering_not_envoy(monkeypatch: pytest.MonkeyPatch) -> None:
    def misspelled(*, quiet: bool) -> dict[str, Any]:
        return {**b.router_filter(quiet=quiet), "typed_conifg": {}}

    monkeypatch.setattr(extproc.envoy_config.listeners, "router_filter", misspelled)
    with pytest.raises(ConfigError, match=r"bootstrap: .*typed_conifg"):
        render(parse_config(SMALL, "small.yaml"))


def test_the_bootstrap_refuses_resources_envoy_would_reject(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bootstrap holds none of the served resources, yet `switchyard envoy` checks them:
    Envoy would start, then reject every config switchyard serves it."""

    def misspelled(**modes: str) -> dict[str, str]:
        return {**b.processing_mode(**modes), "request_body_mod": "BUFFERED"}

    monkeypatch.setattr(extproc.envoy_config.filters, "processing_mode", misspelled)
    with pytest.raises(ConfigError, match=r"listeners\.ingress: .*request_body_mod"):
        bootstrap(parse_config(SMALL, "small.yaml"))
