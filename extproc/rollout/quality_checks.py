"""The canary analysis's quality checks: mean score and flag rates, canary vs stable.

The same statistics as the error and latency checks (extproc.rollout.analysis), each
one-sided against a tolerated degradation at analysis.confidence:

- score: Welch z-test on the difference of mean scores (0..1), H0: mean_stable -
  mean_canary <= score_margin; speaks only with min_scores scored requests per cohort;
- each flag (unsafe, refusal, wrong, empty, truncated): z-test on two proportions of
  answered requests, H0: p_canary - p_stable <= max(flag_margin * p_stable, flag_floor);
  needs min_requests answered per cohort, and fewer than min_flags flags of that kind
  on the canary is never a verdict.

A check without enough samples says not enough data (extproc.rollout.outcome): never a
rollback.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

from extproc.config import QualityAnalysisConfig
from extproc.rollout.outcome import Outcome
from extproc.rollout.window import Summary


@dataclass(frozen=True)
class QualityCheck:
    name: str
    status: Outcome
    canary_value: float
    stable_value: float
    confidence: float
    canary_n: int
    stable_n: int

    @property
    def has_signals(self) -> bool:
        """Any score (for the score check) or any such flag on either side."""
        if self.name == "score":
            return self.canary_n + self.stable_n > 0
        return self.canary_value + self.stable_value > 0

    def measured(self) -> str:
        """Both values and their sample sizes: refusal rate 20.00% vs 0.00% (44/598 answered)."""
        if self.name == "score":
            values = f"mean score {self.canary_value:.3f} vs {self.stable_value:.3f}"
            return f"{values} ({self.canary_n}/{self.stable_n} scored)"
        values = f"{self.name} rate {self.canary_value:.2%} vs {self.stable_value:.2%}"
        return f"{values} ({self.canary_n}/{self.stable_n} answered)"

    def describe(self) -> str:
        return f"{self.name}: {self.status}, {self.measured()}"


def upper_tail(z: float) -> float:
    """P(Z <= z): the confidence that the observed excess is real."""
    return NormalDist().cdf(z)


def rate_excess_confidence(
    canary_hits: int, canary_n: int, stable_hits: int, stable_n: int, margin: float, floor: float
) -> float:
    """Confidence that the canary's rate exceeds max(margin x stable's, floor) above stable's."""
    # Half a pseudo-count keeps the variance positive at 0 % and 100 %.
    pc = (canary_hits + 0.5) / (canary_n + 1)
    ps = (stable_hits + 0.5) / (stable_n + 1)
    tolerated = max(margin * ps, floor)
    se = math.sqrt(pc * (1 - pc) / canary_n + ps * (1 - ps) / stable_n)
    return upper_tail((pc - ps - tolerated) / se)


def score_drop_confidence(canary: Summary, stable: Summary, margin: float) -> float:
    se = (
        math.sqrt(canary.score_variance / canary.scored + stable.score_variance / stable.scored)
        or 1e-9
    )
    return upper_tail((stable.score_mean - canary.score_mean - margin) / se)


def check_quality(
    canary: Summary,
    stable: Summary,
    cfg: QualityAnalysisConfig,
    min_requests: int,
    confidence: float,
) -> list[QualityCheck]:
    """One result per configured check, in the config's order."""
    results = []
    for name in cfg.checks:
        if name == "score":
            nc, ns = canary.scored, stable.scored
            values = (canary.score_mean, stable.score_mean)
            if nc < cfg.min_scores or ns < cfg.min_scores:
                results.append(QualityCheck(name, Outcome.NOT_ENOUGH_DATA, *values, 0.0, nc, ns))
                continue
            p = score_drop_confidence(canary, stable, cfg.score_margin)
        else:
            nc, ns = canary.answered, stable.answered
            hits_c, hits_s = canary.flags.get(name, 0), stable.flags.get(name, 0)
            values = (hits_c / nc if nc else 0.0, hits_s / ns if ns else 0.0)
            if nc < min_requests or ns < min_requests:
                results.append(QualityCheck(name, Outcome.NOT_ENOUGH_DATA, *values, 0.0, nc, ns))
                continue
            if hits_c < cfg.min_flags:
                results.append(QualityCheck(name, Outcome.HEALTHY, *values, 0.0, nc, ns))
                continue
            p = rate_excess_confidence(hits_c, nc, hits_s, ns, cfg.flag_margin, cfg.flag_floor)
        status = Outcome.DEGRADED if p >= confidence else Outcome.HEALTHY
        results.append(QualityCheck(name, status, *values, p, nc, ns))
    return results
