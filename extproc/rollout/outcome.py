"""What comparing the canary with stable found: the analysis's verdict (extproc.rollout.analysis)
and each of its quality checks (extproc.rollout.quality_checks) say it in the same three words."""

from __future__ import annotations

import enum


class Outcome(enum.StrEnum):
    HEALTHY = "healthy"
    """No degradation beyond the tolerated one at the confidence level."""
    DEGRADED = "degraded"
    NOT_ENOUGH_DATA = "not enough data"
    """Too few requests (or, for a quality check, signals) to tell: never a rollback."""
