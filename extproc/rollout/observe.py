"""Responses seen in observability mode: status, latency, tokens, cost per route/cohort/backend.

A second ext_proc filter in Envoy sends each request's headers (with the
routing headers switchyard set) and its response (headers, then every body
chunk) without waiting for switchyard, so reading them adds no latency to the
response. TrafficStats keeps the totals for the A/B report and, for routes with a
canary, per-second summaries for the canary analysis (and, in a fleet, the part of
them not yet added to the shared store).
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from extproc import headers as h
from extproc.config import Config
from extproc.request.processor import header_map
from extproc.rollout.metrics import AUTH_REFUSALS, RolloutMetrics
from extproc.rollout.quality import ANSWER_HEAD_BYTES, Quality
from extproc.rollout.sampling import weight
from extproc.rollout.window import Summary
from proto import ext_proc_pb2

if TYPE_CHECKING:
    from extproc.cache.service import PendingFill, ResponseCache

USAGE_TAIL_BYTES = 16_384
"""usage comes last in a JSON answer and in the final SSE event: only the tail is kept."""
_USAGE = re.compile(rb'"usage"\s*:\s*(\{[^{}]*\})')
UPSTREAM_TIME = "x-envoy-upstream-service-time"
"""Envoy's time from sending the request upstream to the upstream's response headers, in ms."""
LATENCIES_KEPT = 20_000
"""Per route / cohort / backend, for the report's percentiles."""


@dataclass
class Totals:
    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    share: float = 1.0
    """The share of these responses that is observed (envoy.observe_sample for stable)."""
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCIES_KEPT))
    ttfbs: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCIES_KEPT))


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def parse_usage(tail: bytes) -> tuple[int, int] | None:
    """(prompt_tokens, completion_tokens) from the last usage object in a response's tail."""
    matches = _USAGE.findall(tail)
    for raw in reversed(matches):
        try:
            usage = json.loads(raw)
        except ValueError:
            continue
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if isinstance(prompt, int) and isinstance(completion, int):
            return prompt, completion
    return None


BucketKey = tuple[str, str, int]
"""(route, cohort, second of the store's clock)."""


class TrafficStats:
    """Thread-safe: written by the gRPC loop, read by the analysis and the HTTP endpoints."""

    def __init__(self, metrics: RolloutMetrics, clock: Callable[[], float] = time.time) -> None:
        self._metrics = metrics
        self._clock = clock
        self._lock = threading.Lock()
        self._totals: dict[tuple[str, str, str], Totals] = {}
        self._buckets: dict[BucketKey, Summary] = {}
        self._unshared: dict[BucketKey, Summary] | None = None
        self._analysed: frozenset[str] = frozenset()
        self._keep_s = 120.0
        self.observed_feeds_analysis = True
        """False with analysis.source envoy: the buckets come from add_summary instead."""

    def refused(self, reason: str) -> None:
        """A request Envoy refused for want of a known client key (a bounded reason)."""
        if reason in AUTH_REFUSALS:
            self._metrics.client_auth_refused.labels(reason).inc()

    def analyse_routes(self, routes: frozenset[str], keep_s: float) -> None:
        """Keeps per-second summaries only for these routes (those with a canary), `keep_s` long."""
        with self._lock:
            self._analysed, self._keep_s = routes, keep_s
            for key in [key for key in self._buckets if key[0] not in routes]:
                del self._buckets[key]

    def share(self) -> None:
        """From now on, keep what take_unshared() hands to the fleet's store."""
        with self._lock:
            self._unshared = {}

    def take_unshared(self) -> dict[BucketKey, Summary]:
        with self._lock:
            unshared, self._unshared = self._unshared or {}, {}
        return unshared

    def record(
        self,
        route: str,
        cohort: str,
        backend: str,
        status: int,
        latency: float,
        ttfb: float | None,
        usage: tuple[int, int] | None,
        cost: float,
        weight: float = 1.0,
    ) -> None:
        """One observed response; `weight` is how many responses it stands for (sampling)."""
        error = status >= 500 or status == 0
        with self._lock:
            totals = self._totals.setdefault((route, cohort, backend), Totals())
            totals.share = 1.0 / weight
            totals.requests += 1
            totals.errors += error
            totals.latencies.append(latency)
            if ttfb is not None:
                totals.ttfbs.append(ttfb)
            if usage is not None:
                totals.prompt_tokens += usage[0]
                totals.completion_tokens += usage[1]
                totals.cost += cost
            # Shadow copies, retried and fallback answers are in the report, never in the
            # canary analysis.
            if (
                route in self._analysed
                and self.observed_feeds_analysis
                and cohort in (h.CANARY, h.STABLE)
            ):
                key = (route, cohort, int(self._clock()))
                bucket = self._buckets.get(key)
                if bucket is None:
                    bucket = self._buckets[key] = Summary()
                    self._prune(key[2])
                bucket.add(error, latency)
                if self._unshared is not None:
                    self._unshared.setdefault(key, Summary()).add(error, latency)
        labels = (route, cohort, backend)
        # Counters are estimates of every response; histograms are the sample's distribution.
        self._metrics.upstream_requests.labels(*labels, f"{status // 100}xx").inc(weight)
        self._metrics.upstream_latency.labels(*labels).observe(latency)
        if ttfb is not None:
            self._metrics.upstream_ttfb.labels(*labels).observe(ttfb)
        if usage is not None:
            self._metrics.tokens.labels(*labels, "prompt").inc(usage[0] * weight)
            self._metrics.tokens.labels(*labels, "completion").inc(usage[1] * weight)
            self._metrics.cost.labels(*labels).inc(cost * weight)

    def record_signal(
        self, route: str, cohort: str, second: int, change: Callable[[Summary], None]
    ) -> None:
        """A quality signal (extproc.rollout.quality) for a request answered in `second`."""
        if route not in self._analysed:
            return
        key = (route, cohort, second)
        with self._lock:
            change(self._buckets.setdefault(key, Summary()))
            if self._unshared is not None:
                change(self._unshared.setdefault(key, Summary()))

    def add_summary(self, route: str, cohort: str, summary: Summary) -> None:
        """A second's worth of a cohort's traffic counted elsewhere (Envoy's statistics)."""
        with self._lock:
            if route not in self._analysed:
                return
            key = (route, cohort, int(self._clock()))
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = Summary()
                self._prune(key[2])
            bucket.merge(summary)
            if self._unshared is not None:
                self._unshared.setdefault(key, Summary()).merge(summary)

    def _prune(self, second: int) -> None:
        oldest = second - self._keep_s
        for key in [key for key in self._buckets if key[2] < oldest]:
            del self._buckets[key]

    def window(self, route: str, cohort: str, since: float) -> Summary:
        """This replica's observations from the whole second at or after `since` on."""
        first = math.ceil(since)
        total = Summary()
        with self._lock:
            for (r, c, second), bucket in self._buckets.items():
                if r == route and c == cohort and second >= first:
                    total.merge(bucket)
        return total

    def snapshot(self) -> list[dict[str, object]]:
        with self._lock:
            items = [
                (key, totals, list(totals.latencies), list(totals.ttfbs))
                for key, totals in self._totals.items()
            ]
        rows: list[dict[str, object]] = []
        for (route, cohort, backend), totals, latencies, ttfbs in sorted(items, key=lambda i: i[0]):
            rows.append(
                {
                    "route": route,
                    "cohort": cohort,
                    "backend": backend,
                    # With a share below 1, counts, tokens and cost are estimates
                    # scaled from the `observed` sample; latencies are the sample's.
                    "observed": totals.requests,
                    "observed_share": totals.share,
                    "requests": round(totals.requests / totals.share),
                    "errors": round(totals.errors / totals.share),
                    "latency_p50_ms": _ms(_quantile(latencies, 0.50)),
                    "latency_p95_ms": _ms(_quantile(latencies, 0.95)),
                    "latency_p99_ms": _ms(_quantile(latencies, 0.99)),
                    "ttfb_p50_ms": _ms(_quantile(ttfbs, 0.50)),
                    "prompt_tokens": round(totals.prompt_tokens / totals.share),
                    "completion_tokens": round(totals.completion_tokens / totals.share),
                    "cost": round(totals.cost / totals.share, 8),
                }
            )
        return rows


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


class ObserveStream:
    """One response seen in observability mode, from its headers to its last body chunk.

    Only the response is sent (one message fewer per request): the route, cohort and
    backend come from the response headers Envoy's route adds, the time to first byte
    from Envoy's x-envoy-upstream-service-time, and the rest of the latency is measured
    here from the headers to the last chunk.
    """

    def __init__(
        self,
        config: Config,
        traffic: TrafficStats,
        quality: Quality | None = None,
        cache: ResponseCache | None = None,
    ) -> None:
        self._config = config
        self._traffic = traffic
        self._quality = quality
        self._cache = cache
        self._fill: PendingFill | None = None
        self._content_type = ""
        self._body: list[bytes] = []
        self._body_size = 0
        self._served_from_cache = False
        self._request_id = ""
        self._score: str | None = None
        self._head = b""
        self._size = 0
        self._route = self._cohort = self._backend = ""
        self._attempts = 1
        self._status = 0
        self._ttfb: float | None = None
        self._headers_at = 0.0
        self._tail = b""
        self._done = False

    def on_message(self, request: ext_proc_pb2.ProcessingRequest) -> None:
        phase = request.WhichOneof("request")
        if phase == "response_headers":
            headers = header_map(request.response_headers.headers)
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
            self._content_type = headers.get("content-type", "")
            # A cache hit never reached a model: it is not part of any A/B comparison.
            self._served_from_cache = headers.get(h.CACHE) == "hit"
            token = headers.get(h.CACHE_FILL)
            if token and self._cache is not None:
                self._fill = self._cache.take_pending(token)
            if request.response_headers.end_of_stream:
                self._finish()
        elif phase == "response_body":
            body = request.response_body
            chunk = body.body  # a copy each time the field is read: read once
            self._tail = (self._tail + chunk)[-USAGE_TAIL_BYTES:]
            if len(self._head) < ANSWER_HEAD_BYTES:
                self._head += chunk[: ANSWER_HEAD_BYTES - len(self._head)]
            self._size += len(chunk)
            self._keep_for_cache(chunk)
            if body.end_of_stream:
                self._finish()
        elif phase == "response_trailers":
            self._finish()

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

    def _keep_for_cache(self, chunk: bytes) -> None:
        if self._fill is None:
            return
        self._body_size += len(chunk)
        if self._body_size > self._fill.settings.max_answer_bytes:
            self._body.clear()  # too large: only the size is kept, to say so
        else:
            self._body.append(chunk)

    def _finish(self) -> None:
        # Requests switchyard did not route (fail-open, non-chat paths) carry
        # no route header: they are not part of any A/B comparison.
        if self._done or not self._route or self._served_from_cache:
            return
        self._done = True
        if self._fill is not None and self._cache is not None:
            body = b"".join(self._body)
            self._cache.offer(self._fill, self._status, self._content_type, body, self._body_size)
        latency = (self._ttfb or 0.0) + time.perf_counter() - self._headers_at
        usage = parse_usage(self._tail) if self._tail else None
        cost = 0.0
        backend = self._backend or "unknown"
        if usage is not None:
            price = next(
                (b.price for b in self._config.backends if b.name == backend and b.price), None
            )
            if price is not None:
                cost = (usage[0] * price.prompt_per_1m + usage[1] * price.completion_per_1m) / 1e6
        cohort = self._answering_cohort(latency)
        self._traffic.record(
            self._route,
            cohort,
            backend,
            self._status,
            latency,
            self._ttfb,
            usage,
            cost,
            weight(self._config.envoy, self._cohort),
        )
        if self._quality is not None:
            self._quality.on_response(
                self._request_id,
                self._route,
                cohort,
                backend,
                self._status,
                self._score,
                self._head,
                self._size <= len(self._head),
                self._tail,
            )
