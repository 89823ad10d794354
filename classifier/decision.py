"""Turn a label-score vector into a Prediction, and check classifier settings."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from classifier.errors import LabelError
from classifier.types import Prediction


def check_settings(names: Sequence[str], threshold: float | None, fallback: str) -> None:
    """Reject label sets and settings that would make decisions ambiguous."""
    if not names:
        raise LabelError("at least one label is required")
    duplicates = sorted({n for n in names if list(names).count(n) > 1})
    if duplicates:
        raise LabelError(f"duplicate label names: {duplicates}")
    if not fallback:
        raise LabelError("fallback must be a non-empty label name")
    if fallback in names:
        raise LabelError(
            f"fallback {fallback!r} is also a label name; the fallback is what is chosen "
            "when no label matches, so it cannot have examples of its own"
        )
    if threshold is not None and not math.isfinite(threshold):
        raise LabelError(f"threshold must be a finite number, got {threshold!r}")


def decide(
    scores: np.ndarray,
    names: Sequence[str],
    threshold: float | np.ndarray,
    fallback: str,
    *,
    reject: bool = False,
) -> Prediction:
    """Best label, or ``fallback`` when its score is under ``threshold`` (or ``reject``):
    one number for all labels, or one per label (that of the best label applies).

    With the fallback chosen, ``runner_up`` is the best real label, so callers can log how
    close the prompt came to a route.
    """
    order = np.argsort(-scores, kind="stable")
    best = int(order[0])
    best_score = float(scores[best])
    limit = float(threshold[best]) if isinstance(threshold, np.ndarray) else threshold
    if reject or best_score < limit:
        return Prediction(fallback, best_score, names[best], best_score)
    if len(order) < 2:
        return Prediction(names[best], best_score, None, 0.0)
    second = int(order[1])
    return Prediction(names[best], best_score, names[second], float(scores[second]))
