"""Envoy's configuration, built from the same Config the server runs.

A pure function of the Config: no environment reads, no defaults of its own. Two views
of one set of resources:

- `resources(config)`: what changes with the config (the listeners, their routes, the
  backends' clusters). switchyard serves these to Envoy over xDS (extproc.xds), so a
  saved change reaches Envoy without a restart, switched together with the request path.
- `bootstrap(config)`: what `switchyard envoy` writes, the static part Envoy starts with:
  admin, the clusters that reach switchyard (ext_proc, observe, xDS), the stats listener,
  and where the rest comes from (ADS on switchyard). `render(config)` is the same with
  the resources inlined, for `envoy --mode validate` and for an Envoy run without xDS.

The request path the resources build, filter by filter:

1. a Lua filter (lua/request_guard.lua) answers chat requests whose content-length is
   over server.max_body_bytes with switchyard's JSON 413 (before Envoy buffers anything),
   drops client-sent switchyard headers and clears the route cache, so a request with
   spoofed headers is routed as if it had none (which matters when switchyard is down
   and Envoy fails open), and hands switchyard the client's address (x-switchyard-client)
   for its session fingerprint; it also drops the x-envoy-* headers a client sent;
   with auth, a Lua filter (lua/client_auth.lua) then checks the client's key against the
   table the first-matched route carries, and marks a refused request for the
   `unauthorized.*` routes' 401;
2. the routing ext_proc filter sends request headers and the buffered body to
   switchyard, which picks the route, the cohort and the backend (x-switchyard-route /
   -cohort / -upstream), rewrites the body for that backend and clears the route cache;
   a Lua filter (lua/decision.lua) keeps that decision in the stream's dynamic metadata
   (the router removes switchyard's headers before any backend; the response headers
   and a shadow copy read the decision from there), and one (lua/stream_usage.lua)
   removes from a stream the usage event switchyard asked the backend for on the
   client's behalf;
3. the observing ext_proc filter (observability mode) shows switchyard each response
   without delaying it;
4. the router: one route per (switchyard route, cohort, backend), matched on those three
   headers. Envoy computes no split of its own for a routed request: the backend is the
   one switchyard rewrote the body for, whatever version of the weights either holds.
   A chat request without them (switchyard down: fail-open) goes to the default route's
   split. Besides chat requests (POST on server.chat_paths) the gateway answers
   GET /v1/models itself, forwards the operator's passthrough paths, and answers
   everything else with a 404: no other path reaches a backend with its key. The route
   a chat request first matches tells switchyard which config version
   Envoy matched it with (see _unrouted), so the two always decide with one version.
   A route with a shadow has a variant for the sessions switchyard marked with the
   shadow header: it forwards the same way and copies the request
   (request_mirror_policies) to an internal listener, where the same routing filter
   rewrites the copy for the shadow backend and the observing filter records its answer
   as cohort `shadow`. Envoy drops the copy's answer and never waits for it.

Envoy's admin interface stays on loopback (the config refuses anything else); a separate
stats listener passes GET /stats/prometheus and GET /ready on to it for Prometheus and
probes, and answers everything else with 404.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import dataclass
from importlib import resources as package_files
from typing import Any

from extproc import headers as h
from extproc.config import MODELS_PATH, BackendConfig, Config, ProcessorTlsConfig, RouteConfig
from extproc.errors import ConfigError, ConfigIssue
from extproc.request.adapt import BackendAdapter
from extproc.response.sampling import sampling
from extproc.upstream import stable_split

EXT_PROC_CLUSTER = "_switchyard_ext_proc"
OBSERVE_CLUSTER = "_switchyard_observe"
XDS_CLUSTER = "_switchyard_xds"
ADMIN_CLUSTER = "_switchyard_admin"
STATS_PATHS = ("/stats/prometheus", "/ready")
"""The admin paths the stats listener passes on, GET only: read-only and free of secrets."""
ROUTING_FILTER = "switchyard.route"
STREAM_USAGE_FILTER = "switchyard.stream_usage"
FAIL_OPEN_FILTER = "switchyard.fail_open"
OBSERVE_FILTER = "switchyard.observe"
HCM_STAT_PREFIX = "ingress"
INGRESS_LISTENER = "ingress"
VIRTUAL_HOST = "switchyard"
INGRESS_ROUTES = "switchyard"
SHADOW_ROUTES = "shadow"
SHADOW_LISTENER = "_switchyard_shadow"
"""Internal listener (no socket) and the cluster that reaches it: where shadow copies go."""
BUFFER_FACTOR = 2
"""Envoy buffers up to twice server.max_body_bytes, so that switchyard answers a
body of unannounced length up to that size with its own 413; beyond it, Envoy's
buffer limit answers with a plain 413."""
NODE_CLUSTER = "switchyard"
RETRY_CLUSTER = "_retry"
"""The prefix of a canary-then-stable cluster: _retry.<route>.<canary>.<stable>."""
FALLBACK_CLUSTER = "_fallback"
"""The prefix of a backend-then-fallbacks cluster: _fallback.<route>.<backend>.<fallback>..."""
FAIL_OPEN_ROUTE = "unrouted."
"""The stat prefix of the fail-open routes, before the backend's name."""

_TYPE = "type.googleapis.com/envoy.extensions."
EXT_PROC_TYPE = _TYPE + "filters.http.ext_proc.v3.ExternalProcessor"
EXT_PROC_PER_ROUTE_TYPE = _TYPE + "filters.http.ext_proc.v3.ExtProcPerRoute"
HCM_TYPE = _TYPE + "filters.network.http_connection_manager.v3.HttpConnectionManager"
LUA_TYPE = _TYPE + "filters.http.lua.v3.Lua"
DISABLED = {"@type": EXT_PROC_PER_ROUTE_TYPE, "disabled": True}
LUA_DISABLED = {"@type": _TYPE + "filters.http.lua.v3.LuaPerRoute", "disabled": True}
ROUTER_FILTER = {
    "name": "envoy.filters.http.router",
    "typed_config": {"@type": _TYPE + "filters.http.router.v3.Router"},
}
QUIET_ROUTER_FILTER = {
    "name": "envoy.filters.http.router",
    "typed_config": {
        "@type": _TYPE + "filters.http.router.v3.Router",
        # No x-envoy-* request header reaches a backend (x-envoy-original-host tells it
        # the gateway's own name); the one response header switchyard reads comes from
        # the route instead (UPSTREAM_TIME_HEADER).
        "suppress_envoy_headers": True,
    },
}


def _lua(name: str, **values: str) -> str:
    """A Lua filter's source (extproc/lua/NAME.lua) with its {{value}} slots filled."""
    source = (package_files.files("extproc") / "lua" / f"{name}.lua").read_text()
    for key, value in values.items():
        source = source.replace("{{" + key + "}}", value)
    return source


def _lua_filter(name: str, source: str) -> dict[str, Any]:
    return {
        "name": name,
        "typed_config": {"@type": LUA_TYPE, "default_source_code": {"inline_string": source}},
    }


def _hcm(stat_prefix: str, routes: str, filters: list[dict[str, Any]], **extra: Any) -> dict:
    """A listener's HTTP connection manager; its routes come by RDS under that name."""
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": HCM_TYPE,
            "stat_prefix": stat_prefix,
            **extra,
            "rds": {
                "config_source": {"ads": {}, "resource_api_version": "V3"},
                "route_config_name": routes,
            },
            "http_filters": [*filters, QUIET_ROUTER_FILTER],
        },
    }


def _socket_address(address: str) -> dict[str, Any]:
    host, _, port = address.rpartition(":")
    return {"socket_address": {"address": host.strip("[]"), "port_value": int(port)}}


def _endpoint_address(address: str) -> dict[str, Any]:
    if address.startswith("unix:"):
        return {"pipe": {"path": address.removeprefix("unix:")}}
    return _socket_address(address)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _load_assignment(name: str, address: str) -> dict[str, Any]:
    return {
        "cluster_name": name,
        "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _endpoint_address(address)}}]}],
    }


def _processor_tls(tls: ProcessorTlsConfig) -> dict[str, Any]:
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": _TYPE + "transport_sockets.tls.v3.UpstreamTlsContext",
            "sni": tls.server_name,
            "common_tls_context": {
                "alpn_protocols": ["h2"],
                "tls_certificates": [
                    {
                        "certificate_chain": {"filename": str(tls.cert_file)},
                        "private_key": {"filename": str(tls.key_file)},
                    }
                ],
                "validation_context": {
                    "trusted_ca": {"filename": str(tls.ca_file)},
                    "match_typed_subject_alt_names": [
                        {"san_type": "DNS", "matcher": {"exact": tls.server_name}}
                    ],
                },
            },
        },
    }


def _processor_cluster(name: str, address: str, tls: ProcessorTlsConfig | None) -> dict[str, Any]:
    cluster: dict[str, Any] = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "0.25s",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": _TYPE + "upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        },
        # One gRPC stream per request: the default 1024 concurrent requests
        # would make Envoy fail open under load rather than wait.
        "circuit_breakers": {
            "thresholds": [{"max_requests": 100_000, "max_pending_requests": 100_000}]
        },
        "load_assignment": _load_assignment(name, address),
    }
    if tls is not None:
        cluster["transport_socket"] = _processor_tls(tls)
    return cluster


def _tls_socket(config: Config, backend: BackendConfig) -> dict[str, Any]:
    context: dict[str, Any] = {
        "@type": _TYPE + "transport_sockets.tls.v3.UpstreamTlsContext",
        "sni": backend.host.strip("[]"),
    }
    if not backend.insecure_skip_verify:
        # The chain must lead to a trusted CA *and* name this host: a trusted CA
        # alone would accept any site's valid certificate.
        context["common_tls_context"] = {
            "validation_context": {
                "trusted_ca": {"filename": str(backend.tls_ca_file or config.envoy.ca_bundle)},
                "match_typed_subject_alt_names": [
                    {
                        "san_type": "IP_ADDRESS" if _is_ip(backend.host) else "DNS",
                        "matcher": {"exact": backend.host.strip("[]")},
                    }
                ],
            }
        }
    return {"name": "envoy.transport_sockets.tls", "typed_config": context}


def _backend_headers(backend: BackendConfig) -> dict[str, Any]:
    """What Envoy changes in every request to this backend, whichever route sent it."""
    remove = [] if backend.forward_client_authorization else ["authorization"]
    out: dict[str, Any] = {}
    if backend.credential is not None:
        credential = backend.credential
        if credential.header not in remove:
            remove.append(credential.header)
        # Envoy reads the key from its own environment for each request: the
        # config file, and the admin config_dump, only ever hold the variable's name.
        prefix = credential.prefix.replace("%", "%%")
        out["request_headers_to_add"] = [
            {
                "header": {
                    "key": credential.header,
                    "value": f"{prefix}%ENVIRONMENT({credential.env})%",
                },
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            }
        ]
    if remove:
        out["request_headers_to_remove"] = remove
    return out


def _backend_cluster(config: Config, backend: BackendConfig) -> dict[str, Any]:
    host = backend.host
    cluster: dict[str, Any] = {
        "name": backend.name,
        "type": "STATIC" if _is_ip(host) else "STRICT_DNS",
        "connect_timeout": "1s",
        "load_assignment": _load_assignment(backend.name, backend.address),
        # No outlier ejection: where a backend is tried after another (a canary retried
        # on stable, fallbacks) each attempt must reach the backend its place names,
        # and an ejected backend would shift the first attempt onto the next one.
        "circuit_breakers": {
            "thresholds": [{"max_requests": 10_000, "max_pending_requests": 10_000}]
        },
    }
    if not _is_ip(host):
        # Most networks that reach a hosted API do so over IPv4.
        cluster["dns_lookup_family"] = "V4_PREFERRED"
    if backend.tls:
        cluster["transport_socket"] = _tls_socket(config, backend)
    return cluster


def _retry_policy(config: Config) -> dict[str, Any]:
    # Only failures where the request never reached a model: LLM calls are neither
    # idempotent nor cheap.
    return {
        "retry_on": "connect-failure,refused-stream,reset-before-request",
        "num_retries": config.envoy.retries,
    }


def _to_backend(config: Config, backend: BackendConfig) -> dict[str, Any]:
    """A route's forwarding to one backend, with that backend's Host and headers."""
    action = {
        "cluster": backend.name,
        "host_rewrite_literal": backend.host_header,
        "timeout": f"{config.envoy.upstream_timeout_s}s",
        "retry_policy": _retry_policy(config),
    }
    return {"route": action, **_backend_headers(backend)}


def _split(config: Config, route: RouteConfig) -> dict[str, Any]:
    """The route's stable split, picked by Envoy at random: only for requests switchyard
    did not route (fail-open), whose body nobody rewrote for a backend."""
    split = stable_split(route)
    if len(split) == 1:
        return _to_backend(config, config.backend(split[0][0]))
    clusters = []
    for name, weight in split:
        backend = config.backend(name)
        clusters.append(
            {
                "name": name,
                "weight": weight,
                "host_rewrite_literal": backend.host_header,
                **_backend_headers(backend),
            }
        )
    action = {
        "weighted_clusters": {"clusters": clusters},
        "timeout": f"{config.envoy.upstream_timeout_s}s",
        "retry_policy": _retry_policy(config),
    }
    return {"route": action}


def _header_match(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "string_match": {"exact": value}}


def _set_header(name: str, value: str) -> dict[str, Any]:
    return {
        "append": {
            "header": {"key": name, "value": value},
            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
        }
    }


def _shadow_variant(stable: dict[str, Any], route: RouteConfig) -> dict[str, Any]:
    """The stable route for a shadowed session: forwards alike and copies the request."""
    variant = {**stable, "name": f"{stable['name']}.shadowed"}
    variant["match"] = {
        "prefix": "/",
        "headers": [*stable["match"]["headers"], {"name": h.SHADOW, "present_match": True}],
    }
    variant["route"] = {
        **stable["route"],
        "request_mirror_policies": [
            # Every marked request: switchyard chose the sessions (by their hash).
            {
                "cluster": SHADOW_LISTENER,
                "disable_shadow_host_suffix_append": True,
                # The router removed switchyard's headers from the request before copying
                # it: the copy gets back what the shadow listener routes and rewrites on.
                "request_headers_mutations": [
                    _set_header(h.ROUTE, route.name),
                    _set_header(h.SHADOW, _decided(h.SHADOW)),
                ],
            }
        ],
    }
    return variant


@dataclass(frozen=True)
class Target:
    """Where switchyard may send a route's requests: a cohort's backend, and the backends
    Envoy tries after it (the canary's stable on a failure, the route's fallbacks)."""

    route: RouteConfig
    cohort: str
    backend: str
    retry_on: str | None
    """For a canary retried on stable: the stable backend (switchyard's h.RETRY_ON)."""

    @property
    def attempts(self) -> tuple[str, ...]:
        if self.retry_on is not None:
            return (self.backend, self.retry_on)
        if self.cohort == h.STABLE:
            return (self.backend, *(f.backend for f in self.route.fallbacks))
        return (self.backend,)

    @property
    def name(self) -> str:
        name = f"{self.route.name}.{self.cohort}.{self.backend}"
        return name if self.retry_on is None else f"{name}.{self.retry_on}"

    @property
    def cluster(self) -> str:
        """The cluster Envoy forwards to: the backend's, or the one that tries them in turn."""
        if len(self.attempts) == 1:
            return self.backend
        kind = RETRY_CLUSTER if self.retry_on is not None else FALLBACK_CLUSTER
        return ".".join((kind, self.route.name, *self.attempts))


def _targets(route: RouteConfig) -> list[Target]:
    stable = [backend for backend, _ in stable_split(route)]
    targets = []
    if route.canary is not None:
        canary = route.canary.backend
        if route.canary.retry_on_stable:
            targets += [Target(route, h.CANARY, canary, backend) for backend in stable]
        else:
            targets.append(Target(route, h.CANARY, canary, None))
    return targets + [Target(route, h.STABLE, backend, None) for backend in stable]


def _forward(config: Config, target: Target) -> dict[str, Any]:
    """The target's route action: its first backend's Host and key, and when there are
    several attempts, their cluster and a retry policy that moves each to the next."""
    forward = _to_backend(config, config.backend(target.backend))
    if len(target.attempts) == 1:
        return forward
    forward["route"]["cluster"] = target.cluster
    if target.retry_on is not None:
        # Failures of the canary itself, not the client's mistakes (4xx).
        retry: dict[str, Any] = {"retry_on": "5xx,reset,connect-failure,refused-stream"}
    else:
        codes = [code for code in target.route.fallback_on if isinstance(code, int)]
        conditions = ["retriable-status-codes"] if codes else []
        if "connect" in target.route.fallback_on:
            conditions.append("connect-failure,refused-stream,reset")
        retry = {"retry_on": ",".join(conditions), "retriable_status_codes": codes}
    forward["route"]["retry_policy"] = {
        **retry,
        "num_retries": len(target.attempts) - 1,
        # The next attempt is another backend: no reason to wait Envoy's default 25 ms.
        "retry_back_off": {"base_interval": "0.001s", "max_interval": "0.005s"},
        # Each retry goes to the next backend (the next priority of the aggregate cluster).
        "retry_priority": {
            "name": "envoy.retry_priorities.previous_priorities",
            "typed_config": {
                "@type": _TYPE + "retry.priority.previous_priorities.v3.PreviousPrioritiesConfig",
                "update_frequency": 1,
            },
        },
    }
    return forward


def _attempts_cluster(config: Config, target: Target) -> dict[str, Any]:
    """Tries the target's backends in turn (Envoy's aggregate cluster): its upstream Lua
    rewrites each attempt for its backend (lua/attempts.lua)."""
    first = _attempt_fields(config.backend(target.backend))
    rows = ",\n".join(
        f"  [{index}] = {_lua_table(_attempt_fields(config.backend(name)))}"
        for index, name in enumerate(target.attempts[1:], start=2)
    )
    source = _lua("json_body") + _lua(
        "attempts",
        first=_lua_table({k: first[k] for k in ("name", "path_prefix", "query", "header")}),
        next=rows,
        backend_header=h.BACKEND,
    )
    limits: dict[str, Any] = {"max_requests": 10_000, "max_pending_requests": 10_000}
    if target.retry_on is not None and target.route.canary is not None:
        limits["retry_budget"] = {
            "budget_percent": {"value": target.route.canary.retry_budget_percent},
            "min_retry_concurrency": 5,
        }
    else:
        limits["max_retries"] = 10_000
    return {
        "name": target.cluster,
        "connect_timeout": "1s",
        "lb_policy": "CLUSTER_PROVIDED",
        "cluster_type": {
            "name": "envoy.clusters.aggregate",
            "typed_config": {
                "@type": _TYPE + "clusters.aggregate.v3.ClusterConfig",
                "clusters": list(target.attempts),
            },
        },
        "circuit_breakers": {"thresholds": [limits]},
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": _TYPE + "upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http_protocol_options": {}},
                "http_filters": [
                    _lua_filter("switchyard.attempts", source),
                    {
                        "name": "envoy.filters.http.upstream_codec",
                        "typed_config": {
                            "@type": _TYPE + "filters.http.upstream_codec.v3.UpstreamCodec"
                        },
                    },
                ],
            }
        },
    }


def _attempt_fields(backend: BackendConfig) -> dict[str, str]:
    """What an attempt on this backend changes in the request (lua/attempts.lua)."""
    adapter = BackendAdapter.from_config(backend)
    credential = backend.credential
    return {
        "name": backend.name,
        "model": json.dumps(adapter.model or "")[1:-1],
        "path_prefix": adapter.path_prefix,
        "query": adapter.query,
        "host": backend.host_header,
        "header": credential.header if credential else "",
        "key_env": credential.env if credential else "",
        "key_prefix": credential.prefix if credential else "",
    }


def _lua_table(fields: dict[str, str]) -> str:
    return "{" + ", ".join(f'{k} = "{_lua_string(v)}"' for k, v in fields.items()) + "}"


def _routed(config: Config) -> list[dict[str, Any]]:
    """One route per (switchyard route, cohort, backend), each with its variants."""
    routed: list[dict[str, Any]] = []
    for route in config.routes:
        # A cache fills from observed responses (extproc.cache): its route stays observed.
        quiet = route.canary is None and route.shadow is None and not route.cache.enabled
        for target in _targets(route):
            cohort = target.cohort
            headers = [
                _header_match(h.ROUTE, route.name),
                _header_match(h.COHORT, cohort),
                _header_match(h.UPSTREAM, target.backend),
            ]
            if target.retry_on is not None:
                headers.append(_header_match(h.RETRY_ON, target.retry_on))
            base: dict[str, Any] = {
                "name": target.name,
                "stat_prefix": f"{route.name}.{cohort}",
                "match": {"prefix": "/", "headers": headers},
                **_forward(config, target),
            }
            # A shadowed session's request matches first: it forwards alike and is copied.
            shadowed = route.shadow is not None and cohort == h.STABLE
            variants = [_shadow_variant(base, route), base] if shadowed else [base]
            routes: list[dict[str, Any]] = []
            if quiet and config.envoy.observe == "canaries":
                base["typed_per_filter_config"] = {OBSERVE_FILTER: DISABLED}
            elif sampling(config.envoy) and cohort == h.STABLE:
                # Observed only when switchyard marks the request (extproc.response.sampling):
                # each variant once more, with the observe filter on, ahead of it.
                for variant in variants:
                    marked = [*variant["match"]["headers"], _header_match(h.OBSERVE, "1")]
                    routes.append(
                        {
                            **variant,
                            "name": f"{variant['name']}.observed",
                            "match": {"prefix": "/", "headers": marked},
                        }
                    )
                    variant["typed_per_filter_config"] = {OBSERVE_FILTER: DISABLED}
            routed += [*routes, *variants]
    return routed


def _unrouted(config: Config, version: str) -> list[dict[str, Any]]:
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
            match: dict[str, Any] = {
                "prefix": prefix,
                "headers": [_header_match(":method", "POST")],
            }
            if index < len(split) - 1:
                match["runtime_fraction"] = {
                    "default_value": {
                        "numerator": below * 1_000_000 // total,
                        "denominator": "MILLION",
                    },
                    "runtime_key": f"switchyard.fail_open.{index}",
                }
            backend = config.backend(name)
            route = {
                "name": f"unrouted{prefix}.{name}",
                "stat_prefix": f"{FAIL_OPEN_ROUTE}{name}",
                "match": match,
                **_to_backend(config, backend),
                "typed_per_filter_config": {
                    ROUTING_FILTER: _stamped(version),
                    FAIL_OPEN_FILTER: _fail_open_rewrite(backend),
                    # Still this route after the routing filter: switchyard did not
                    # route it, so there is no route or cohort to observe it for.
                    OBSERVE_FILTER: DISABLED,
                    STREAM_USAGE_FILTER: LUA_DISABLED,
                },
            }
            routes.append(_with_clients(config, route))
    return [*routes, *_gateway_routes(config)]


_UNPROCESSED = {
    ROUTING_FILTER: DISABLED,
    FAIL_OPEN_FILTER: LUA_DISABLED,
    OBSERVE_FILTER: DISABLED,
    STREAM_USAGE_FILTER: LUA_DISABLED,
}
"""Neither switchyard's routing nor its observing: requests that are not chat completions."""


def _answer(status: int, body: dict[str, Any]) -> dict[str, Any]:
    """A JSON answer from Envoy itself: no backend is asked."""
    return {
        "direct_response": {
            "status": status,
            "body": {"inline_string": json.dumps(body, separators=(",", ":"))},
        },
        "response_headers_to_add": [
            {
                "header": {"key": "content-type", "value": "application/json"},
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            },
            {
                "header": {"key": h.BACKEND, "value": "switchyard"},
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            },
        ],
        "typed_per_filter_config": _UNPROCESSED,
    }


def model_names(config: Config) -> list[str]:
    """What GET /v1/models lists: every model a route matches on, then the default route's
    name, which stands for "let switchyard choose" (a model no route matches is routed by
    the other conditions, and each backend gets its own model name in the body)."""
    names = [model for route in config.routes if route.match for model in route.match.model or []]
    if config.default_route is not None:
        names.append(config.default_route)
    return list(dict.fromkeys(names))


def _gateway_routes(config: Config) -> list[dict[str, Any]]:
    """GET /v1/models answered here, the operator's passthrough paths, and a 404 for the
    rest: a path nobody opened never reaches a backend (with its provider key)."""
    models = {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "switchyard"}
            for name in model_names(config)
        ],
    }
    routes = [
        {
            "name": "models",
            "match": {"path": MODELS_PATH, "headers": [_header_match(":method", "GET")]},
            **_answer(200, models),
        }
    ]
    for passthrough in config.passthrough:
        forward = _to_backend(config, config.backend(passthrough.backend))
        routes.append(
            {
                "name": f"passthrough{passthrough.path}",
                "stat_prefix": "passthrough",
                "match": {"path_separated_prefix": passthrough.path},
                **forward,
                "typed_per_filter_config": _UNPROCESSED,
            }
        )
    routes = [_with_clients(config, route) for route in routes]
    opened = [f"POST {path}" for path in config.server.chat_paths]
    opened += [f"GET {MODELS_PATH}", *(p.path for p in config.passthrough)]
    not_found = {
        "error": {
            "message": f"Unknown request URL. This gateway serves {', '.join(opened)}.",
            "type": "invalid_request_error",
            "param": None,
            "code": "unknown_url",
        }
    }
    routes.append({"name": "not_found", "match": {"prefix": "/"}, **_answer(404, not_found)})
    return routes


def _fail_open_rewrite(backend: BackendConfig) -> dict[str, Any]:
    """The fail-open filter's script for one backend (lua/fail_open.lua)."""
    adapter = BackendAdapter.from_config(backend)
    source = _lua("json_body") + _lua(
        "fail_open",
        model=_lua_string(json.dumps(adapter.model or "")[1:-1]),
        path_prefix=_lua_string(adapter.path_prefix),
        query=_lua_string(adapter.query),
    )
    return {
        "@type": _TYPE + "filters.http.lua.v3.LuaPerRoute",
        "source_code": {"inline_string": source},
    }


def _lua_string(value: str) -> str:
    """Text for a double-quoted Lua string."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _stamped(version: str) -> dict[str, Any]:
    """The routing filter, told which config version this route table is."""
    metadata = [{"key": h.CONFIG_VERSION, "value": version}]
    return {
        "@type": EXT_PROC_PER_ROUTE_TYPE,
        "overrides": {"grpc_initial_metadata": metadata},
    }


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


def _ingress_routes(config: Config, version: str) -> dict[str, Any]:
    virtual_host: dict[str, Any] = {
        "name": VIRTUAL_HOST,
        "domains": ["*"],
        "request_headers_to_remove": _not_upstream(config),
        "response_headers_to_add": _response_headers(config),
        "routes": [*_unauthorized(config), *_routed(config), *_unrouted(config, version)],
    }
    if any(len(t.attempts) > 1 for route in config.routes for t in _targets(route)):
        # For the attempts' Lua (which backend an attempt is for) and for the observe
        # filter (an answer after a retry is counted apart).
        virtual_host["include_request_attempt_count"] = True
        virtual_host["include_attempt_count_in_response"] = True
    # A backend's own credential (a route's header) is added after the host's removals.
    return {
        "name": INGRESS_ROUTES,
        "most_specific_header_mutations_wins": True,
        "virtual_hosts": [virtual_host],
    }


def _shadow_routes(config: Config, version: str) -> dict[str, Any]:
    """The internal listener's routes: each shadowed route's copies to its shadow backend."""
    routes = []
    for route in config.routes:
        if route.shadow is None:
            continue
        backend = config.backend(route.shadow.backend)
        headers = _backend_headers(backend)
        shadow_route: dict[str, Any] = {
            "name": f"{route.name}.shadow",
            "match": {"prefix": "/", "headers": [_header_match(h.ROUTE, route.name)]},
            "route": {
                "cluster": backend.name,
                "host_rewrite_literal": backend.host_header,
                "timeout": f"{config.envoy.upstream_timeout_s}s",
            },
            **headers,
            # For the observing filter, fixed here: a copy is never counted as stable, not
            # even when the routing filter fails open or is skipped.
            "response_headers_to_add": [
                {
                    "header": {"key": name, "value": value},
                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                }
                for name, value in ((h.ROUTE, route.name), (h.COHORT, h.SHADOW_COHORT))
            ],
        }
        involved = [backend, *(config.backend(w.backend) for w in route.backends)]
        if any(b.model or b.path_prefix or b.query for b in involved):
            shadow_route["typed_per_filter_config"] = {ROUTING_FILTER: _stamped(version)}
        else:
            # The copy is already what the shadow expects: no stream to switchyard for it.
            shadow_route["typed_per_filter_config"] = {ROUTING_FILTER: DISABLED}
        routes.append(shadow_route)
    unknown = {
        "name": "unknown",
        "match": {"prefix": "/"},
        "direct_response": {"status": 404},
        "typed_per_filter_config": {ROUTING_FILTER: DISABLED, OBSERVE_FILTER: DISABLED},
    }
    virtual_host: dict[str, Any] = {
        "name": "shadow",
        "domains": ["*"],
        "request_headers_to_remove": _not_upstream(config),
        "response_headers_to_add": [
            {
                "header": {"key": h.BACKEND, "value": "%UPSTREAM_CLUSTER%"},
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            },
            UPSTREAM_TIME_HEADER,
        ],
    }
    virtual_host["routes"] = [*routes, unknown]
    return {
        "name": SHADOW_ROUTES,
        "most_specific_header_mutations_wins": True,
        "virtual_hosts": [virtual_host],
    }


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


def _forward_only(names: list[str]) -> dict[str, Any]:
    # Fewer bytes per gRPC message for Envoy to encode and switchyard to parse.
    return {"allowed_headers": {"patterns": [{"exact": name} for name in names]}}


def _routing_filter(config: Config) -> dict[str, Any]:
    return {
        "name": ROUTING_FILTER,
        "typed_config": {
            "@type": EXT_PROC_TYPE,
            "grpc_service": {"envoy_grpc": {"cluster_name": EXT_PROC_CLUSTER}},
            "failure_mode_allow": config.envoy.failure_mode_allow,
            "message_timeout": f"{config.envoy.message_timeout_ms / 1000}s",
            "processing_mode": {
                "request_header_mode": "SEND",
                "response_header_mode": "SKIP",
                "request_body_mode": "BUFFERED",
                "response_body_mode": "NONE",
                "request_trailer_mode": "SKIP",
                "response_trailer_mode": "SKIP",
            },
            "allow_mode_override": True,
            # The body follows the headers at once: one round trip instead of two.
            "send_body_without_waiting_for_header_response": True,
            # Every request header: header routes and session sources name any header and
            # reload without a new bootstrap, so no fixed list here could stay right.
            "stat_prefix": "switchyard",
        },
    }


def _observe_filter(config: Config) -> dict[str, Any]:
    return {
        "name": OBSERVE_FILTER,
        "typed_config": {
            "@type": EXT_PROC_TYPE,
            "grpc_service": {"envoy_grpc": {"cluster_name": OBSERVE_CLUSTER}},
            "observability_mode": True,
            "deferred_close_timeout": f"{config.envoy.observe_close_timeout_ms / 1000}s",
            "failure_mode_allow": True,
            "processing_mode": {
                # Everything switchyard needs is in the response: one message fewer.
                "request_header_mode": "SKIP",
                "response_header_mode": "SEND",
                "request_body_mode": "NONE",
                "response_body_mode": "STREAMED",
                "request_trailer_mode": "SKIP",
                "response_trailer_mode": "SKIP",
            },
            "forward_rules": _forward_only(observed_headers(config)),
            "stat_prefix": "observe",
        },
    }


def _uses_cache(config: Config) -> bool:
    return any(route.cache.enabled for route in config.routes)


CLIENT_AUTH_FILTER = "switchyard.client_auth"


def _client_auth_filter(config: Config) -> list[dict[str, Any]]:
    """With auth: the client key check, in Envoy (lua/client_auth.lua), so that it holds
    while switchyard is down and costs no round trip; the keys come with the routes."""
    if config.auth is None:
        return []
    return [_lua_filter(CLIENT_AUTH_FILTER, _client_auth_source(None))]


def _client_auth_source(clients: dict[str, str] | None) -> str:
    """The check's Lua, with the key table (digest to name; both checked by read_keys_file
    to be safe in a Lua string) or nil: no check."""
    table = "nil"
    if clients is not None:
        table = "{" + ", ".join(f'["{d}"] = "{n}"' for d, n in clients.items()) + "}"
    return _lua(
        "client_auth",
        clients=table,
        client_header=h.CLIENT_NAME,
        reason_header=h.AUTH_FAILURE,
    )


def _with_clients(config: Config, route: dict[str, Any]) -> dict[str, Any]:
    """A route a request first matches, with the client check's code and key table."""
    if config.auth is None:
        return route
    check = {
        "@type": _TYPE + "filters.http.lua.v3.LuaPerRoute",
        "source_code": {"inline_string": _client_auth_source(config.auth.clients)},
    }
    return {
        **route,
        "typed_per_filter_config": {**route["typed_per_filter_config"], CLIENT_AUTH_FILTER: check},
    }


UNAUTHORIZED = {
    "missing": "No API key provided: send Authorization: Bearer <key> (or x-api-key).",
    "wrong": "Incorrect API key provided.",
}


def _unauthorized(config: Config) -> list[dict[str, Any]]:
    """The 401s for the requests the client key check refused (first in the table: the
    check marks them, whatever path they were for). The observing filter sees them, so
    switchyard counts them by reason."""
    if config.auth is None:
        return []
    routes = []
    for reason, message in UNAUTHORIZED.items():
        error = {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
        }
        answer = _answer(401, error)
        answer["response_headers_to_add"] += [
            {"header": {"key": "www-authenticate", "value": "Bearer"}},
            {"header": {"key": h.AUTH_FAILURE, "value": reason}},
        ]
        processing = {ROUTING_FILTER: DISABLED, STREAM_USAGE_FILTER: LUA_DISABLED}
        answer["typed_per_filter_config"] = processing
        match = {"prefix": "/", "headers": [_header_match(h.AUTH_FAILURE, reason)]}
        routes.append({"name": f"unauthorized.{reason}", "match": match, **answer})
    return routes


DECISION_FILTER = "switchyard.decision"
DECIDED = (h.ROUTE, h.COHORT, h.LABEL, h.CACHE, h.CACHE_FILL, h.SHADOW)
"""Request headers switchyard sets whose values outlive the request headers (in the
stream's dynamic metadata, under DECISION_FILTER): for the client's response and for
a shadow copy."""


def _decision_filter() -> dict[str, Any]:
    kept = ", ".join(f'"{name}"' for name in DECIDED)
    return _lua_filter(DECISION_FILTER, _lua("decision", kept=kept, namespace=DECISION_FILTER))


def _decided(name: str) -> str:
    """A header value that reads what switchyard set in the request header `name`."""
    return f"%DYNAMIC_METADATA({DECISION_FILTER}:{name})%"


UPSTREAM_TIME_HEADER = {
    # What Envoy's router would say with its debug headers on: from the request's first
    # byte sent to the response's first byte received, in milliseconds.
    "header": {
        "key": "x-envoy-upstream-service-time",
        "value": "%COMMON_DURATION(US_TX_BEG:US_RX_BEG:ms)%",
    },
    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
}


def _response_headers(config: Config) -> list[dict[str, Any]]:
    """What Envoy's route adds to every response: switchyard's decision, as the decision
    filter kept it from the request headers switchyard set (the router removes those
    before the backend), Envoy's request id (already on the response the observing
    filter sees, which joins quality signals by it: the HCM adds it only after the filters),
    and the backend that answered."""
    copied = [(name, _decided(name)) for name in (h.ROUTE, h.COHORT, h.LABEL)]
    copied.append((h.REQUEST_ID, f"%REQ({h.REQUEST_ID})%"))
    added = [
        {
            "header": {"key": name, "value": value},
            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
        }
        for name, value in copied
    ]
    added.append(UPSTREAM_TIME_HEADER)
    added.append(
        {
            # Absent only from answers switchyard gave itself, which say so.
            "header": {"key": h.BACKEND, "value": "%UPSTREAM_CLUSTER%"},
            "append_action": "ADD_IF_ABSENT",
        }
    )
    if _uses_cache(config):
        added += [
            {
                # A hit (switchyard's own answer) already says so.
                "header": {"key": h.CACHE, "value": _decided(h.CACHE)},
                "append_action": "ADD_IF_ABSENT",
            },
            {
                # For the observing filter; the request guard's Lua removes it afterwards.
                "header": {"key": h.CACHE_FILL, "value": _decided(h.CACHE_FILL)},
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            },
        ]
    return added


@dataclass(frozen=True)
class EnvoyResources:
    """What Envoy takes from switchyard over xDS, by resource name."""

    version: str
    clusters: dict[str, dict[str, Any]]
    listeners: dict[str, dict[str, Any]]
    route_configs: dict[str, dict[str, Any]]

    def keeping(self, older: EnvoyResources) -> EnvoyResources:
        """This version, plus what only `older` has: requests Envoy matched with the older
        route table are still on their way to the clusters (and the shadow listener) it
        names."""
        return EnvoyResources(
            self.version,
            clusters={**older.clusters, **self.clusters},
            listeners={**older.listeners, **self.listeners},
            route_configs={**older.route_configs, **self.route_configs},
        )


def resources(config: Config) -> EnvoyResources:
    """The listeners, routes and clusters for this config."""
    if not config.routes:
        raise ConfigError(
            "config",
            [ConfigIssue("routes", "expected at least one route to render Envoy config")],
        )
    filters = [
        _lua_filter(
            "switchyard.request_guard",
            _lua(
                "request_guard",
                internal=", ".join(f'"{name}"' for name in h.INTERNAL),
                chat_paths=", ".join(f'"{path}"' for path in config.server.chat_paths),
                max_body=str(config.server.max_body_bytes),
                backend_header=h.BACKEND,
                client_header=h.CLIENT,
            )
            + (_lua("cache_fill", cache_fill_header=h.CACHE_FILL) if _uses_cache(config) else ""),
        ),
        *_client_auth_filter(config),
        _routing_filter(config),
        # No script of its own: only the fail-open routes give it one.
        {"name": FAIL_OPEN_FILTER, "typed_config": {"@type": LUA_TYPE}},
        _decision_filter(),
        _lua_filter(STREAM_USAGE_FILTER, _lua("stream_usage", header=h.STRIP_USAGE)),
    ]
    if config.envoy.observe != "off":
        filters.append(_observe_filter(config))
    version = config_version(config)
    listeners = {INGRESS_LISTENER: _ingress_listener(config, filters)}
    clusters = {backend.name: _backend_cluster(config, backend) for backend in config.backends}
    for route in config.routes:
        for target in _targets(route):
            if len(target.attempts) > 1:
                clusters[target.cluster] = _attempts_cluster(config, target)
    tables = {INGRESS_ROUTES: _ingress_routes(config, version)}
    if any(route.shadow for route in config.routes):
        listeners[SHADOW_LISTENER] = _shadow_listener(config)
        clusters[SHADOW_LISTENER] = _shadow_cluster()
        tables[SHADOW_ROUTES] = _shadow_routes(config, version)
    return EnvoyResources(version, clusters, listeners, tables)


def config_version(config: Config) -> str:
    """A short digest of the validated config: replicas with the same config agree on it."""
    return hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:12]


def _static_clusters(config: Config) -> list[dict[str, Any]]:
    tls = config.envoy.processor_tls
    address = config.processor_address
    clusters = [
        _processor_cluster(EXT_PROC_CLUSTER, address, tls),
        # Its own cluster: observe streams stay open a while after each request, and
        # would otherwise count against the routing streams' circuit breaker.
        _processor_cluster(OBSERVE_CLUSTER, address, tls),
        _processor_cluster(XDS_CLUSTER, address, tls),
    ]
    if config.envoy.stats_listen is not None:
        clusters.append(
            {
                "name": ADMIN_CLUSTER,
                "type": "STATIC",
                "connect_timeout": "0.25s",
                "load_assignment": _load_assignment(ADMIN_CLUSTER, config.envoy.admin),
            }
        )
    return clusters


def _static(config: Config) -> dict[str, Any]:
    """The parts of the bootstrap that do not come over xDS."""
    bootstrap: dict[str, Any] = {
        "node": {"id": "envoy", "cluster": NODE_CLUSTER},
        "admin": {"address": _socket_address(config.envoy.admin)},
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
                "typed_config": {
                    "@type": _TYPE + "bootstrap.internal_listener.v3.InternalListener"
                },
            }
        ],
    }
    if config.analysis.source == "envoy":
        # Histograms reach the admin's view only when Envoy merges them (default 5 s).
        bootstrap["stats_flush_interval"] = f"{config.analysis.interval_s}s"
    return bootstrap


def bootstrap(config: Config) -> dict[str, Any]:
    """What `switchyard envoy` writes: Envoy's static part, the rest from switchyard (ADS)."""
    resources(config)  # refuses what switchyard could not serve, before Envoy starts
    # initial_fetch_timeout 0: Envoy is not ready (GET /ready) until switchyard has served it
    # a config, rather than live with no listener after 15 s.
    ads = {"ads": {}, "resource_api_version": "V3", "initial_fetch_timeout": "0s"}
    listeners = []
    if config.envoy.stats_listen is not None:
        listeners.append(_stats_listener(config.envoy.stats_listen))
    return {
        **_static(config),
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "grpc_services": [
                    {
                        "envoy_grpc": {
                            "cluster_name": XDS_CLUSTER,
                            # Back within a second of switchyard's restart; Envoy serves
                            # its last config meanwhile.
                            "retry_policy": {
                                "retry_back_off": {"base_interval": "0.1s", "max_interval": "1s"}
                            },
                        }
                    }
                ],
                "set_node_on_first_message_only": True,
            },
            "cds_config": ads,
            "lds_config": ads,
        },
        "static_resources": {"listeners": listeners, "clusters": _static_clusters(config)},
    }


def render(config: Config) -> dict[str, Any]:
    """The whole configuration as one static bootstrap (the resources inlined, no xDS):
    for `envoy --mode validate`, and for an Envoy that cannot reach switchyard's xDS."""
    served = resources(config)
    tables = served.route_configs
    listeners = [_inline_routes(listener, tables) for listener in served.listeners.values()]
    if config.envoy.stats_listen is not None:
        listeners.append(_stats_listener(config.envoy.stats_listen))
    return {
        **_static(config),
        "static_resources": {
            "listeners": listeners,
            "clusters": [*_static_clusters(config), *served.clusters.values()],
        },
    }


def _inline_routes(listener: dict[str, Any], tables: dict[str, dict[str, Any]]) -> dict[str, Any]:
    chains = []
    for chain in listener["filter_chains"]:
        filters = []
        for network_filter in chain["filters"]:
            hcm = dict(network_filter["typed_config"])
            hcm["route_config"] = tables[hcm.pop("rds")["route_config_name"]]
            filters.append({**network_filter, "typed_config": hcm})
        chains.append({**chain, "filters": filters})
    return {**listener, "filter_chains": chains}


def _shadow_cluster() -> dict[str, Any]:
    return {
        "name": SHADOW_LISTENER,
        "connect_timeout": "0.25s",
        "load_assignment": {
            "cluster_name": SHADOW_LISTENER,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": {
                                    "envoy_internal_address": {
                                        "server_listener_name": SHADOW_LISTENER
                                    }
                                }
                            }
                        }
                    ]
                }
            ],
        },
    }


def _shadow_listener(config: Config) -> dict[str, Any]:
    """Where Envoy sends shadow copies: reachable from Envoy itself only (no socket)."""
    hcm = _hcm("shadow", SHADOW_ROUTES, [_routing_filter(config), _observe_filter(config)])
    return {
        "name": SHADOW_LISTENER,
        "internal_listener": {},
        "per_connection_buffer_limit_bytes": config.server.max_body_bytes * BUFFER_FACTOR,
        "filter_chains": [{"filters": [hcm]}],
    }


def _ingress_listener(config: Config, filters: list[dict[str, Any]]) -> dict[str, Any]:
    hcm = _hcm(
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
        "address": _socket_address(config.envoy.listen),
        "per_connection_buffer_limit_bytes": config.server.max_body_bytes * BUFFER_FACTOR,
        "filter_chains": [{"filters": [hcm]}],
    }


UPSTREAM_FAILURE_FLAGS = ["UF", "UH", "URX", "UO", "UT", "UC", "UMSDR"]
"""Envoy's response flags for an answer it made because no backend answered: connection
failure, no healthy host, retries exhausted, overflow, timeout, reset, stream duration."""


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


def _stats_listener(address: str) -> dict[str, Any]:
    """Prometheus and probes reach these admin paths here; the admin itself stays on loopback."""
    allowed = [
        {
            "match": {"path": path, "headers": [_header_match(":method", "GET")]},
            "route": {"cluster": ADMIN_CLUSTER, "timeout": "10s"},
        }
        for path in STATS_PATHS
    ]
    not_found = {
        "match": {"prefix": "/"},
        "direct_response": {"status": 404, "body": {"inline_string": "not found\n"}},
    }
    hcm = {
        "@type": HCM_TYPE,
        "stat_prefix": "stats_listener",
        "route_config": {
            "name": "stats",
            "virtual_hosts": [{"name": "stats", "domains": ["*"], "routes": [*allowed, not_found]}],
        },
        "http_filters": [ROUTER_FILTER],
    }
    return {
        "name": "stats",
        "address": _socket_address(address),
        "filter_chains": [
            {
                "filters": [
                    {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}
                ]
            }
        ],
    }
