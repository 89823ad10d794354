"""Canary analysis: is the canary worse than stable on the same route over the same window?

Two one-sided tests, each against a tolerated degradation rather than zero, so
that a difference too small to matter is never a verdict however much data
there is:

- error rate: z-test on the difference of two proportions, H0: p_canary - p_stable
  <= max(error_margin * p_stable, error_floor);
- latency: Welch z-test on log latency, H0: the canary's geometric mean latency is
  at most (1 + latency_margin) times stable's, and the two medians must also differ
  by at least latency_floor_ms.

Degraded needs the confidence level on either test and at least min_requests per
cohort; otherwise healthy when both cohorts have min_requests, else not enough data.
The pure functions here take samples and return a Verdict; the loop that acts on
verdicts is extproc.app.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist, median

from extproc.config import AnalysisConfig
from extproc.rollout.observe import Sample


class Status(enum.StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    NOT_ENOUGH_DATA = "not enough data"


@dataclass(frozen=True)
class Verdict:
    status: Status
    metric: str = ""
    canary_value: float = 0.0
    stable_value: float = 0.0
    confidence: float = 0.0
    canary_requests: int = 0
    stable_requests: int = 0

    def describe(self) -> str:
        counts = f"n={self.canary_requests} canary / {self.stable_requests} stable"
        if self.status is not Status.DEGRADED:
            return f"{self.status} ({counts})"
        if self.metric == "error_rate":
            detail = f"error rate {self.canary_value:.2%} vs {self.stable_value:.2%}"
        else:
            detail = f"median latency {self.canary_value:.1f} ms vs {self.stable_value:.1f} ms"
        return f"degraded: {detail}, confidence {self.confidence:.4f} ({counts})"


def _upper_tail(z: float) -> float:
    """P(Z <= z): the confidence that the observed excess is real."""
    return NormalDist().cdf(z)


def error_rate_confidence(
    canary_errors: int, canary_n: int, stable_errors: int, stable_n: int, cfg: AnalysisConfig
) -> float:
    # Half a pseudo-count keeps the variance positive at 0 % and 100 %.
    pc = (canary_errors + 0.5) / (canary_n + 1)
    ps = (stable_errors + 0.5) / (stable_n + 1)
    tolerated = max(cfg.error_margin * ps, cfg.error_floor)
    se = math.sqrt(pc * (1 - pc) / canary_n + ps * (1 - ps) / stable_n)
    return _upper_tail((pc - ps - tolerated) / se)


def latency_confidence(
    canary: Sequence[float], stable: Sequence[float], cfg: AnalysisConfig
) -> float:
    if len(canary) < 2 or len(stable) < 2:
        return 0.0
    if (median(canary) - median(stable)) * 1000 < cfg.latency_floor_ms:
        return 0.0
    log_c = [math.log(max(x, 1e-6)) for x in canary]
    log_s = [math.log(max(x, 1e-6)) for x in stable]
    mean_c, mean_s = sum(log_c) / len(log_c), sum(log_s) / len(log_s)
    var_c = sum((x - mean_c) ** 2 for x in log_c) / (len(log_c) - 1)
    var_s = sum((x - mean_s) ** 2 for x in log_s) / (len(log_s) - 1)
    se = math.sqrt(var_c / len(log_c) + var_s / len(log_s)) or 1e-9
    return _upper_tail((mean_c - mean_s - math.log1p(cfg.latency_margin)) / se)


def analyze(canary: Sequence[Sample], stable: Sequence[Sample], cfg: AnalysisConfig) -> Verdict:
    nc, ns = len(canary), len(stable)
    if nc < cfg.min_requests or ns < cfg.min_requests:
        return Verdict(Status.NOT_ENOUGH_DATA, canary_requests=nc, stable_requests=ns)
    canary_errors = sum(s.error for s in canary)
    stable_errors = sum(s.error for s in stable)
    confidence = error_rate_confidence(canary_errors, nc, stable_errors, ns, cfg)
    if confidence >= cfg.confidence:
        return Verdict(
            Status.DEGRADED,
            "error_rate",
            canary_errors / nc,
            stable_errors / ns,
            confidence,
            nc,
            ns,
        )
    # Latency of successful answers only: a fast error is not a fast answer.
    canary_latency = [s.latency for s in canary if not s.error]
    stable_latency = [s.latency for s in stable if not s.error]
    confidence = latency_confidence(canary_latency, stable_latency, cfg)
    if confidence >= cfg.confidence:
        return Verdict(
            Status.DEGRADED,
            "latency",
            median(canary_latency) * 1000,
            median(stable_latency) * 1000,
            confidence,
            nc,
            ns,
        )
    return Verdict(Status.HEALTHY, canary_requests=nc, stable_requests=ns)
