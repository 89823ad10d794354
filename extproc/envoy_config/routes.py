"""The route tables: the ingress listener's (switchyard's decisions, fail-open, the
gateway's own routes) and the shadow listener's."""

from __future__ import annotations

from typing import Any

from envoy.config.core.v3 import base_pb2 as core_base_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.type.v3 import percent_pb2

from extproc import headers as h
from extproc.config import Config, RouteConfig
from extproc.envoy_config.builders import (
    DISABLED,
    LUA_DISABLED,
    header_match,
    header_mutation,
    header_present,
    header_value,
    make_route,
    route_variant,
    seconds,
)
from extproc.envoy_config.filters import decided, fail_open_rewrite, stamped, uses_cache
from extproc.envoy_config.forwarding import backend_headers, forward, targets, to_backend
from extproc.envoy_config.gateway import gateway_routes, unauthorized, with_clients
from extproc.envoy_config.names import (
    FAIL_OPEN_FILTER,
    FAIL_OPEN_ROUTE,
    INGRESS_ROUTES,
    OBSERVE_FILTER,
    ROUTING_FILTER,
    SHADOW_LISTENER,
    SHADOW_ROUTES,
    STREAM_USAGE_FILTER,
    VIRTUAL_HOST,
)
from extproc.response.sampling import sampling
from extproc.upstream import stable_split

UPSTREAM_TIME_HEADER = header_value(
    # What Envoy's router would say with its debug headers on: from the request's first
    # byte sent to the response's first byte received, in milliseconds.
    "x-envoy-upstream-service-time",
    "%COMMON_DURATION(US_TX_BEG:US_RX_BEG:ms)%",
)

ENVOY_ADDED = (
    "x-envoy-external-address",
    "x-envoy-expected-rq-timeout-ms",
    "x-envoy-original-host",
    "x-envoy-attempt-count",
)
"""What Envoy itself adds to a request on its way to a backend (those a client sends are
dropped by the request guard). A retry's attempt count, set again after these removals,
is removed by the attempts' Lua once read (lua/attempts.lua)."""


def _not_upstream(config: Config) -> list[str]:
    """Request headers no backend receives: switchyard's, Envoy's, and the client's key
    (a backend's own credential is added after this, and Authorization is removed per
    backend, which may forward it: BackendConfig.forward_client_authorization)."""
    return [config.force_cohort.token_header, h.CLIENT, *h.INTERNAL, *ENVOY_ADDED, "x-api-key"]


def _response_headers(config: Config) -> list[Any]:
    """What Envoy's route adds to every response: switchyard's decision, as the decision
    filter kept it from the request headers switchyard set (the router removes those
    before the backend), Envoy's request id (already on the response the observing
    filter sees, which joins quality signals by it: the HCM adds it only after the filters),
    and the backend that answered."""
    copied = [(name, decided(name)) for name in (h.ROUTE, h.COHORT, h.LABEL)]
    copied.append((h.REQUEST_ID, f"%REQ({h.REQUEST_ID})%"))
    added = [header_value(name, value) for name, value in copied]
    added.append(UPSTREAM_TIME_HEADER)
    # Absent only from answers switchyard gave itself, which say so.
    added.append(header_value(h.BACKEND, "%UPSTREAM_CLUSTER%", "ADD_IF_ABSENT"))
    if uses_cache(config):
        added += [
            # A hit (switchyard's own answer) already says so.
            header_value(h.CACHE, decided(h.CACHE), "ADD_IF_ABSENT"),
            # For the observing filter; the request guard's Lua removes it afterwards.
            header_value(h.CACHE_FILL, decided(h.CACHE_FILL)),
        ]
    return added


def _shadow_variant(stable: Any, route: RouteConfig) -> Any:
    """The stable route for a shadowed session: forwards alike and copies the request."""
    variant = route_variant(stable, "shadowed", header_present(h.SHADOW))
    # Every marked request: switchyard chose the sessions (by their hash).
    mirror = route_components_pb2.RouteAction.RequestMirrorPolicy(
        cluster=SHADOW_LISTENER,
        disable_shadow_host_suffix_append=True,
        # The router removed switchyard's headers from the request before copying
        # it: the copy gets back what the shadow listener routes and rewrites on.
        request_headers_mutations=[
            header_mutation(h.ROUTE, route.name),
            header_mutation(h.SHADOW, decided(h.SHADOW)),
        ],
    )
    variant.route.request_mirror_policies.append(mirror)
    return variant


def _match(prefix: str, headers: list[Any], **fields: Any) -> Any:
    return route_components_pb2.RouteMatch(prefix=prefix, headers=headers, **fields)


def _routed(config: Config) -> list[Any]:
    """One route per (switchyard route, cohort, backend), each with its variants."""
    routed: list[Any] = []
    for route in config.routes:
        # A cache fills from observed responses (extproc.cache): its route stays observed.
        quiet = route.canary is None and route.shadow is None and not route.cache.enabled
        for target in targets(route):
            cohort = target.cohort
            headers = [
                header_match(h.ROUTE, route.name),
                header_match(h.COHORT, cohort),
                header_match(h.UPSTREAM, target.backend),
            ]
            if target.retry_on is not None:
                headers.append(header_match(h.RETRY_ON, target.retry_on))
            base = make_route(
                target.name,
                _match("/", headers),
                forward(config, target),
                stat_prefix=f"{route.name}.{cohort}",
            )
            # A shadowed session's request matches first: it forwards alike and is copied.
            shadowed = route.shadow is not None and cohort == h.STABLE
            variants = [_shadow_variant(base, route), base] if shadowed else [base]
            observed: list[Any] = []
            if quiet and config.envoy.observe == "canaries":
                base.typed_per_filter_config[OBSERVE_FILTER].CopyFrom(DISABLED)
            elif sampling(config.envoy) and cohort == h.STABLE:
                # Observed only when switchyard marks the request (extproc.response.sampling):
                # each variant once more, with the observe filter on, ahead of it.
                for variant in variants:
                    marked = header_match(h.OBSERVE, "1")
                    observed.append(route_variant(variant, "observed", marked))
                    variant.typed_per_filter_config[OBSERVE_FILTER].CopyFrom(DISABLED)
            routed += [*observed, *variants]
    return routed


def _unrouted(config: Config, version: str) -> list[Any]:
    """Chat requests switchyard has not routed yet (or at all: fail-open), then the few
    other endpoints the gateway serves, then a 404 for everything else.

    A chat request matches these routes first, when it reaches the routing filter: their
    per-route config names the config version of the route table the request was matched
    with (Envoy keeps that table for the request's whole life), and the filter sends it to
    switchyard as gRPC metadata (h.CONFIG_VERSION), so switchyard decides with that same
    version while Envoy moves from one to the next (extproc.request.runtime).

    When switchyard does not answer (fail-open), the request stays here: one route per
    backend of the default route's split, each taking its share of requests (cumulative
    runtime fractions: Envoy draws one number per request for all routes), so that the
    fail-open Lua filter rewrites the body for the backend that will answer, and Envoy's
    stats count fail-opens per backend (vhost route unrouted.<backend>)."""
    assert config.default_route is not None
    default = config.route(config.default_route)
    split = stable_split(default)
    total = sum(weight for _, weight in split)
    routes = []
    for prefix in config.server.chat_paths:
        below = 0
        for index, (name, weight) in enumerate(split):
            below += weight
            match = _match(prefix, [header_match(":method", "POST")])
            if index < len(split) - 1:
                share = percent_pb2.FractionalPercent(
                    numerator=below * 1_000_000 // total, denominator="MILLION"
                )
                match.runtime_fraction.CopyFrom(
                    core_base_pb2.RuntimeFractionalPercent(
                        default_value=share, runtime_key=f"switchyard.fail_open.{index}"
                    )
                )
            backend = config.backend(name)
            route = make_route(
                f"unrouted{prefix}.{name}",
                match,
                to_backend(config, backend),
                stat_prefix=f"{FAIL_OPEN_ROUTE}{name}",
                typed_per_filter_config={
                    ROUTING_FILTER: stamped(version),
                    FAIL_OPEN_FILTER: fail_open_rewrite(backend),
                    # Still this route after the routing filter: switchyard did not
                    # route it, so there is no route or cohort to observe it for.
                    OBSERVE_FILTER: DISABLED,
                    STREAM_USAGE_FILTER: LUA_DISABLED,
                },
            )
            routes.append(with_clients(config, route))
    return [*routes, *gateway_routes(config)]


def _table(name: str, virtual_host: Any) -> Any:
    # A backend's own credential (a route's header) is added after the host's removals.
    return route_pb2.RouteConfiguration(
        name=name, most_specific_header_mutations_wins=True, virtual_hosts=[virtual_host]
    )


def ingress_routes(config: Config, version: str) -> Any:
    virtual_host = route_components_pb2.VirtualHost(
        name=VIRTUAL_HOST,
        domains=["*"],
        request_headers_to_remove=_not_upstream(config),
        response_headers_to_add=_response_headers(config),
        routes=[*unauthorized(config), *_routed(config), *_unrouted(config, version)],
    )
    if any(len(t.attempts) > 1 for route in config.routes for t in targets(route)):
        # For the attempts' Lua (which backend an attempt is for) and for the observe
        # filter (an answer after a retry is counted apart).
        virtual_host.include_request_attempt_count = True
        virtual_host.include_attempt_count_in_response = True
    return _table(INGRESS_ROUTES, virtual_host)


def shadow_routes(config: Config, version: str) -> Any:
    """The internal listener's routes: each shadowed route's copies to its shadow backend."""
    routes = []
    for route in config.routes:
        if route.shadow is None:
            continue
        backend = config.backend(route.shadow.backend)
        action = route_components_pb2.RouteAction(
            cluster=backend.name,
            host_rewrite_literal=backend.host_header,
            timeout=seconds(config.envoy.upstream_timeout_s),
        )
        shadow_route = make_route(
            f"{route.name}.shadow",
            _match("/", [header_match(h.ROUTE, route.name)]),
            backend_headers(backend),
            route=action,
            # For the observing filter, fixed here: a copy is never counted as stable, not
            # even when the routing filter fails open or is skipped.
            response_headers_to_add=[
                header_value(h.ROUTE, route.name),
                header_value(h.COHORT, h.SHADOW_COHORT),
            ],
        )
        involved = [backend, *(config.backend(w.backend) for w in route.backends)]
        if any(b.model or b.path_prefix or b.query for b in involved):
            shadow_route.typed_per_filter_config[ROUTING_FILTER].CopyFrom(stamped(version))
        else:
            # The copy is already what the shadow expects: no stream to switchyard for it.
            shadow_route.typed_per_filter_config[ROUTING_FILTER].CopyFrom(DISABLED)
        routes.append(shadow_route)
    unknown = make_route(
        "unknown",
        _match("/", []),
        direct_response=route_components_pb2.DirectResponseAction(status=404),
        typed_per_filter_config={ROUTING_FILTER: DISABLED, OBSERVE_FILTER: DISABLED},
    )
    virtual_host = route_components_pb2.VirtualHost(
        name="shadow",
        domains=["*"],
        request_headers_to_remove=_not_upstream(config),
        response_headers_to_add=[
            header_value(h.BACKEND, "%UPSTREAM_CLUSTER%"),
            UPSTREAM_TIME_HEADER,
        ],
        routes=[*routes, unknown],
    )
    return _table(SHADOW_ROUTES, virtual_host)
