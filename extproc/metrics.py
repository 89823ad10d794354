"""switchyard's Prometheus metrics: one registry per server, and the few metrics of the
server itself. Each area declares its own beside its code, on that registry
(extproc.request.metrics, extproc.rollout.metrics, extproc.store.metrics,
extproc.cache.metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class MetricGroup:
    """One area's metrics, declared on the registry given; on a registry of their own when
    none is (a test, or a tool that serves no /metrics)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = CollectorRegistry() if registry is None else registry


class Metrics(MetricGroup):
    """The server's registry (what /metrics serves) and its server-wide metrics."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        r = self.registry
        self.immediate_responses = Counter(
            "switchyard_immediate_responses",
            "Requests answered by switchyard itself (bad body, too large, blocked).",
            ["code"],
            registry=r,
        )
        self.processing_errors = Counter(
            "switchyard_processing_errors",
            "Unexpected errors while processing a request; the request went on unrouted.",
            ["phase"],
            registry=r,
        )
        self.config_reloads = Counter(
            "switchyard_config_reloads",
            "Config reloads by result (success, failure).",
            ["result"],
            registry=r,
        )
