"""switchyard's Prometheus metrics, in one registry per server."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary

from extproc.rollout.canary import CanaryState, Phase

AUTH_REFUSALS = ("missing", "wrong")
"""Why Envoy's client key check refuses a request (extproc/lua/client_auth.lua)."""

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.decisions = Counter(
            "switchyard_decisions",
            "Routing decisions by route, classifier label and cohort.",
            ["route", "label", "cohort"],
            registry=r,
        )
        self.immediate_responses = Counter(
            "switchyard_immediate_responses",
            "Requests answered by switchyard itself (bad body, too large, blocked).",
            ["code"],
            registry=r,
        )
        self.client_requests = Counter(
            "switchyard_client_requests",
            "Routed requests by client (auth.keys_file's names only), route and cohort.",
            ["client", "route", "cohort"],
            registry=r,
        )
        self.client_auth_refused = Counter(
            "switchyard_client_auth_refused",
            "Requests Envoy refused with a 401 for want of a known client key (auth), by"
            " reason: missing or wrong; counted from the refusals the observing filter sees.",
            ["reason"],
            registry=r,
        )
        for reason in AUTH_REFUSALS:
            self.client_auth_refused.labels(reason)
        self.processing_errors = Counter(
            "switchyard_processing_errors",
            "Unexpected errors while processing a request; the request went on unrouted.",
            ["phase"],
            registry=r,
        )
        self.large_body_wait = Histogram(
            "switchyard_large_body_wait_seconds",
            "How long a large request body waited for its turn (extproc.request.admission).",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.classification_seconds = Histogram(
            "switchyard_classification_seconds",
            "Time to classify one batch.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.classification_batch = Histogram(
            "switchyard_classification_batch_size",
            "Conversations per classifier batch.",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=r,
        )
        self.classifier_degraded = Counter(
            "switchyard_classifier_degraded",
            "Classifications under overload: 'truncated' (cheaper, shorter input) or 'shed'"
            " (no label: routed by the other rules or to the default route).",
            ["mode"],
            registry=r,
        )
        self.classifier_second_opinions = Counter(
            "switchyard_classifier_second_opinions",
            "Conversations a second-opinion encoder also scored because the first was unsure"
            " of them (classifier.encoder use+minilm-when-unsure): each paid two inferences.",
            registry=r,
        )
        self.config_reloads = Counter(
            "switchyard_config_reloads",
            "Config reloads by result (success, failure).",
            ["result"],
            registry=r,
        )
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
            " forgotten), invalid.",
            ["source", "result"],
            registry=r,
        )

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
        self.rollout_version = Gauge(
            "switchyard_rollout_version",
            "Version of each route's rollout state this replica serves.",
            ["route"],
            registry=r,
        )
        self.state_pending_writes = Gauge(
            "switchyard_state_pending_writes",
            "Rollbacks decided while the state store was away, not written to it yet.",
            registry=r,
        )

    def observe_classification(self, seconds: float, batch: int) -> None:
        self.classification_seconds.observe(seconds)
        self.classification_batch.observe(batch)

    def record_rollout(self, route: str, old: CanaryState | None, new: CanaryState) -> None:
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

    def client_rows(self) -> list[dict[str, object]]:
        """Requests by client, route and cohort (auth's clients), for the report."""
        return [
            {**sample.labels, "requests": int(sample.value)}
            for family in self.client_requests.collect()
            for sample in family.samples
            if sample.name.endswith("_total")
        ]
