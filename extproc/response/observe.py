"""The observing filter's stream: one response, from its headers to its last body chunk.

A second ext_proc filter in Envoy sends each observed response (headers, then every
body chunk) without waiting for switchyard, so reading it adds no latency to the
response. What is read goes three places, each named here by the little this stream
needs of it: the traffic totals and the canary analysis (extproc.rollout.traffic),
the quality signals (extproc.rollout.quality) and a pending cache fill
(extproc.cache.service). extproc.server hands the real ones in.
"""

from __future__ import annotations

import time
from typing import Any, Protocol, TypeVar

from extproc import headers as h
from extproc.config import Config
from extproc.response.cost import cost, price_of
from extproc.response.reader import ResponseReader, Usage
from extproc.response.sampling import weight
from proto import ext_proc_pb2

UPSTREAM_TIME = "x-envoy-upstream-service-time"
"""Envoy's time from sending the request upstream to the upstream's response headers, in ms."""


class Traffic(Protocol):
    def refused(self, reason: str) -> None: ...

    def record(
        self,
        route: str,
        cohort: str,
        backend: str,
        status: int,
        latency: float,
        ttfb: float | None,
        usage: Usage | None,
        cost: float,
        weight: float = 1.0,
    ) -> None: ...


class QualitySignals(Protocol):
    @property
    def score_header(self) -> str | None: ...

    def on_response(
        self,
        request_id: str,
        route: str,
        cohort: str,
        backend: str,
        status: int,
        score_header: str | None,
        response: ResponseReader,
    ) -> None: ...


class OpenFill(Protocol):
    """A cache fill waiting for this response (extproc.cache.service.PendingFill)."""

    @property
    def max_answer_bytes(self) -> int: ...


FillT = TypeVar("FillT", bound=OpenFill)


class CacheFills(Protocol[FillT]):
    def take_pending(self, token: str) -> FillT | None: ...

    def offer(self, fill: FillT, status: int, response: ResponseReader) -> None: ...


class ObserveStream:
    """One response seen in observability mode.

    Only the response is sent (one message fewer per request): the route, cohort and
    backend come from the response headers Envoy's route adds, the time to first byte
    from Envoy's x-envoy-upstream-service-time, and the rest of the latency is measured
    here from the headers to the last chunk.
    """

    def __init__(
        self,
        config: Config,
        traffic: Traffic,
        quality: QualitySignals | None = None,
        cache: CacheFills[Any] | None = None,
    ) -> None:
        self._config = config
        self._traffic = traffic
        self._quality = quality
        self._cache = cache
        self._fill: OpenFill | None = None
        self._response = ResponseReader()
        self._served_from_cache = False
        self._request_id = ""
        self._score: str | None = None
        self._route = self._cohort = self._backend = ""
        self._attempts = 1
        self._status = 0
        self._ttfb: float | None = None
        self._headers_at = 0.0
        self._done = False

    def on_message(self, request: ext_proc_pb2.ProcessingRequest) -> None:
        phase = request.WhichOneof("request")
        if phase == "response_headers":
            self._on_headers(h.header_map(request.response_headers.headers))
            if request.response_headers.end_of_stream:
                self._finish()
        elif phase == "response_body":
            body = request.response_body
            self._response.feed(body.body)  # a copy each time the field is read: read once
            if body.end_of_stream:
                self._finish()
        elif phase == "response_trailers":
            self._finish()

    def _on_headers(self, headers: dict[str, str]) -> None:
        self._headers_at = time.perf_counter()
        refused = headers.get(h.AUTH_FAILURE)
        if refused is not None:
            self._traffic.refused(refused)
        self._route = headers.get(h.ROUTE, "")
        self._cohort = headers.get(h.COHORT, "")
        self._backend = headers.get(h.BACKEND, "")
        attempts = headers.get(h.ATTEMPT_COUNT, "1")
        self._attempts = int(attempts) if attempts.isdigit() else 1
        status = headers.get(":status", "0")
        self._status = int(status) if status.isdigit() else 0
        upstream_ms = headers.get(UPSTREAM_TIME, "")
        self._ttfb = int(upstream_ms) / 1000 if upstream_ms.isdigit() else None
        self._request_id = headers.get(h.REQUEST_ID, "")
        if self._quality is not None and self._quality.score_header:
            self._score = headers.get(self._quality.score_header)
        # A cache hit never reached a model: it is not part of any A/B comparison.
        self._served_from_cache = headers.get(h.CACHE) == "hit"
        token = headers.get(h.CACHE_FILL)
        if token and self._cache is not None:
            self._fill = self._cache.take_pending(token)
        keep = self._fill.max_answer_bytes if self._fill is not None else 0
        self._response = ResponseReader(headers.get("content-type", ""), keep)

    def _answering_cohort(self, latency: float) -> str:
        """The cohort the answer counts for. After a retry, not the request's: a canary
        answer that failed is counted on the canary (the analysis must see it) and the
        stable answer that replaced it as `retried`; a fallback's answer as `fallback`."""
        if self._attempts <= 1:
            return self._cohort
        if self._cohort != h.CANARY:
            return h.FALLBACK_COHORT
        canary = next((r.canary for r in self._config.routes if r.name == self._route), None)
        if canary is not None:
            # The canary's own answer is not seen: a failure (5xx or reset) it was.
            self._traffic.record(
                self._route, h.CANARY, canary.backend, 502, latency, None, None, 0.0
            )
        return h.RETRIED_COHORT

    def _finish(self) -> None:
        # Requests switchyard did not route (fail-open, non-chat paths) carry
        # no route header: they are not part of any A/B comparison.
        if self._done or not self._route or self._served_from_cache:
            return
        self._done = True
        response = self._response
        if self._fill is not None and self._cache is not None:
            self._cache.offer(self._fill, self._status, response)
        latency = (self._ttfb or 0.0) + time.perf_counter() - self._headers_at
        backend = self._backend or "unknown"
        usage = response.usage
        spent = cost(price_of(self._config, backend), usage) if usage is not None else 0.0
        cohort = self._answering_cohort(latency)
        stands_for = weight(self._config.envoy, self._cohort, self._request_id)
        if stands_for:
            self._traffic.record(
                self._route,
                cohort,
                backend,
                self._status,
                latency,
                self._ttfb,
                usage,
                spent,
                stands_for,
            )
        if self._quality is not None:
            self._quality.on_response(
                self._request_id, self._route, cohort, backend, self._status, self._score, response
            )
