"""Observed traffic: status, latency, tokens, cost per route/cohort/backend.

The observing filter (extproc.response.observe) records each response it sees here.
TrafficStats keeps the totals for the A/B report and, for routes with a canary,
per-second summaries for the canary analysis (and, in a fleet, the part of them not
yet added to the shared store).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from extproc import headers as h
from extproc.rollout.metrics import AUTH_REFUSALS, RolloutMetrics
from extproc.rollout.window import Summary

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
