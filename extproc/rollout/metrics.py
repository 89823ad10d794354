"""Rollout metrics: each route's canary (percent, phase, transitions), the traffic observed
by route, cohort and backend, and the quality signals."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary

from extproc.metrics import LATENCY_BUCKETS, MetricGroup
from extproc.rollout.canary import CanaryState, Phase

AUTH_REFUSALS = ("missing", "wrong")
"""Why Envoy's client key check refuses a request (extproc/lua/client_auth.lua)."""


class RolloutMetrics(MetricGroup):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        r = self.registry
        self.canary_percent = Gauge(
            "switchyard_canary_percent",
            "Share of sessions the canary serves now.",
            ["route", "backend"],
            registry=r,
        )
        self.canary_phase = Gauge(
            "switchyard_canary_phase",
            "1 for the rollout phase each route's canary is in.",
            ["route", "phase"],
            registry=r,
        )
        self.rollbacks = Counter(
            "switchyard_rollbacks", "Canary rollbacks.", ["route", "reason"], registry=r
        )
        self.promotions = Counter(
            "switchyard_promotions", "Canary promotions to a next step.", ["route"], registry=r
        )
        self.rollout_version = Gauge(
            "switchyard_rollout_version",
            "Version of each route's rollout state this replica serves.",
            ["route"],
            registry=r,
        )
        self._declare_observed(r)
        self._declare_quality(r)

    def _declare_observed(self, r: CollectorRegistry) -> None:
        """Responses seen in observability mode (extproc.rollout.observe)."""
        self.client_auth_refused = Counter(
            "switchyard_client_auth_refused",
            "Requests Envoy refused with a 401 for want of a known client key (auth), by"
            " reason: missing or wrong; counted from the refusals the observing filter sees.",
            ["reason"],
            registry=r,
        )
        for reason in AUTH_REFUSALS:
            self.client_auth_refused.labels(reason)
        self.upstream_requests = Counter(
            "switchyard_upstream_requests",
            "Responses seen in observability mode, by route, cohort, backend and status class.",
            ["route", "cohort", "backend", "status"],
            registry=r,
        )
        self.upstream_latency = Histogram(
            "switchyard_upstream_latency_seconds",
            "Time from the request reaching the router to the end of the response.",
            ["route", "cohort", "backend"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_ttfb = Histogram(
            "switchyard_upstream_ttfb_seconds",
            "Time to the response's headers: Envoy's x-envoy-upstream-service-time"
            " (from sending the request upstream to its response headers).",
            ["route", "cohort", "backend"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "switchyard_tokens",
            "Tokens reported in responses' usage, by kind (prompt, completion).",
            ["route", "cohort", "backend", "kind"],
            registry=r,
        )
        self.cost = Counter(
            "switchyard_cost",
            "Cost of responses from per-backend prices, in the prices' currency.",
            ["route", "cohort", "backend"],
            registry=r,
        )

    def _declare_quality(self, r: CollectorRegistry) -> None:
        """Quality signals (extproc.rollout.quality)."""
        self.quality_score = Summary(
            "switchyard_quality_score",
            "Answer scores (0..1) from POST /feedback and the score header: mean = sum / count.",
            ["route", "cohort", "backend"],
            registry=r,
        )
        self.quality_flags = Counter(
            "switchyard_quality_flags",
            "Answers flagged, by kind: unsafe, refusal, wrong (posted or detected), empty,"
            " truncated (detected); per 2xx answer in switchyard_upstream_requests.",
            ["route", "cohort", "backend", "flag"],
            registry=r,
        )
        self.feedback = Counter(
            "switchyard_feedback",
            "Quality signals received (POST /feedback, score header) by result: accepted,"
            " duplicate (that request already had it), unknown_id (never seen here or"
            " forgotten), unsampled (a stable response outside envoy.observe_sample),"
            " invalid.",
            ["source", "result"],
            registry=r,
        )

    def record_rollout(self, route: str, old: CanaryState | None, new: CanaryState) -> None:
        """A route's rollout state changed (a Rollouts listener)."""
        self.canary_percent.labels(route, new.backend).set(new.serving_percent)
        self.rollout_version.labels(route).set(new.version)
        for phase in Phase:
            self.canary_phase.labels(route, phase.value).set(1 if new.phase is phase else 0)
        if old is None or old.phase is Phase.WAITING:
            return  # learning the fleet's state is not a transition
        if new.phase is Phase.ROLLED_BACK and old.phase is not Phase.ROLLED_BACK:
            self.rollbacks.labels(route, new.reason.split(":")[0] or "operator").inc()
        elif new.percent > old.percent:
            self.promotions.labels(route).inc()
