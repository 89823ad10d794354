"""The request path's metrics: routing decisions, requests by client, the classifier."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from extproc.metrics import LATENCY_BUCKETS, MetricGroup


class RequestMetrics(MetricGroup):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        r = self.registry
        self.decisions = Counter(
            "switchyard_decisions",
            "Routing decisions by route, classifier label and cohort.",
            ["route", "label", "cohort"],
            registry=r,
        )
        self.client_requests = Counter(
            "switchyard_client_requests",
            "Routed requests by client (auth.keys_file's names only), route and cohort.",
            ["client", "route", "cohort"],
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

    def observe_classification(self, seconds: float, batch: int) -> None:
        self.classification_seconds.observe(seconds)
        self.classification_batch.observe(batch)

    def client_rows(self) -> list[dict[str, object]]:
        """Requests by client, route and cohort (auth's clients), for the report."""
        return [
            {**sample.labels, "requests": int(sample.value)}
            for family in self.client_requests.collect()
            for sample in family.samples
            if sample.name.endswith("_total")
        ]
