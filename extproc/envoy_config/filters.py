"""The HTTP filters of switchyard's listeners: the Lua guards, the routing and observing
ext_proc filters, and the per-route scripts and settings they take."""

from __future__ import annotations

import json
from typing import Any

from envoy.extensions.filters.http.ext_proc.v3 import ext_proc_pb2
from envoy.type.matcher.v3 import string_pb2

from extproc import headers as h
from extproc.config import BackendConfig, Config
from extproc.envoy_config.builders import (
    exact,
    ext_proc_filter,
    ext_proc_metadata,
    lua_filter,
    lua_per_route,
    processing_mode,
    seconds,
)
from extproc.envoy_config.lua import lua, lua_list, lua_string
from extproc.envoy_config.names import (
    CLIENT_AUTH_FILTER,
    DECISION_FILTER,
    EXT_PROC_CLUSTER,
    FAIL_OPEN_FILTER,
    OBSERVE_CLUSTER,
    OBSERVE_FILTER,
    ROUTING_FILTER,
    STREAM_USAGE_FILTER,
)
from extproc.request.adapt import BackendAdapter

DECIDED = (h.ROUTE, h.COHORT, h.LABEL, h.CACHE, h.CACHE_FILL, h.SHADOW)
"""Request headers switchyard sets whose values outlive the request headers (in the
stream's dynamic metadata, under DECISION_FILTER): for the client's response and for
a shadow copy."""


def uses_cache(config: Config) -> bool:
    return any(route.cache.enabled for route in config.routes)


def ingress_filters(config: Config) -> list[Any]:
    """The ingress listener's filters, in order, before the router."""
    guard = lua(
        "request_guard",
        internal=lua_list(h.INTERNAL),
        chat_paths=lua_list(config.server.chat_paths),
        max_body=str(config.server.max_body_bytes),
        backend_header=h.BACKEND,
        client_header=h.CLIENT,
    )
    if uses_cache(config):
        guard += lua("cache_fill", cache_fill_header=h.CACHE_FILL)
    filters = [
        lua_filter("switchyard.request_guard", guard),
        *_client_auth_filter(config),
        routing_filter(config),
        # No script of its own: only the fail-open routes give it one.
        lua_filter(FAIL_OPEN_FILTER),
        _decision_filter(),
        lua_filter(STREAM_USAGE_FILTER, lua("stream_usage", header=h.STRIP_USAGE)),
    ]
    if config.envoy.observe != "off":
        filters.append(observe_filter(config))
    return filters


def routing_filter(config: Config) -> Any:
    mode = processing_mode(
        request_headers="SEND",
        response_headers="SKIP",
        request_body="BUFFERED",
        response_body="NONE",
    )
    return ext_proc_filter(
        ROUTING_FILTER,
        EXT_PROC_CLUSTER,
        mode,
        failure_mode_allow=config.envoy.failure_mode_allow,
        message_timeout=seconds(config.envoy.message_timeout_ms / 1000),
        allow_mode_override=True,
        # The body follows the headers at once: one round trip instead of two.
        send_body_without_waiting_for_header_response=True,
        # Every request header: header routes and session sources name any header and
        # reload without a new bootstrap, so no fixed list here could stay right.
        stat_prefix="switchyard",
    )


def observe_filter(config: Config) -> Any:
    # Everything switchyard needs is in the response: one message fewer.
    mode = processing_mode(
        request_headers="SKIP",
        response_headers="SEND",
        request_body="NONE",
        response_body="STREAMED",
    )
    return ext_proc_filter(
        OBSERVE_FILTER,
        OBSERVE_CLUSTER,
        mode,
        observability_mode=True,
        deferred_close_timeout=seconds(config.envoy.observe_close_timeout_ms / 1000),
        failure_mode_allow=True,
        # Fewer bytes per gRPC message for Envoy to encode and switchyard to parse.
        forward_rules=_forwarded(observed_headers(config)),
        stat_prefix="observe",
    )


def _forwarded(names: list[str]) -> Any:
    """An ext_proc filter's forward_rules: only these headers go to switchyard."""
    allowed = string_pb2.ListStringMatcher(patterns=[exact(name) for name in names])
    return ext_proc_pb2.HeaderForwardingRules(allowed_headers=allowed)


def observed_headers(config: Config) -> list[str]:
    """The response headers extproc.response.observe reads."""
    names = [":status", h.ROUTE, h.COHORT, h.BACKEND, "x-envoy-upstream-service-time"]
    names.append(h.REQUEST_ID)  # joins quality signals to the request
    names.append(h.ATTEMPT_COUNT)  # an answer after a retry or a fallback counts apart
    if any(route.cache.enabled for route in config.routes):
        names += ["content-type", h.CACHE, h.CACHE_FILL]  # extproc.cache fills
    if config.quality.score_header:
        names.append(config.quality.score_header)
    if config.auth is not None:
        names.append(h.AUTH_FAILURE)  # counted by reason
    return names


def stamped(version: str) -> Any:
    """The routing filter's per-route config, told which config version this route table is."""
    return ext_proc_metadata({h.CONFIG_VERSION: version})


def _decision_filter() -> Any:
    source = lua("decision", kept=lua_list(DECIDED), namespace=DECISION_FILTER)
    return lua_filter(DECISION_FILTER, source)


def decided(name: str) -> str:
    """A header value that reads what switchyard set in the request header `name`."""
    return f"%DYNAMIC_METADATA({DECISION_FILTER}:{name})%"


def fail_open_rewrite(backend: BackendConfig) -> Any:
    """The fail-open filter's script for one backend (lua/fail_open.lua)."""
    adapter = BackendAdapter.from_config(backend)
    source = lua("json_body") + lua(
        "fail_open",
        model=lua_string(json.dumps(adapter.model or "")[1:-1]),
        path_prefix=lua_string(adapter.path_prefix),
        query=lua_string(adapter.query),
    )
    return lua_per_route(source)


def _client_auth_filter(config: Config) -> list[Any]:
    """With auth: the client key check, in Envoy (lua/client_auth.lua), so that it holds
    while switchyard is down and costs no round trip; the keys come with the routes."""
    if config.auth is None:
        return []
    return [lua_filter(CLIENT_AUTH_FILTER, client_auth_source(None))]


def client_auth_source(clients: dict[str, str] | None) -> str:
    """The check's Lua, with the key table (digest to name; both checked by read_keys_file
    to be safe in a Lua string) or nil: no check."""
    table = "nil"
    if clients is not None:
        table = "{" + ", ".join(f'["{d}"] = "{n}"' for d, n in clients.items()) + "}"
    return lua(
        "client_auth",
        clients=table,
        client_header=h.CLIENT_NAME,
        reason_header=h.AUTH_FAILURE,
    )
