"""Envoy's clusters: those that reach switchyard and Envoy's admin (static), the backends',
the ones that try a target's backends in turn, and the one to the shadow listener."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from envoy.config.cluster.v3 import circuit_breaker_pb2, cluster_pb2, outlier_detection_pb2
from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.extensions.clusters.aggregate.v3 import cluster_pb2 as aggregate_pb2
from envoy.extensions.filters.http.upstream_codec.v3 import upstream_codec_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2
from envoy.type.v3 import percent_pb2

from extproc import headers as h
from extproc.config import BackendConfig, Config, ProcessorTlsConfig
from extproc.envoy_config.builders import (
    HttpFilter,
    circuit_breaker,
    endpoint_address,
    exact,
    http_protocol_options,
    load_assignment,
    lua_filter,
    packed,
    seconds,
    uint32,
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
from extproc.workers.addresses import worker_addresses

_TLS_SOCKET = "envoy.transport_sockets.tls"
Cluster = cluster_pb2.Cluster


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _one_endpoint(name: str, address: str) -> Any:
    return load_assignment(name, endpoint_address(address))


def _workers_outlier_detection() -> Any:
    """A worker that stopped (crashed, restarting) is out of the rotation after its first
    failed streams: a refused connection or reset counts as a gateway failure (local-origin
    errors are not split out), and the ejection lasts until it serves again. Every worker
    may be ejected: Envoy's panic threshold then spreads streams over all of them, and
    the ones that fail open."""
    return outlier_detection_pb2.OutlierDetection(
        consecutive_5xx=uint32(2),
        consecutive_gateway_failure=uint32(2),
        enforcing_consecutive_gateway_failure=uint32(100),
        interval=seconds(1),
        base_ejection_time=seconds(2),
        max_ejection_time=seconds(10),
        max_ejection_percent=uint32(100),
    )


def _file(path: object) -> Any:
    return base_pb2.DataSource(filename=str(path))


def _validation(ca_file: object, san_type: str, name: str) -> Any:
    """Trust: a chain to this CA that names this host."""
    san = common_pb2.SubjectAltNameMatcher(san_type=san_type, matcher=exact(name))
    return common_pb2.CertificateValidationContext(
        trusted_ca=_file(ca_file), match_typed_subject_alt_names=[san]
    )


def _tls_socket(context: Any) -> Any:
    return base_pb2.TransportSocket(name=_TLS_SOCKET, typed_config=packed(context))


def _processor_tls(tls: ProcessorTlsConfig) -> Any:
    certificate = common_pb2.TlsCertificate(
        certificate_chain=_file(tls.cert_file), private_key=_file(tls.key_file)
    )
    common = tls_pb2.CommonTlsContext(
        alpn_protocols=["h2"],
        tls_certificates=[certificate],
        validation_context=_validation(tls.ca_file, "DNS", tls.server_name),
    )
    return _tls_socket(tls_pb2.UpstreamTlsContext(sni=tls.server_name, common_tls_context=common))


def _processor_cluster(name: str, addresses: list[str], tls: ProcessorTlsConfig | None) -> Any:
    """switchyard's workers (server.workers): one endpoint each. Several: each stream goes
    to the worker with the fewest in flight, and a dead one is ejected."""
    cluster = Cluster(
        name=name,
        type="STATIC",
        connect_timeout=seconds(0.25),
        typed_extension_protocol_options=http_protocol_options(http2=True),
        # One gRPC stream per request: the default 1024 concurrent requests
        # would make Envoy fail open under load rather than wait.
        circuit_breakers=circuit_breaker(max_requests=100_000, max_pending_requests=100_000),
        load_assignment=load_assignment(name, *map(endpoint_address, addresses)),
    )
    if len(addresses) > 1:
        cluster.lb_policy = Cluster.LbPolicy.Value("LEAST_REQUEST")
        cluster.outlier_detection.CopyFrom(_workers_outlier_detection())
    if tls is not None:
        cluster.transport_socket.CopyFrom(_processor_tls(tls))
    return cluster


def static_clusters(config: Config) -> list[Any]:
    """The clusters Envoy starts with: switchyard's (routing, observing, xDS) and the admin's."""
    tls = config.envoy.processor_tls
    address = config.processor_address
    workers = worker_addresses(address, config.server.workers)
    clusters = [
        _processor_cluster(EXT_PROC_CLUSTER, workers, tls),
        # Its own cluster: observe streams stay open a while after each request, and
        # would otherwise count against the routing streams' circuit breaker.
        _processor_cluster(OBSERVE_CLUSTER, workers, tls),
        # Worker 0 alone serves xDS.
        _processor_cluster(XDS_CLUSTER, [address], tls),
    ]
    if config.envoy.stats_listen is not None:
        clusters.append(
            Cluster(
                name=ADMIN_CLUSTER,
                type="STATIC",
                connect_timeout=seconds(0.25),
                load_assignment=_one_endpoint(ADMIN_CLUSTER, config.envoy.admin),
            )
        )
    return clusters


def _backend_tls(config: Config, backend: BackendConfig) -> Any:
    host = backend.host.strip("[]")
    context = tls_pb2.UpstreamTlsContext(sni=host)
    if not backend.insecure_skip_verify:
        # The chain must lead to a trusted CA *and* name this host: a trusted CA
        # alone would accept any site's valid certificate.
        ca_file = backend.tls_ca_file or config.envoy.ca_bundle
        san_type = "IP_ADDRESS" if is_ip(backend.host) else "DNS"
        context.common_tls_context.CopyFrom(
            tls_pb2.CommonTlsContext(validation_context=_validation(ca_file, san_type, host))
        )
    return _tls_socket(context)


def backend_cluster(config: Config, backend: BackendConfig) -> Any:
    host = backend.host
    cluster = Cluster(
        name=backend.name,
        type="STATIC" if is_ip(host) else "STRICT_DNS",
        connect_timeout=seconds(1),
        load_assignment=_one_endpoint(backend.name, backend.address),
        # No outlier ejection: where a backend is tried after another (a canary retried
        # on stable, fallbacks) each attempt must reach the backend its place names,
        # and an ejected backend would shift the first attempt onto the next one.
        circuit_breakers=circuit_breaker(max_requests=10_000, max_pending_requests=10_000),
    )
    if not is_ip(host):
        # Most networks that reach a hosted API do so over IPv4.
        cluster.dns_lookup_family = Cluster.DnsLookupFamily.Value("V4_PREFERRED")
    if backend.tls:
        cluster.transport_socket.CopyFrom(_backend_tls(config, backend))
    return cluster


def attempts_cluster(config: Config, target: Target) -> Any:
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
    if target.retry_on is not None and target.route.canary is not None:
        budget = circuit_breaker_pb2.CircuitBreakers.Thresholds.RetryBudget(
            budget_percent=percent_pb2.Percent(value=target.route.canary.retry_budget_percent),
            min_retry_concurrency=uint32(5),
        )
        limits = circuit_breaker(
            max_requests=10_000, max_pending_requests=10_000, retry_budget=budget
        )
    else:
        limits = circuit_breaker(
            max_requests=10_000, max_pending_requests=10_000, max_retries=10_000
        )
    upstream_codec = HttpFilter(
        name="envoy.filters.http.upstream_codec",
        typed_config=packed(upstream_codec_pb2.UpstreamCodec()),
    )
    aggregate = aggregate_pb2.ClusterConfig(clusters=target.attempts)
    return Cluster(
        name=target.cluster,
        connect_timeout=seconds(1),
        lb_policy="CLUSTER_PROVIDED",
        cluster_type=Cluster.CustomClusterType(
            name="envoy.clusters.aggregate", typed_config=packed(aggregate)
        ),
        circuit_breakers=limits,
        typed_extension_protocol_options=http_protocol_options(
            http2=False,
            http_filters=[lua_filter("switchyard.attempts", source), upstream_codec],
        ),
    )


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


def shadow_cluster() -> Any:
    """The cluster that reaches the shadow listener, inside Envoy."""
    internal = address_pb2.Address(
        envoy_internal_address=address_pb2.EnvoyInternalAddress(
            server_listener_name=SHADOW_LISTENER
        )
    )
    return Cluster(
        name=SHADOW_LISTENER,
        connect_timeout=seconds(0.25),
        load_assignment=load_assignment(SHADOW_LISTENER, internal),
    )
