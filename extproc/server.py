"""The gRPC server: Envoy's ext_proc streams and gRPC health.

Each stream is a thin loop that dispatches Envoy's messages to one handler per
phase (extproc.request.processor for routing, extproc.response.observe for responses seen in
observability mode). This is the one place where errors become answers:
a RequestError becomes the client's JSON error, anything unexpected is logged
and counted, and the request goes on unrouted, so switchyard never fails a
request that Envoy could still serve.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Callable

import grpc

from extproc import headers as h
from extproc.cache.service import ResponseCache
from extproc.config import ServerTlsConfig
from extproc.errors import RequestError
from extproc.metrics import Metrics
from extproc.request.admission import LargeBodyPacer
from extproc.request.metrics import RequestMetrics
from extproc.request.processor import (
    CONTINUE_BODY,
    CONTINUE_HEADERS,
    RoutingStream,
    immediate_response,
)
from extproc.request.runtime import RuntimeHolder
from extproc.response.observe import ObserveStream
from extproc.rollout.quality import Quality
from extproc.rollout.traffic import TrafficStats
from extproc.xds import XdsServer
from extproc.xds import add_to_server as add_xds_to_server
from proto import ext_proc_pb2, health_pb2, health_pb2_grpc

log = logging.getLogger("switchyard.server")

EXT_PROC_SERVICE = "envoy.service.ext_proc.v3.ExternalProcessor"
"""Envoy's service name: the gRPC path Envoy calls is /EXT_PROC_SERVICE/Process. Our
messages live in switchyard's own proto package (proto/ext_proc.proto says why)."""
ServingStatus = health_pb2.HealthCheckResponse.ServingStatus


class ExternalProcessor:
    def __init__(
        self,
        runtimes: RuntimeHolder,
        metrics: Metrics,
        request_metrics: RequestMetrics,
        traffic: TrafficStats,
        quality: Quality | None = None,
        cache: ResponseCache | None = None,
    ) -> None:
        self._runtimes = runtimes
        self._metrics = metrics
        self._request_metrics = request_metrics
        self._traffic = traffic
        self._quality = quality
        self._cache = cache
        self._pacer = LargeBodyPacer()

    async def Process(
        self,
        request_iterator: AsyncIterator[ext_proc_pb2.ProcessingRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[ext_proc_pb2.ProcessingResponse]:
        routing: RoutingStream | None = None
        observing: ObserveStream | None = None
        async for request in request_iterator:
            if request.observability_mode:
                # Envoy does not wait for answers on these streams: send none.
                if observing is None:
                    observing = ObserveStream(
                        self._runtimes.current.config, self._traffic, self._quality, self._cache
                    )
                self._observe(observing, request)
                continue
            if routing is None:
                # One runtime for the whole stream: the config version Envoy matched the
                # request with, even while a reload moves both to the next.
                runtime = self._runtimes.for_version(_config_version(context))
                routing = RoutingStream(
                    runtime, self._request_metrics, cache=self._cache, pacer=self._pacer
                )
            yield await self._route(routing, request)

    async def _route(
        self, stream: RoutingStream, request: ext_proc_pb2.ProcessingRequest
    ) -> ext_proc_pb2.ProcessingResponse:
        phase = request.WhichOneof("request")
        try:
            if phase == "request_headers":
                return stream.on_request_headers(request.request_headers)
            if phase == "request_body":
                return await stream.on_request_body(request.request_body)
        except RequestError as error:
            self._metrics.immediate_responses.labels(error.code).inc()
            return immediate_response(error)
        except Exception:
            self._metrics.processing_errors.labels(phase or "unknown").inc()
            log.exception(
                "unexpected error in %s; request continues unrouted (request_id=%s)",
                phase,
                stream.request_id,
                extra={"request_id": stream.request_id},
            )
            return CONTINUE_BODY if phase == "request_body" else CONTINUE_HEADERS
        # A phase this filter is not configured to send: answer it unchanged.
        return _continue(phase)

    def _observe(self, stream: ObserveStream, request: ext_proc_pb2.ProcessingRequest) -> None:
        try:
            stream.on_message(request)
        except Exception:
            self._metrics.processing_errors.labels("observe").inc()
            log.exception("unexpected error while observing a response")


def _config_version(context: grpc.aio.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == h.CONFIG_VERSION:
            return str(value)
    return None


def _continue(phase: str | None) -> ext_proc_pb2.ProcessingResponse:
    common = ext_proc_pb2.CommonResponse()
    if phase in ("request_trailers", "response_trailers"):
        return ext_proc_pb2.ProcessingResponse(
            **{phase: ext_proc_pb2.TrailersResponse()}  # type: ignore[arg-type]
        )
    if phase in ("response_headers",):
        return ext_proc_pb2.ProcessingResponse(
            response_headers=ext_proc_pb2.HeadersResponse(response=common)
        )
    return ext_proc_pb2.ProcessingResponse(response_body=ext_proc_pb2.BodyResponse(response=common))


ProcessMethod = Callable[
    [AsyncIterator[ext_proc_pb2.ProcessingRequest], grpc.aio.ServicerContext],
    AsyncIterator[ext_proc_pb2.ProcessingResponse],
]


def ext_proc_handler(process: ProcessMethod) -> grpc.GenericRpcHandler:
    """Envoy's ext_proc method, served with switchyard's messages."""
    handler = grpc.stream_stream_rpc_method_handler(
        process,
        request_deserializer=ext_proc_pb2.ProcessingRequest.FromString,
        response_serializer=ext_proc_pb2.ProcessingResponse.SerializeToString,
    )
    return grpc.method_handlers_generic_handler(EXT_PROC_SERVICE, {"Process": handler})


class Health(health_pb2_grpc.HealthServicer):
    """SERVING for "" and the ext_proc service until shutdown begins."""

    def __init__(self) -> None:
        self.serving = True
        self._changed = asyncio.Event()

    def _status(self, service: str) -> int:
        if service not in ("", EXT_PROC_SERVICE):
            return ServingStatus.SERVICE_UNKNOWN
        return ServingStatus.SERVING if self.serving else ServingStatus.NOT_SERVING

    async def Check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        status = self._status(request.service)
        if status == ServingStatus.SERVICE_UNKNOWN:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
        return health_pb2.HealthCheckResponse(status=status)  # type: ignore[arg-type]

    async def Watch(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[health_pb2.HealthCheckResponse]:
        while True:
            yield health_pb2.HealthCheckResponse(status=self._status(request.service))  # type: ignore[arg-type]
            self._changed.clear()
            await self._changed.wait()

    def set_not_serving(self) -> None:
        self.serving = False
        self._changed.set()


class CertificateFiles:
    """The server's certificate, key and client CA, read again when the files change.

    gRPC asks before every TLS handshake (once per connection, not per request), so a
    certificate that cert-manager renews in the mounted Secret is used without a restart.
    A change that cannot be read keeps the previous certificates.
    """

    def __init__(self, tls: ServerTlsConfig) -> None:
        self._paths = (tls.cert_file, tls.key_file, tls.client_ca_file)
        self._stamp = self._read_stamp()
        self.initial = self._configuration()

    def _read_stamp(self) -> tuple[tuple[int, int, int], ...]:
        stats = [path.stat() for path in self._paths]
        return tuple((s.st_ino, s.st_mtime_ns, s.st_size) for s in stats)

    def _configuration(self) -> grpc.ServerCertificateConfiguration:
        chain, key, client_ca = (path.read_bytes() for path in self._paths)
        return grpc.ssl_server_certificate_configuration(
            [(key, chain)], root_certificates=client_ca
        )

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        try:
            stamp = self._read_stamp()
            if stamp == self._stamp:
                return None
            configuration = self._configuration()
        except OSError as exc:
            log.error(
                "server.tls: cannot read %s (%s); keeping the current certificates",
                exc.filename,
                exc.strerror,
            )
            return None
        self._stamp = stamp
        log.info("server.tls: certificate files changed; new connections use them")
        return configuration


def _server_credentials(tls: ServerTlsConfig) -> grpc.ServerCredentials:
    """Mutual TLS: a client without a certificate signed by client_ca_file gets no stream."""
    try:
        files = CertificateFiles(tls)
    except OSError as exc:
        raise OSError(f"server.tls: cannot read {exc.filename}: {exc.strerror}") from None
    return grpc.dynamic_ssl_server_credentials(
        files.initial,
        files.fetch,  # type: ignore[arg-type]  # grpc-stubs omit the None its docs allow
        require_client_authentication=True,
    )


GIL_SWITCH_INTERVAL_S = 0.0005
"""gRPC's poller thread, the classifier thread and the event loop hand the GIL to each
other on every request; Python's default (5 ms) lets a busy thread keep it that long.
Measured with make bench (one core): added p50 at c=1 2.56 -> 1.65 ms rules-only,
9.4 -> 8.2 ms semantic."""


async def start_grpc_server(
    listen: str,
    processor: ExternalProcessor,
    health: Health,
    tls: ServerTlsConfig | None,
    xds: XdsServer | None = None,
) -> grpc.aio.Server:
    """ext_proc and health, and Envoy's xDS when switchyard serves Envoy's config: one port.
    The process's GIL switch interval is set for the threads that serve them."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", 70 * 1024 * 1024),
            ("grpc.so_reuseport", 0),
        ]
    )
    server.add_generic_rpc_handlers((ext_proc_handler(processor.Process),))
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    if xds is not None:
        add_xds_to_server(server, xds)
    try:
        if tls is None:
            server.add_insecure_port(listen)
        else:
            server.add_secure_port(listen, _server_credentials(tls))
    except RuntimeError:
        raise OSError(f"cannot listen on {listen}: address in use or not available") from None
    await server.start()
    return server
