"""Renders Envoy's bootstrap from the same Config the server runs: `switchyard envoy`.

A pure function of the Config: no environment reads, no defaults of its own.
The request path it builds, filter by filter:

1. a Lua filter answers chat requests whose content-length is over
   server.max_body_bytes with switchyard's JSON 413 (before Envoy buffers
   anything), drops client-sent switchyard headers and clears the route
   cache, so a request with spoofed headers is routed as if it had none
   (which matters when switchyard is down and Envoy fails open), and hands
   switchyard the client's address (x-switchyard-client) for its session
   fingerprint, as Envoy established it from the peer and the trusted
   x-forwarded-for hops;
2. the routing ext_proc filter sends request headers and the buffered body
   to switchyard, which sets x-switchyard-route / -cohort / -sticky, rewrites
   the body for the backend that will answer and clears the route cache;
   a Lua filter then removes from a stream the usage event switchyard asked
   the backend for on the client's behalf;
3. the observing ext_proc filter (observability mode) shows switchyard each
   response without delaying it;
4. the router: one route per (switchyard route, cohort) matched on those
   headers, forwarding with weighted_clusters keyed by the sticky header;
   anything without them goes to the default route. A route with a shadow
   has a variant for the sessions switchyard marked with the shadow header:
   it forwards the same way and copies the request (request_mirror_policies)
   to an internal listener, where the same routing filter rewrites the copy
   for the shadow backend and the observing filter records its answer as
   cohort `shadow`. Envoy drops the copy's answer and never waits for it.

Envoy's admin interface stays on loopback (the config refuses anything else);
a separate stats listener passes GET /stats/prometheus and GET /ready on to it
for Prometheus and probes, and answers everything else with 404.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from extproc import headers as h
from extproc.config import BackendConfig, Config, ProcessorTlsConfig, RouteConfig
from extproc.errors import ConfigError, ConfigIssue
from extproc.rollout.sampling import sampling
from extproc.upstream import stable_split

EXT_PROC_CLUSTER = "_switchyard_ext_proc"
OBSERVE_CLUSTER = "_switchyard_observe"
ADMIN_CLUSTER = "_switchyard_admin"
STATS_PATHS = ("/stats/prometheus", "/ready")
"""The admin paths the stats listener passes on, GET only: read-only and free of secrets."""
ROUTING_FILTER = "switchyard.route"
STREAM_USAGE_FILTER = "switchyard.stream_usage"
OBSERVE_FILTER = "switchyard.observe"
HCM_STAT_PREFIX = "ingress"
VIRTUAL_HOST = "switchyard"
SHADOW_LISTENER = "_switchyard_shadow"
"""Internal listener (no socket) and the cluster that reaches it: where shadow copies go."""
BUFFER_FACTOR = 2
"""Envoy buffers up to twice server.max_body_bytes, so that switchyard answers a
body of unannounced length up to that size with its own 413; beyond it, Envoy's
buffer limit answers with a plain 413."""

_TYPE = "type.googleapis.com/envoy.extensions."
EXT_PROC_TYPE = _TYPE + "filters.http.ext_proc.v3.ExternalProcessor"
EXT_PROC_PER_ROUTE_TYPE = _TYPE + "filters.http.ext_proc.v3.ExtProcPerRoute"
DISABLED = {"@type": EXT_PROC_PER_ROUTE_TYPE, "disabled": True}
LUA_DISABLED = {"@type": _TYPE + "filters.http.lua.v3.LuaPerRoute", "disabled": True}

_REQUEST_LUA = """
local internal = {%(internal)s}
local chat_paths = {%(chat_paths)s}
local max_body = %(max_body)d

local function is_chat(path)
  for _, prefix in ipairs(chat_paths) do
    if string.sub(path, 1, #prefix) == prefix then
      return true
    end
  end
  return false
end

function envoy_on_request(handle)
  local headers = handle:headers()
  local length = tonumber(headers:get("content-length") or "")
  if length ~= nil and length > max_body and is_chat(headers:get(":path") or "") then
    handle:respond(
      {[":status"] = "413", ["content-type"] = "application/json",
       ["%(backend_header)s"] = "switchyard"},
      string.format('{"error": {"type": "request_too_large", "code": "request_too_large", '
        .. '"message": "request body is %%d bytes; this deployment accepts at most %%d"}}',
        length, max_body))
    return
  end
  local found = false
  for _, name in ipairs(internal) do
    if headers:get(name) ~= nil then
      headers:remove(name)
      found = true
    end
  end
  if found then
    handle:clearRouteCache()
  end
  -- The client's address as Envoy established it (peer, or x-forwarded-for after the
  -- trusted hops), without the port, for the session fingerprint; replaces any sent.
  local address = handle:streamInfo():downstreamRemoteAddress()
  headers:replace("%(client_header)s",
    string.match(address, "^%%[(.+)%%]:%%d+$") or string.match(address, "^(.+):%%d+$") or address)
end
%(on_response)s"""

_CACHE_FILL_LUA = """
-- The observing filter has read the cache-fill token by now: the client never sees it.
function envoy_on_response(handle)
  handle:headers():remove("%s")
end
"""


_STREAM_USAGE_LUA = """
-- Placed after the routing filter: it sees the header switchyard set when it
-- asked a backend for a stream's usage the client did not ask for. The
-- observing filter (closer to the router) sees the usage event first; this
-- filter removes it from what the client receives.
function envoy_on_request(handle)
  local headers = handle:headers()
  if headers:get("%(header)s") ~= nil then
    headers:remove("%(header)s")
    handle:streamInfo():dynamicMetadata():set("switchyard", "strip_usage", "1")
  end
end

local function next_break(data, start)
  local lf = string.find(data, "\\n\\n", start, true)
  local crlf = string.find(data, "\\r\\n\\r\\n", start, true)
  if crlf ~= nil and (lf == nil or crlf < lf) then
    return crlf, crlf + 3
  end
  if lf ~= nil then
    return lf, lf + 1
  end
  return nil, nil
end

local function is_usage_event(event)
  return string.find(event, '"usage"', 1, true) ~= nil
    and string.find(event, '"choices"%%s*:%%s*%%[%%s*%%]') ~= nil
end

function envoy_on_response(handle)
  local metadata = handle:streamInfo():dynamicMetadata():get("switchyard")
  if metadata == nil or metadata["strip_usage"] == nil then
    return
  end
  -- An error answer (JSON) passes as it is.
  local headers = handle:headers()
  local content_type = headers:get("content-type") or ""
  if string.find(content_type, "text/event-stream", 1, true) ~= 1 then
    return
  end
  -- The body gets shorter: a length the backend announced would no longer hold.
  headers:remove("content-length")
  -- SSE events end with a blank line; an event split across chunks waits for its end
  -- (an unterminated last event is dropped, as an SSE client would drop it).
  local carry = ""
  for chunk in handle:bodyChunks() do
    local data = carry .. chunk:getBytes(0, chunk:length())
    local kept = {}
    local start = 1
    while true do
      local _, stop = next_break(data, start)
      if stop == nil then
        break
      end
      local event = string.sub(data, start, stop)
      if not is_usage_event(event) then
        kept[#kept + 1] = event
      end
      start = stop + 1
    end
    carry = string.sub(data, start)
    chunk:setBytes(table.concat(kept))
  end
end
"""


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
        # Ejects a host that keeps failing; with every host out Envoy still
        # sends traffic (panic threshold), so a one-host backend is not cut off.
        "outlier_detection": {
            "consecutive_5xx": 5,
            "consecutive_gateway_failure": 3,
            "interval": "5s",
            "base_ejection_time": "15s",
            "max_ejection_percent": 100,
        },
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


def _forward(config: Config, route: RouteConfig, *, canary: bool) -> dict[str, Any]:
    """The route's action, and for a single backend the route-level header changes."""
    action: dict[str, Any] = {
        "timeout": f"{config.envoy.upstream_timeout_s}s",
        "retry_policy": {
            # Only failures where the request never reached a model: LLM calls
            # are neither idempotent nor cheap.
            "retry_on": "connect-failure,refused-stream,reset-before-request",
            "num_retries": config.envoy.retries,
        },
    }
    split = stable_split(route)
    if canary:
        assert route.canary is not None
        split = [(route.canary.backend, 1)]
    if len(split) == 1:
        backend = config.backend(split[0][0])
        action["cluster"] = backend.name
        action["host_rewrite_literal"] = backend.host_header
        return {"route": action, **_backend_headers(backend)}
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
    action["weighted_clusters"] = {
        "clusters": clusters,
        # The session's sticky value picks the cluster (value modulo the total
        # weight): the same session, the same backend, on every replica, and the
        # backend switchyard rewrote the body for (extproc.upstream).
        "header_name": h.STICKY,
    }
    return {"route": action}


def _header_match(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "string_match": {"exact": value}}


def _shadow_variant(stable: dict[str, Any], route: RouteConfig) -> dict[str, Any]:
    """The stable route for a shadowed session: forwards alike and copies the request."""
    variant = {**stable, "name": f"{route.name}.shadowed"}
    variant["match"] = {
        "prefix": "/",
        "headers": [
            _header_match(h.ROUTE, route.name),
            _header_match(h.COHORT, h.STABLE),
            {"name": h.SHADOW, "present_match": True},
        ],
    }
    variant["route"] = {
        **stable["route"],
        "request_mirror_policies": [
            # Every marked request: switchyard chose the sessions (by their hash).
            {"cluster": SHADOW_LISTENER, "disable_shadow_host_suffix_append": True}
        ],
    }
    return variant


def _shadow_routes(config: Config) -> list[dict[str, Any]]:
    """The internal listener's routes: each shadowed route's copies to its shadow backend."""
    routes = []
    for route in config.routes:
        if route.shadow is None:
            continue
        backend = config.backend(route.shadow.backend)
        headers = _backend_headers(backend)
        # Set here too, so that a copy is never counted as stable (not even when the
        # routing filter fails open or is skipped).
        headers["request_headers_to_add"] = [
            {
                "header": {"key": h.COHORT, "value": h.SHADOW_COHORT},
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            },
            *headers.get("request_headers_to_add", []),
        ]
        shadow_route: dict[str, Any] = {
            "name": f"{route.name}.shadow",
            "match": {"prefix": "/", "headers": [_header_match(h.ROUTE, route.name)]},
            "route": {
                "cluster": backend.name,
                "host_rewrite_literal": backend.host_header,
                "timeout": f"{config.envoy.upstream_timeout_s}s",
            },
            **headers,
        }
        involved = [backend, *(config.backend(w.backend) for w in route.backends)]
        if not any(b.model or b.path_prefix or b.query for b in involved):
            # The copy is already what the shadow expects: no stream to switchyard for it.
            shadow_route["typed_per_filter_config"] = {ROUTING_FILTER: DISABLED}
        routes.append(shadow_route)
    routes.append(
        {
            "name": "unknown",
            "match": {"prefix": "/"},
            "direct_response": {"status": 404},
            "typed_per_filter_config": {ROUTING_FILTER: DISABLED, OBSERVE_FILTER: DISABLED},
        }
    )
    return routes


def _routes(config: Config) -> list[dict[str, Any]]:
    routes: list[dict[str, Any]] = []
    for route in config.routes:
        if route.canary is not None:
            routes.append(
                {
                    "name": f"{route.name}.canary",
                    "stat_prefix": f"{route.name}.canary",
                    "match": {
                        "prefix": "/",
                        "headers": [
                            _header_match(h.ROUTE, route.name),
                            _header_match(h.COHORT, h.CANARY),
                        ],
                    },
                    **_forward(config, route, canary=True),
                }
            )
        stable: dict[str, Any] = {
            "name": f"{route.name}.stable",
            "stat_prefix": f"{route.name}.stable",
            "match": {"prefix": "/", "headers": [_header_match(h.ROUTE, route.name)]},
            **_forward(config, route, canary=False),
        }
        # A shadowed session's request matches first: it forwards alike and is copied.
        variants = [stable] if route.shadow is None else [_shadow_variant(stable, route), stable]
        # A cache fills from observed responses (extproc.cache): its route stays observed.
        quiet = route.canary is None and route.shadow is None and not route.cache.enabled
        if quiet and config.envoy.observe == "canaries":
            stable["typed_per_filter_config"] = {OBSERVE_FILTER: DISABLED}
        elif sampling(config.envoy):
            # Observed only when switchyard marks the request (extproc.rollout.sampling):
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
        routes.extend(variants)
    assert config.default_route is not None
    default = config.route(config.default_route)
    # Requests switchyard has not routed (yet, or at all when it is down).
    for prefix in config.server.chat_paths:
        routes.append(
            {
                "name": f"unrouted{prefix}",
                "stat_prefix": "unrouted",
                "match": {"prefix": prefix},
                **_forward(config, default, canary=False),
                # Still this route after the routing filter: switchyard did not route
                # it (fail-open), so there is no route or cohort to observe it for.
                "typed_per_filter_config": {
                    OBSERVE_FILTER: DISABLED,
                    STREAM_USAGE_FILTER: LUA_DISABLED,
                },
            }
        )
    routes.append(
        {
            "name": "passthrough",
            "stat_prefix": "passthrough",
            "match": {"prefix": "/"},
            **_forward(config, default, canary=False),
            "typed_per_filter_config": {
                ROUTING_FILTER: DISABLED,
                OBSERVE_FILTER: DISABLED,
                STREAM_USAGE_FILTER: LUA_DISABLED,
            },
        }
    )
    return routes


def observed_headers(config: Config) -> list[str]:
    """The response headers extproc.rollout.observe reads."""
    names = [":status", h.ROUTE, h.COHORT, h.BACKEND, "x-envoy-upstream-service-time"]
    names.append(h.REQUEST_ID)  # joins quality signals to the request
    if any(route.cache.enabled for route in config.routes):
        names += ["content-type", h.CACHE, h.CACHE_FILL]  # extproc.cache fills
    if config.quality.score_header:
        names.append(config.quality.score_header)
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


def _response_headers(config: Config) -> list[dict[str, Any]]:
    """What Envoy's route adds to every response: switchyard's decision, copied from the
    request headers switchyard set, Envoy's request id (already on the response the observing
    filter sees, which joins quality signals by it: the HCM adds it only after the filters),
    and the backend that answered."""
    copied = [h.ROUTE, h.COHORT, h.LABEL, h.REQUEST_ID]
    added = [
        {
            "header": {"key": name, "value": f"%REQ({name})%"},
            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
        }
        for name in copied
    ]
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
                "header": {"key": h.CACHE, "value": f"%REQ({h.CACHE})%"},
                "append_action": "ADD_IF_ABSENT",
            },
            {
                # For the observing filter; the request guard's Lua removes it afterwards.
                "header": {"key": h.CACHE_FILL, "value": f"%REQ({h.CACHE_FILL})%"},
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            },
        ]
    return added


def render(config: Config) -> dict[str, Any]:
    """The Envoy bootstrap for this config, as a dict ready for YAML or JSON."""
    if not config.routes:
        raise ConfigError(
            "config",
            [ConfigIssue("routes", "expected at least one route to render Envoy config")],
        )
    request_lua = _REQUEST_LUA % {
        "internal": ", ".join(f'"{name}"' for name in h.INTERNAL),
        "chat_paths": ", ".join(f'"{path}"' for path in config.server.chat_paths),
        "max_body": config.server.max_body_bytes,
        "backend_header": h.BACKEND,
        "client_header": h.CLIENT,
        "on_response": _CACHE_FILL_LUA % h.CACHE_FILL if _uses_cache(config) else "",
    }
    http_filters: list[dict[str, Any]] = [
        {
            "name": "switchyard.request_guard",
            "typed_config": {
                "@type": _TYPE + "filters.http.lua.v3.Lua",
                "default_source_code": {"inline_string": request_lua},
            },
        },
        _routing_filter(config),
        {
            "name": STREAM_USAGE_FILTER,
            "typed_config": {
                "@type": _TYPE + "filters.http.lua.v3.Lua",
                "default_source_code": {
                    "inline_string": _STREAM_USAGE_LUA % {"header": h.STRIP_USAGE}
                },
            },
        },
    ]
    if config.envoy.observe != "off":
        http_filters.append(_observe_filter(config))
    http_filters.append(
        {
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": _TYPE + "filters.http.router.v3.Router"},
        }
    )
    hcm = {
        "@type": _TYPE + "filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": HCM_STAT_PREFIX,
        # Envoy is the edge: the client's address is the peer's, or taken from
        # x-forwarded-for only past the proxies the operator says are in front.
        "use_remote_address": True,
        "xff_num_trusted_hops": config.envoy.trusted_proxy_hops,
        # The client gets the request's id to post quality feedback for it
        # (POST /feedback); at the edge Envoy makes the id, never the client.
        "always_set_request_id_in_response": True,
        "route_config": {
            "name": "switchyard",
            "virtual_hosts": [
                {
                    "name": VIRTUAL_HOST,
                    "domains": ["*"],
                    "routes": _routes(config),
                    "request_headers_to_remove": [config.force_cohort.token_header, h.CLIENT],
                    "response_headers_to_add": _response_headers(config),
                }
            ],
        },
        "http_filters": http_filters,
    }
    tls = config.envoy.processor_tls
    clusters = [_processor_cluster(EXT_PROC_CLUSTER, config.processor_address, tls)]
    if config.envoy.observe != "off":
        clusters.append(_processor_cluster(OBSERVE_CLUSTER, config.processor_address, tls))
    clusters += [_backend_cluster(config, backend) for backend in config.backends]
    listeners = [_ingress_listener(config, hcm)]
    shadowed = any(route.shadow for route in config.routes)
    if shadowed:
        listeners.append(_shadow_listener(config))
        clusters.append(
            {
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
        )
    if config.envoy.stats_listen is not None:
        listeners.append(_stats_listener(config.envoy.stats_listen))
        clusters.append(
            {
                "name": ADMIN_CLUSTER,
                "type": "STATIC",
                "connect_timeout": "0.25s",
                "load_assignment": _load_assignment(ADMIN_CLUSTER, config.envoy.admin),
            }
        )
    flush = {}
    if config.analysis.source == "envoy":
        # Histograms reach the admin's view only when Envoy merges them (default 5 s).
        flush = {"stats_flush_interval": f"{config.analysis.interval_s}s"}
    bootstrap: dict[str, Any] = {
        **flush,
        "admin": {"address": _socket_address(config.envoy.admin)},
        "layered_runtime": {
            "layers": [
                {"name": "static", "static_layer": {}},
                {"name": "admin", "admin_layer": {}},
            ]
        },
        "static_resources": {"listeners": listeners, "clusters": clusters},
    }
    if shadowed:
        bootstrap["bootstrap_extensions"] = [
            {
                "name": "envoy.bootstrap.internal_listener",
                "typed_config": {
                    "@type": _TYPE + "bootstrap.internal_listener.v3.InternalListener"
                },
            }
        ]
    return bootstrap


def _shadow_listener(config: Config) -> dict[str, Any]:
    """Where Envoy sends shadow copies: reachable from Envoy itself only (no socket)."""
    reply_header = "%REQ({})%"
    hcm = {
        "@type": _TYPE + "filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "shadow",
        "route_config": {
            "name": "shadow",
            "virtual_hosts": [
                {
                    "name": "shadow",
                    "domains": ["*"],
                    "routes": _shadow_routes(config),
                    "response_headers_to_add": [
                        {
                            "header": {"key": name, "value": reply_header.format(name)},
                            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                        }
                        for name in (h.ROUTE, h.COHORT)
                    ]
                    + [
                        {
                            "header": {"key": h.BACKEND, "value": "%UPSTREAM_CLUSTER%"},
                            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                        }
                    ],
                }
            ],
        },
        "http_filters": [
            _routing_filter(config),
            _observe_filter(config),
            {
                "name": "envoy.filters.http.router",
                "typed_config": {"@type": _TYPE + "filters.http.router.v3.Router"},
            },
        ],
    }
    return {
        "name": SHADOW_LISTENER,
        "internal_listener": {},
        "per_connection_buffer_limit_bytes": config.server.max_body_bytes * BUFFER_FACTOR,
        "filter_chains": [
            {
                "filters": [
                    {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}
                ]
            }
        ],
    }


def _ingress_listener(config: Config, hcm: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "ingress",
        "address": _socket_address(config.envoy.listen),
        "per_connection_buffer_limit_bytes": config.server.max_body_bytes * BUFFER_FACTOR,
        "filter_chains": [
            {
                "filters": [
                    {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}
                ]
            }
        ],
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
        "@type": _TYPE + "filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "stats_listener",
        "route_config": {
            "name": "stats",
            "virtual_hosts": [{"name": "stats", "domains": ["*"], "routes": [*allowed, not_found]}],
        },
        "http_filters": [
            {
                "name": "envoy.filters.http.router",
                "typed_config": {"@type": _TYPE + "filters.http.router.v3.Router"},
            }
        ],
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
