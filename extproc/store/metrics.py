"""The state store's metrics: whether the fleet's store answers, and this replica's lease."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from extproc.metrics import MetricGroup


class StoreMetrics(MetricGroup):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        r = self.registry
        self.state_store_up = Gauge(
            "switchyard_state_store_up",
            "1 while the fleet's state store (Redis) answers, 0 while it does not;"
            " always 1 with the in-memory store.",
            registry=r,
        )
        self.state_store_up.set(1)
        self.state_store_errors = Counter(
            "switchyard_state_store_errors",
            "Failed state store operations by operation (sync, flush, commit, subscribe).",
            ["operation"],
            registry=r,
        )
        self.state_leader = Gauge(
            "switchyard_state_leader",
            "1 while this replica holds the lease and runs the fleet's canary analysis.",
            registry=r,
        )
        self.state_pending_writes = Gauge(
            "switchyard_state_pending_writes",
            "Rollbacks decided while the state store was away, not written to it yet.",
            registry=r,
        )
