"""Derive the out-of-scope threshold from the labels' own examples (no hand tuning).

A threshold that suits one label set is wrong for the next: two labels of eight examples
score clear matches at 0.3-0.4, while 150 intents of twenty close paraphrases score theirs
at 0.5-0.7, and so do the out-of-scope prompts near them. So when the config gives no
threshold, the classifier simulates both kinds of traffic from what it has at load time:

* in scope: each example, scored with itself left out of its label (leave-one-out). It
  counts as routed when its own label wins and clears the threshold;
* out of scope, near: each example scored against the *other* labels only (its own label
  left out), i.e. a prompt on a subject the config does not cover. It counts as rejected
  when its best score there is under the threshold;
* out of scope, far: the built-in neutral corpus (``classifier.neutral``), everyday requests
  about nothing in particular, against all labels.

The threshold maximises (routed share) + (rejected share), the two out-of-scope kinds
weighted equally, and is the middle of the best plateau, but it never rejects more than
``MAX_LOST_ROUTES`` of the examples that their own label wins: when the labels are close
to each other (forty intents of one bank), an example scored without its own label looks
like near out-of-scope traffic at almost any threshold, and the objective alone climbed to
thresholds that turned away a quarter of in-scope prompts. Everything is a pure function of
the embeddings, so a config always gets the same threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Candidate thresholds: the scores are cosine blends, and useful thresholds lie well
# inside this range; a fixed grid keeps the choice stable when a score moves by 1e-7.
GRID = np.round(np.arange(0.0, 0.9001, 0.005), 3)
# Of the left-out examples whose own label wins, the share the threshold may turn away
# (at least one example).
MAX_LOST_ROUTES = 0.05


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

    def explain(self) -> str:
        near = (
            f"{self.rejected_near:.0%} of examples rejected when their own label is left out"
            if self.rejected_near == self.rejected_near  # NaN: only one label
            else "no other label to leave out"
        )
        rule = (
            f"maximises routed + rejected, lowered to keep {1 - MAX_LOST_ROUTES:.0%} of the "
            "examples their own label wins"
            if self.capped
            else "maximises routed + rejected"
        )
        return (
            f"threshold {self.threshold:.3f}, calibrated from the examples ({rule}): "
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
    """Pick the threshold from simulated in-scope and out-of-scope scores.

    own_scores[i]: example i's leave-one-out score on its own label; own_wins[i]: whether
    that label is also its best; near_scores[i]: its best score on the other labels (empty
    with one label); far_scores[j]: neutral sentence j's best score on any label.
    """
    routed = _share_at_least(own_scores[own_wins], GRID) * own_wins.mean()
    rejected_far = 1.0 - _share_at_least(far_scores, GRID)
    if len(near_scores):
        rejected_near = 1.0 - _share_at_least(near_scores, GRID)
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
    if len(winners):
        # One example may always be lost: with 16 examples, 5 % would forbid any loss and
        # pin the threshold to the weakest example (two-label sets then let far more
        # unrelated prompts through).
        may_lose = max(int(MAX_LOST_ROUTES * len(winners) + 1e-9), 1)
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
    )
