"""Each builder of Envoy's config pieces makes a message of Envoy's own API (xds-protos),
and a field Envoy's API does not have, an enum label it does not know or a value of the
wrong kind fails where the message is made: in the test, not in Envoy."""

from __future__ import annotations

from typing import Any

import pytest
from envoy.config.cluster.v3 import circuit_breaker_pb2
from envoy.config.common.mutation_rules.v3 import mutation_rules_pb2
from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2
from envoy.config.route.v3 import route_components_pb2
from envoy.extensions.filters.http.ext_proc.v3 import ext_proc_pb2, processing_mode_pb2
from envoy.extensions.filters.http.lua.v3 import lua_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from google.protobuf import any_pb2
from google.protobuf.json_format import ParseDict
from google.protobuf.message import Message

import extproc.envoy_config.filters
import extproc.envoy_config.listeners
from extproc.config import parse_config
from extproc.envoy_config import bootstrap, render, yaml_form
from extproc.envoy_config import builders as b
from extproc.errors import ConfigError

HttpFilter = hcm_pb2.HttpFilter
ROUTE = b.make_route(
    "r",
    route_components_pb2.RouteMatch(prefix="/", headers=[b.header_match("a", "1")]),
    route=route_components_pb2.RouteAction(cluster="c"),
)
MODE = {
    "request_headers": "SKIP",
    "response_headers": "SEND",
    "request_body": "NONE",
    "response_body": "STREAMED",
}

CASES: list[tuple[str, type[Message], Any]] = [
    ("router", HttpFilter, b.router_filter(quiet=False)),
    ("quiet router", HttpFilter, b.router_filter(quiet=True)),
    ("hcm with rds", listener_components_pb2.Filter, b.hcm("p", [], rds=b.rds("t"))),
    ("rds", hcm_pb2.Rds, b.rds("t")),
    ("lua filter", HttpFilter, b.lua_filter("f", "function envoy_on_request(h) end")),
    ("lua filter without script", HttpFilter, b.lua_filter("f")),
    ("lua per route", any_pb2.Any, b.lua_per_route("function envoy_on_request(h) end")),
    ("lua disabled", any_pb2.Any, b.LUA_DISABLED),
    ("ext_proc disabled", any_pb2.Any, b.DISABLED),
    ("ext_proc metadata", any_pb2.Any, b.ext_proc_metadata({"k": "v"})),
    ("processing mode", processing_mode_pb2.ProcessingMode, b.processing_mode(**MODE)),
    (
        "ext_proc filter",
        HttpFilter,
        b.ext_proc_filter(
            "f",
            "c",
            b.processing_mode(**MODE),
            observability_mode=True,
            message_timeout=b.seconds(1),
        ),
    ),
    ("header value", base_pb2.HeaderValueOption, b.header_value("k", "v")),
    ("header value appended", base_pb2.HeaderValueOption, b.header_value("k", "v", None)),
    ("header mutation", mutation_rules_pb2.HeaderMutation, b.header_mutation("k", "v")),
    ("header match", route_components_pb2.HeaderMatcher, b.header_match("k", "v")),
    ("header present", route_components_pb2.HeaderMatcher, b.header_present("k")),
    ("route", route_components_pb2.Route, ROUTE),
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
    (
        "circuit breaker",
        circuit_breaker_pb2.CircuitBreakers,
        b.circuit_breaker(max_requests=5, max_pending_requests=5),
    ),
]


@pytest.mark.parametrize(("case", "message", "built"), CASES, ids=[c[0] for c in CASES])
def test_each_builder_makes_envoys_own_message(
    case: str, message: type[Message], built: Any
) -> None:
    assert isinstance(built, message)
    assert built.ByteSize() > 0
    # Its YAML form is the same message again.
    assert ParseDict(yaml_form(built), message()) == built


@pytest.mark.parametrize("http2", [False, True])
def test_protocol_options_are_envoys_own_message(http2: bool) -> None:
    (options,) = b.http_protocol_options(
        http2=http2, http_filters=[b.router_filter(quiet=False)]
    ).values()
    parsed = http_protocol_options_pb2.HttpProtocolOptions()
    assert options.Unpack(parsed)
    explicit = parsed.explicit_http_config
    assert explicit.WhichOneof("protocol_config") == (
        "http2_protocol_options" if http2 else "http_protocol_options"
    )
    assert [f.name for f in parsed.http_filters] == ["envoy.filters.http.router"]


def test_the_built_values_land_in_the_messages_fields() -> None:
    matcher = b.header_match("x-r", "chat")
    assert (matcher.name, matcher.string_match.exact) == ("x-r", "chat")
    option = b.header_value("k", "v", "ADD_IF_ABSENT")
    assert option.append_action == base_pb2.HeaderValueOption.ADD_IF_ABSENT
    address = b.socket_address("[::1]:8080")
    assert (address.socket_address.address, address.socket_address.port_value) == ("::1", 8080)
    variant = b.route_variant(ROUTE, "v", b.header_present("k"))
    assert variant.name == "r.v" and [m.name for m in variant.match.headers] == ["a", "k"]
    assert variant.route.cluster == "c" and ROUTE.name == "r"  # the original is left as it was
    disabled = ext_proc_pb2.ExtProcPerRoute()
    assert b.DISABLED.Unpack(disabled) and disabled.disabled
    per_route = lua_pb2.LuaPerRoute()
    assert b.lua_per_route("-- x").Unpack(per_route)
    assert per_route.source_code.inline_string == "-- x"
    assert b.seconds(0.25).ToNanoseconds() == 250_000_000


MISTAKES: list[tuple[str, Any, type[Exception], str]] = [
    ("misspelled field", lambda: b.hcm("p", [], stat_prefx="typo"), ValueError, "stat_prefx"),
    (
        "misspelled nested field",
        lambda: b.ext_proc_filter("f", "c", {"request_header_mod": "SEND"}),
        ValueError,
        "request_header_mod",
    ),
    (
        "misspelled field of a route",
        lambda: b.make_route("r", route_components_pb2.RouteMatch(prefix="/"), stat_prefx="x"),
        ValueError,
        "stat_prefx",
    ),
    ("wrong enum label", lambda: b.header_value("k", "v", "OVERWRITE"), ValueError, "OVERWRITE"),
    (
        "wrong enum label in a mode",
        lambda: b.processing_mode(**{**MODE, "request_body": "BUFFER"}),
        ValueError,
        "BUFFER",
    ),
    (
        "wrong kind of value",
        lambda: b.ext_proc_filter("f", "c", b.processing_mode(**MODE), message_timeout="1s"),
        TypeError,
        "Duration",
    ),
    (
        "a number where a wrapper is expected",
        lambda: b.hcm("p", [], use_remote_address=True),
        TypeError,
        "BoolValue",
    ),
    ("out of range", lambda: b.uint32(-1), ValueError, "out of range"),
]


@pytest.mark.parametrize(
    ("case", "build", "error", "named"), MISTAKES, ids=[m[0] for m in MISTAKES]
)
def test_a_field_or_value_envoy_does_not_have_fails_at_construction(
    case: str, build: Any, error: type[Exception], named: str
) -> None:
    with pytest.raises(error, match=named):
        build()


SMALL = {
    "backends": [{"name": "a", "address": "127.0.0.1:1"}],
    "routes": [{"name": "chat", "backends": [{"backend": "a"}]}],
    "default_route": "chat",
}


def test_a_misspelled_field_fails_the_rendering_not_envoy(monkeypatch: pytest.MonkeyPatch) -> None:
    def misspelled(*, quiet: bool) -> Any:
        return HttpFilter(name="envoy.filters.http.router", typed_conifg=any_pb2.Any())

    monkeypatch.setattr(extproc.envoy_config.listeners, "router_filter", misspelled)
    with pytest.raises(ConfigError, match=r"listeners\.ingress: .*typed_conifg"):
        render(parse_config(SMALL, "small.yaml"))


def test_the_bootstrap_refuses_resources_envoy_would_reject(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bootstrap holds none of the served resources, yet `switchyard envoy` builds them:
    Envoy would start, then reject every config switchyard serves it."""

    def misspelled(**modes: str) -> Any:
        return processing_mode_pb2.ProcessingMode(request_body_mod="BUFFERED")

    monkeypatch.setattr(extproc.envoy_config.filters, "processing_mode", misspelled)
    with pytest.raises(ConfigError, match=r"listeners\.ingress: .*request_body_mod"):
        bootstrap(parse_config(SMALL, "small.yaml"))
