"""Pick a threshold from a labelled dev set: the trade-off table and a target-driven choice.

Pure: it takes each dev row's expected label and the classifier's best real label and score
(computed once), and replays the decision at every threshold of a grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from classifier.labels import LabelClassifier, SequenceClassifier
from classifier.types import Prediction

STEP = 0.005


@dataclass(frozen=True)
class TradeOff:
    """What one threshold does on the dev set (rates are shares, 0-1)."""

    threshold: float
    accuracy: float
    in_scope_accuracy: float  # in-scope rows routed to their own label
    oos_recall: float  # out-of-scope rows sent to the fallback
    oos_precision: float  # fallback decisions that were out of scope
    misroute: float  # all rows sent to a wrong real label (the costly error)


@dataclass(frozen=True)
class BestGuesses:
    """Each row's best real label and its score, with no threshold applied."""

    expected: list[str]
    labels: list[str]
    scores: np.ndarray
    forced_fallback: np.ndarray  # the model itself chose its fallback class


def best_guesses(
    predictions: Sequence[Prediction], expected: Sequence[str], fallback: str
) -> BestGuesses:
    """From predictions made with the threshold below every score."""
    labels = [p.runner_up if p.label == fallback and p.runner_up else p.label for p in predictions]
    return BestGuesses(
        expected=list(expected),
        labels=labels,
        scores=np.array([p.score for p in predictions], dtype=np.float64),
        forced_fallback=np.array([p.label == fallback for p in predictions]),
    )


def guesses_for(
    clf: LabelClassifier | SequenceClassifier, rows: Sequence[tuple[str, str]]
) -> BestGuesses:
    """Classify rows once, with the classifier's threshold under every possible score."""
    saved = clf.thresholds
    clf.thresholds = np.full_like(saved, -np.inf)
    try:
        predictions = clf.classify([text for text, _ in rows])
    finally:
        clf.thresholds = saved
    return best_guesses(predictions, [label for _, label in rows], clf.fallback)


def trade_off(guesses: BestGuesses, threshold: float, fallback: str) -> TradeOff:
    expected = np.array(guesses.expected)
    rejected = guesses.forced_fallback | (guesses.scores < threshold)
    predicted = np.where(rejected, fallback, np.array(guesses.labels, dtype=object))
    oos = expected == fallback
    in_scope = ~oos
    to_fallback = predicted == fallback
    correct = predicted == expected

    def share(num: np.ndarray, den: np.ndarray) -> float:
        return float(num.sum() / den.sum()) if den.sum() else 0.0

    return TradeOff(
        threshold=threshold,
        accuracy=float(correct.mean()) if len(correct) else 0.0,
        in_scope_accuracy=share(correct & in_scope, in_scope),
        oos_recall=share(to_fallback & oos, oos),
        oos_precision=share(to_fallback & oos, to_fallback),
        misroute=float((~correct & ~to_fallback).mean()) if len(correct) else 0.0,
    )


def sweep(guesses: BestGuesses, fallback: str) -> list[TradeOff]:
    """Every grid threshold from just under the lowest score to just over the highest."""
    real = guesses.scores[~guesses.forced_fallback]
    if len(real) == 0:
        return [trade_off(guesses, 0.0, fallback)]
    low = np.floor(real.min() / STEP) * STEP
    high = np.ceil(real.max() / STEP) * STEP + STEP
    grid = np.round(np.arange(low, high + STEP / 2, STEP), 3)
    return [trade_off(guesses, float(t), fallback) for t in grid]


def choose(
    rows: Sequence[TradeOff],
    *,
    target_oos_recall: float | None = None,
    max_misroute: float | None = None,
) -> TradeOff | None:
    """The threshold with the best in-scope accuracy among those that meet the target
    (best overall accuracy without one); the lowest such threshold on ties. None when no
    threshold meets the target."""
    candidates = [
        r
        for r in rows
        if (target_oos_recall is None or r.oos_recall >= target_oos_recall)
        and (max_misroute is None or r.misroute <= max_misroute)
    ]
    if not candidates:
        return None
    if target_oos_recall is None and max_misroute is None:
        return max(candidates, key=lambda r: (r.accuracy, -r.threshold))
    return max(candidates, key=lambda r: (r.in_scope_accuracy, r.accuracy, -r.threshold))


def format_table(rows: Sequence[TradeOff], chosen: TradeOff | None, every: int = 4) -> str:
    """Every ``every``-th grid row where the trade-off is live (at least half of the
    out-of-scope rows rejected, at least half of the in-scope ones routed), plus the chosen
    one (marked)."""
    lines = [
        f"{'threshold':>9}  {'accuracy':>8}  {'in-scope':>8}  {'OOS recall':>10}  "
        f"{'OOS prec.':>9}  {'misroute':>8}"
    ]
    live = [i for i, r in enumerate(rows) if r.oos_recall >= 0.5 and r.in_scope_accuracy >= 0.5]
    first, last = (live[0], live[-1]) if live else (0, len(rows) - 1)
    for i, r in enumerate(rows):
        mark = chosen is not None and r.threshold == chosen.threshold
        if not mark and (i % every or not first <= i <= last):
            continue
        lines.append(
            f"{r.threshold:>9.3f}  {r.accuracy:>8.1%}  {r.in_scope_accuracy:>8.1%}  "
            f"{r.oos_recall:>10.1%}  {r.oos_precision:>9.1%}  {r.misroute:>8.1%}"
            + ("  <- chosen" if mark else "")
        )
    return "\n".join(lines)
