"""The response cache's metrics: lookups, fills, the guard's refusals, what hits saved."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from extproc.metrics import MetricGroup


class CacheMetrics(MetricGroup):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        r = self.registry
        self.requests = Counter(
            "switchyard_cache_requests",
            "Chat requests on routes with a cache, by result (hit, miss, bypass).",
            ["route", "result"],
            registry=r,
        )
        self.saved_tokens = Counter(
            "switchyard_cache_saved_tokens",
            "Tokens of the answers served from the cache (what their model calls would have"
            " cost again), by kind (prompt, completion).",
            ["route", "kind"],
            registry=r,
        )
        self.saved_cost = Counter(
            "switchyard_cache_saved_cost",
            "Cost of the model calls the cache saved, from the answering backend's price.",
            ["route"],
            registry=r,
        )
        self.fills = Counter(
            "switchyard_cache_fills",
            "Responses offered to the cache, by result (stored, not_complete, too_large,"
            " unknown_token).",
            ["route", "result"],
            registry=r,
        )
        self.refused = Counter(
            "switchyard_cache_guard_refusals",
            "Semantic candidates the guard refused, by reason (negation, antonym, number,"
            " unit, entity, comparative, time, role, direction, order).",
            ["route", "reason"],
            registry=r,
        )
        self.entries = Gauge(
            "switchyard_cache_entries",
            "Entries in this replica's cache.",
            ["route"],
            registry=r,
        )
