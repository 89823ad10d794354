"""Canary analysis: is the canary worse than stable on the same route over the same window?

Two one-sided tests, each against a tolerated degradation rather than zero, so
that a difference too small to matter is never a verdict however much data
there is:

- error rate: z-test on the difference of two proportions, H0: p_canary - p_stable
  <= max(error_margin * p_stable, error_floor);
- latency: Welch z-test on log latency, H0: the canary's geometric mean latency is
  at most (1 + latency_margin) times stable's, and the two medians must also differ
  by at least latency_floor_ms.

Then the quality checks (extproc.rollout.quality_checks: mean score, flag rates), with
the same statistics. Degraded needs the confidence level on any test and at least
min_requests per cohort; otherwise healthy when both cohorts have min_requests, else not
enough data. A quality check without enough signals says not enough data: noted, never a
rollback.
The pure functions here take two window summaries (extproc.rollout.window: one
replica's or the whole fleet's) and return a Verdict; the loop that acts on verdicts
is extproc.rollout.controller.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from extproc.config import AnalysisConfig, QualityAnalysisConfig
from extproc.rollout.outcome import Outcome
from extproc.rollout.quality_checks import (
    QualityCheck,
    check_quality,
    rate_excess_confidence,
    upper_tail,
)
from extproc.rollout.window import Summary


@dataclass(frozen=True)
class Verdict:
    status: Outcome
    metric: str = ""
    canary_value: float = 0.0
    stable_value: float = 0.0
    confidence: float = 0.0
    canary_requests: int = 0
    stable_requests: int = 0
    quality: tuple[QualityCheck, ...] = ()

    def describe(self) -> str:
        counts = f"n={self.canary_requests} canary / {self.stable_requests} stable"
        if self.status is not Outcome.DEGRADED:
            # Only the checks that saw signals: a route nobody scores is not "not enough data" news.
            quality = "".join(f"; {c.describe()}" for c in self.quality if c.has_signals)
            return f"{self.status} ({counts}){quality}"
        if self.metric.startswith("quality."):
            check = next(c for c in self.quality if f"quality.{c.name}" == self.metric)
            detail = check.measured()
        elif self.metric == "error_rate":
            detail = f"error rate {self.canary_value:.2%} vs {self.stable_value:.2%}"
        else:
            detail = f"median latency {self.canary_value:.1f} ms vs {self.stable_value:.1f} ms"
        return f"degraded: {detail}, confidence {self.confidence:.4f} ({counts})"


def error_rate_confidence(
    canary_errors: int, canary_n: int, stable_errors: int, stable_n: int, cfg: AnalysisConfig
) -> float:
    return rate_excess_confidence(
        canary_errors, canary_n, stable_errors, stable_n, cfg.error_margin, cfg.error_floor
    )


def latency_confidence(canary: Summary, stable: Summary, cfg: AnalysisConfig) -> float:
    if canary.answered < 2 or stable.answered < 2:
        return 0.0
    canary_median, stable_median = canary.median_latency(), stable.median_latency()
    assert canary_median is not None and stable_median is not None
    if (canary_median - stable_median) * 1000 < cfg.latency_floor_ms:
        return 0.0
    se = (
        math.sqrt(canary.log_variance / canary.answered + stable.log_variance / stable.answered)
        or 1e-9
    )
    excess = canary.log_mean - stable.log_mean - math.log1p(cfg.latency_margin)
    return upper_tail(excess / se)


def analyze(
    canary: Summary,
    stable: Summary,
    cfg: AnalysisConfig,
    quality: QualityAnalysisConfig | None = None,
) -> Verdict:
    """quality: the route's quality checks (analysis.quality when None)."""
    nc, ns = canary.requests, stable.requests
    if nc < cfg.min_requests or ns < cfg.min_requests:
        return Verdict(Outcome.NOT_ENOUGH_DATA, canary_requests=nc, stable_requests=ns)
    confidence = error_rate_confidence(canary.errors, nc, stable.errors, ns, cfg)
    if confidence >= cfg.confidence:
        return Verdict(
            Outcome.DEGRADED,
            "error_rate",
            canary.errors / nc,
            stable.errors / ns,
            confidence,
            nc,
            ns,
        )
    confidence = latency_confidence(canary, stable, cfg)
    if confidence >= cfg.confidence:
        return Verdict(
            Outcome.DEGRADED,
            "latency",
            (canary.median_latency() or 0.0) * 1000,
            (stable.median_latency() or 0.0) * 1000,
            confidence,
            nc,
            ns,
        )
    checks = tuple(
        check_quality(canary, stable, quality or cfg.quality, cfg.min_requests, cfg.confidence)
    )
    for check in checks:
        if check.status is Outcome.DEGRADED:
            return Verdict(
                Outcome.DEGRADED,
                f"quality.{check.name}",
                check.canary_value,
                check.stable_value,
                check.confidence,
                nc,
                ns,
                checks,
            )
    return Verdict(Outcome.HEALTHY, canary_requests=nc, stable_requests=ns, quality=checks)
