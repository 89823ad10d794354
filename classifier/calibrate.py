"""Derive the out-of-scope thresholds from the labels' own examples (no hand tuning).

A threshold that suits one label set is wrong for the next: two labels of eight examples
score clear matches at 0.3-0.4, while 150 intents of twenty close paraphrases score theirs
at 0.5-0.7, and so do the out-of-scope prompts near them. So when the config gives no
threshold, the classifier simulates both kinds of traffic from what it has at load time,
one label at a time (``calibrate_label``):

* in scope: each of the label's examples, scored with itself left out of the label
  (leave-one-out). It counts as routed when the label wins and clears the threshold;
* out of scope, near: the other labels' examples that this label would take if their own
  label were not configured (this label is their best other), i.e. prompts on a
  neighbouring subject the config does not cover. Counted per other label as a share of
  that label's examples, so a label of 3,000 near-duplicates weighs what one label weighs;
  the rejected share is one minus the sum of those shares over the threshold;
* out of scope, far: the built-in neutral corpus (``classifier.neutral``), everyday requests
  about nothing in particular, scored on this label.

The threshold maximises (routed share) + (rejected share), the two out-of-scope kinds
weighted equally, and is the middle of the best plateau, but it never rejects more than
``MAX_LOST_ROUTES`` of the examples that their own label wins (for one label, less than
one example in twenty: none): when the labels are close
to each other (forty intents of one bank), an example scored without its own label looks
like near out-of-scope traffic at almost any threshold, and the objective alone climbed to
thresholds that turned away a quarter of in-scope prompts. ``classifier.labels`` then takes
each label halfway to the median label's threshold. ``calibrate`` is the same rule
over all labels' examples pooled (one threshold for the labels with too few examples to
calibrate alone). Everything is a pure function of the embeddings, so a config always gets
the same thresholds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Candidate thresholds: the scores are cosine blends, and useful thresholds lie well
# inside this range; a fixed grid keeps the choice stable when a score moves by 1e-7.
GRID = np.round(np.arange(0.0, 0.9001, 0.005), 3)
# Of the left-out examples whose own label wins, the share the threshold may turn away
# (at least one example).
MAX_LOST_ROUTES = 0.05
# A label with fewer examples is not calibrated alone: leaving one out of five moves its
# centroid by a fifth, and one lost example is 20 % of its simulated recall, so its
# threshold would follow the noise of one phrasing. It takes the default threshold.
MIN_CALIBRATION_EXAMPLES = 6


@dataclass(frozen=True)
class Calibration:
    """The chosen threshold and the simulated rates behind it."""

    threshold: float
    routed: float  # share of left-out examples routed to their own label
    rejected_near: float  # share of examples rejected with their own label left out
    rejected_far: float  # share of neutral-corpus sentences rejected
    n_examples: int
    n_neutral: int
    capped: bool  # lowered to keep MAX_LOST_ROUTES (the objective's best was higher)
    nearest: str | None = None  # per label: the other label it would take most examples of
    kept: float = 1 - MAX_LOST_ROUTES  # the share of winning examples the cap keeps

    def explain(self) -> str:
        if self.rejected_near != self.rejected_near:  # NaN: only one label
            near = "no other label to leave out"
        elif self.nearest is not None:
            near = (
                f"{self.rejected_near:.0%} of the other labels' examples it would take "
                f"rejected (most of them from {self.nearest})"
            )
        else:
            near = f"{self.rejected_near:.0%} of examples rejected when their own label is left out"
        rule = (
            f"maximises routed + rejected, lowered to keep {self.kept:.0%} of the "
            "examples their own label wins"
            if self.capped
            else "maximises routed + rejected"
        )
        return (
            f"{self.threshold:.3f}, calibrated from the examples ({rule}): "
            f"{self.routed:.0%} of {self.n_examples} examples routed to their own label "
            f"(each left out of it), {near}, "
            f"{self.rejected_far:.0%} of {self.n_neutral} neutral prompts rejected"
        )


def _share_at_least(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """For each threshold in grid, the share of values >= it."""
    if len(values) == 0:
        return np.zeros(len(grid))
    ordered = np.sort(values)
    below = np.searchsorted(ordered, grid, side="left")
    return 1.0 - below / len(values)


def calibrate(
    own_scores: np.ndarray,
    own_wins: np.ndarray,
    near_scores: np.ndarray,
    far_scores: np.ndarray,
) -> Calibration:
    """Pick one threshold for all labels from simulated in-scope and out-of-scope scores.

    own_scores[i]: example i's leave-one-out score on its own label; own_wins[i]: whether
    that label is also its best; near_scores[i]: its best score on the other labels (empty
    with one label); far_scores[j]: neutral sentence j's best score on any label.
    """
    rejected_near = 1.0 - _share_at_least(near_scores, GRID) if len(near_scores) else None
    return _choose(own_scores, own_wins, rejected_near, far_scores, None, min_loss=1)


def calibrate_label(
    own_scores: np.ndarray,
    own_wins: np.ndarray,
    neighbours: Sequence[tuple[str, np.ndarray, int]],
    far_scores: np.ndarray,
) -> Calibration:
    """Pick one label's threshold (module docstring).

    own_scores[i]: the label's example i scored leave-one-out on it; own_wins[i]: whether
    the label is also that example's best; neighbours: per other label, its name, the
    scores on this label of its examples that this label would take were it not configured
    (this label is their best other), and its number of examples; far_scores[j]: neutral
    sentence j's score on this label.
    """
    nearest = None
    taken = np.zeros(len(GRID))
    most = -1.0
    for name, scores, n_examples in neighbours:
        if len(scores) == 0:  # takes none of its examples (most labels, with many labels)
            if most < 0.0:
                nearest, most = name, 0.0
            continue
        share = _share_at_least(scores, GRID) * len(scores) / max(n_examples, 1)
        taken += share
        if share.sum() > most:
            nearest, most = name, float(share.sum())
    rejected_near = np.clip(1.0 - taken, 0.0, 1.0) if neighbours else None
    return _choose(own_scores, own_wins, rejected_near, far_scores, nearest, min_loss=0)


def _choose(
    own_scores: np.ndarray,
    own_wins: np.ndarray,
    near_curve: np.ndarray | None,
    far_scores: np.ndarray,
    nearest: str | None,
    *,
    min_loss: int,
) -> Calibration:
    routed = _share_at_least(own_scores[own_wins], GRID) * own_wins.mean()
    rejected_far = 1.0 - _share_at_least(far_scores, GRID)
    if near_curve is not None:
        rejected_near = near_curve
        rejected = 0.5 * (rejected_near + rejected_far)
    else:
        rejected_near = np.full(len(GRID), np.nan)
        rejected = rejected_far
    objective = np.round(routed + rejected, 9)
    best = np.flatnonzero(objective == objective.max())
    # The middle of the first best run: the threshold least sensitive to either side.
    run_end = best[0]
    while run_end + 1 < len(GRID) and objective[run_end + 1] == objective[best[0]]:
        run_end += 1
    i = (best[0] + run_end) // 2
    winners = own_scores[own_wins]
    may_lose = 0
    if len(winners):
        # Pooled, one example may always be lost: with 16 examples, 5 % would forbid any
        # loss and pin the threshold to the weakest example (two-label sets then let far
        # more unrelated prompts through). One label alone may not (min_loss 0): losing
        # one of its 8-20 examples let its threshold climb over its held-out prompts.
        may_lose = max(int(MAX_LOST_ROUTES * len(winners) + 1e-9), min_loss)
        kept = np.round(_share_at_least(winners, GRID) * len(winners))
        allowed = np.flatnonzero(kept >= len(winners) - may_lose)
        highest_allowed = int(allowed.max()) if allowed.size else 0
    else:
        highest_allowed = len(GRID) - 1
    capped = bool(i > highest_allowed)
    i = min(i, highest_allowed)
    return Calibration(
        threshold=float(GRID[i]),
        routed=float(routed[i]),
        rejected_near=float(rejected_near[i]),
        rejected_far=float(rejected_far[i]),
        n_examples=len(own_scores),
        n_neutral=len(far_scores),
        capped=capped,
        nearest=nearest,
        kept=(len(winners) - may_lose) / len(winners) if len(winners) else 1.0,
    )


# Where a label's threshold came from (``LabelThreshold.source``).
FROM_LABEL = "label"  # labels[].threshold
FROM_CONFIG = "config"  # classifier.threshold
CALIBRATED = "calibrated"  # calibrate_label on its own examples
POOLED = "pooled"  # too few examples: calibrate over all labels' examples pooled


@dataclass(frozen=True)
class LabelThreshold:
    """One label's threshold, where it came from, and the simulation behind it."""

    label: str
    value: float
    source: str  # FROM_LABEL, FROM_CONFIG, CALIBRATED or POOLED
    n_examples: int
    calibration: Calibration | None = None  # CALIBRATED and POOLED
    median: float | None = None  # CALIBRATED: the median calibrated label's own threshold

    def explain(self) -> str:
        if self.source == FROM_LABEL:
            why = f"{self.value:.3f} (set on the label)"
        elif self.source == FROM_CONFIG:
            why = f"{self.value:.3f} (set in the config)"
        elif self.source == CALIBRATED and self.calibration is not None:
            why = (
                f"{self.value:.3f}, halfway between its own calibration and the median "
                f"label's {self.median:.3f}; its own: {self.calibration.explain()}"
            )
        else:
            why = (
                f"{self.value:.3f}, calibrated from all labels' examples pooled: "
                f"{self.n_examples} examples, under the {MIN_CALIBRATION_EXAMPLES} needed "
                "to calibrate a label alone"
            )
        return f"{self.label}: threshold {why}"
