"""Envoy's clusters: those that reach switchyard and Envoy's admin (static), the backends',
the ones that try a target's backends in turn, and the one to the shadow listener."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from extproc import headers as h
from extproc.config import BackendConfig, Config, ProcessorTlsConfig
from extproc.envoy_config.builders import (
    TYPE,
    circuit_breaker,
    endpoint_address,
    http_protocol_options,
    load_assignment,
    lua_filter,
)
from extproc.envoy_config.forwarding import Target
from extproc.envoy_config.lua import lua, lua_table
from extproc.envoy_config.names import (
    ADMIN_CLUSTER,
    EXT_PROC_CLUSTER,
    OBSERVE_CLUSTER,
    SHADOW_LISTENER,
    XDS_CLUSTER,
)
from extproc.request.adapt import BackendAdapter

_TLS_SOCKET = "envoy.transport_sockets.tls"
_UPSTREAM_TLS = TYPE + "transport_sockets.tls.v3.UpstreamTlsContext"


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _one_endpoint(name: str, address: str) -> dict[str, Any]:
    return load_assignment(name, endpoint_address(address))


def _processor_tls(tls: ProcessorTlsConfig) -> dict[str, Any]:
    return {
        "name": _TLS_SOCKET,
        "typed_config": {
            "@type": _UPSTREAM_TLS,
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
        "typed_extension_protocol_options": http_protocol_options("http2_protocol_options"),
        # One gRPC stream per request: the default 1024 concurrent requests
        # would make Envoy fail open under load rather than wait.
        "circuit_breakers": circuit_breaker(max_requests=100_000, max_pending_requests=100_000),
        "load_assignment": _one_endpoint(name, address),
    }
    if tls is not None:
        cluster["transport_socket"] = _processor_tls(tls)
    return cluster


def static_clusters(config: Config) -> list[dict[str, Any]]:
    """The clusters Envoy starts with: switchyard's (routing, observing, xDS) and the admin's."""
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
                "load_assignment": _one_endpoint(ADMIN_CLUSTER, config.envoy.admin),
            }
        )
    return clusters


def _tls_socket(config: Config, backend: BackendConfig) -> dict[str, Any]:
    context: dict[str, Any] = {"@type": _UPSTREAM_TLS, "sni": backend.host.strip("[]")}
    if not backend.insecure_skip_verify:
        # The chain must lead to a trusted CA *and* name this host: a trusted CA
        # alone would accept any site's valid certificate.
        context["common_tls_context"] = {
            "validation_context": {
                "trusted_ca": {"filename": str(backend.tls_ca_file or config.envoy.ca_bundle)},
                "match_typed_subject_alt_names": [
                    {
                        "san_type": "IP_ADDRESS" if is_ip(backend.host) else "DNS",
                        "matcher": {"exact": backend.host.strip("[]")},
                    }
                ],
            }
        }
    return {"name": _TLS_SOCKET, "typed_config": context}


def backend_cluster(config: Config, backend: BackendConfig) -> dict[str, Any]:
    host = backend.host
    cluster: dict[str, Any] = {
        "name": backend.name,
        "type": "STATIC" if is_ip(host) else "STRICT_DNS",
        "connect_timeout": "1s",
        "load_assignment": _one_endpoint(backend.name, backend.address),
        # No outlier ejection: where a backend is tried after another (a canary retried
        # on stable, fallbacks) each attempt must reach the backend its place names,
        # and an ejected backend would shift the first attempt onto the next one.
        "circuit_breakers": circuit_breaker(max_requests=10_000, max_pending_requests=10_000),
    }
    if not is_ip(host):
        # Most networks that reach a hosted API do so over IPv4.
        cluster["dns_lookup_family"] = "V4_PREFERRED"
    if backend.tls:
        cluster["transport_socket"] = _tls_socket(config, backend)
    return cluster


def attempts_cluster(config: Config, target: Target) -> dict[str, Any]:
    """Tries the target's backends in turn (Envoy's aggregate cluster): its upstream Lua
    rewrites each attempt for its backend (lua/attempts.lua)."""
    first = _attempt_fields(config.backend(target.backend))
    rows = ",\n".join(
        f"  [{index}] = {lua_table(_attempt_fields(config.backend(name)))}"
        for index, name in enumerate(target.attempts[1:], start=2)
    )
    source = lua("json_body") + lua(
        "attempts",
        first=lua_table({k: first[k] for k in ("name", "path_prefix", "query", "header")}),
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
    upstream_codec = {
        "name": "envoy.filters.http.upstream_codec",
        "typed_config": {"@type": TYPE + "filters.http.upstream_codec.v3.UpstreamCodec"},
    }
    return {
        "name": target.cluster,
        "connect_timeout": "1s",
        "lb_policy": "CLUSTER_PROVIDED",
        "cluster_type": {
            "name": "envoy.clusters.aggregate",
            "typed_config": {
                "@type": TYPE + "clusters.aggregate.v3.ClusterConfig",
                "clusters": list(target.attempts),
            },
        },
        "circuit_breakers": circuit_breaker(**limits),
        "typed_extension_protocol_options": http_protocol_options(
            "http_protocol_options",
            http_filters=[lua_filter("switchyard.attempts", source), upstream_codec],
        ),
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


def shadow_cluster() -> dict[str, Any]:
    """The cluster that reaches the shadow listener, inside Envoy."""
    internal = {"envoy_internal_address": {"server_listener_name": SHADOW_LISTENER}}
    return {
        "name": SHADOW_LISTENER,
        "connect_timeout": "0.25s",
        "load_assignment": load_assignment(SHADOW_LISTENER, internal),
    }
