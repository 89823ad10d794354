"""The trade-off table and the target-driven choice, on hand-made scores."""

from __future__ import annotations

import pytest

from classifier.tune import BestGuesses, best_guesses, choose, format_table, sweep, trade_off
from classifier.types import Prediction

# (expected, best real label, its score)
ROWS = [
    ("a", "a", 0.60),
    ("a", "a", 0.40),
    ("b", "b", 0.50),
    ("b", "a", 0.30),  # misrouted unless rejected
    ("other", "a", 0.20),
    ("other", "b", 0.35),
    ("other", "b", 0.10),
    ("other", "a", 0.45),
]


def _guesses() -> BestGuesses:
    predictions = [Prediction(label, score, None, 0.0) for _, label, score in ROWS]
    return best_guesses(predictions, [e for e, _, _ in ROWS], "other")


def test_rates_at_one_threshold() -> None:
    row = trade_off(_guesses(), 0.33, "other")
    # routed: a .60, a .40, b .50 correct; b->a .30 rejected; other .35 and .45 misrouted
    assert row.in_scope_accuracy == pytest.approx(3 / 4)
    assert row.oos_recall == pytest.approx(2 / 4)
    assert row.oos_precision == pytest.approx(2 / 3)
    assert row.misroute == pytest.approx(2 / 8)
    assert row.accuracy == pytest.approx(5 / 8)


def test_a_rejection_by_the_model_itself_stays_a_rejection() -> None:
    predictions = [Prediction("other", 0.9, "a", 0.9)]
    guesses = best_guesses(predictions, ["other"], "other")
    guesses.forced_fallback[:] = True
    assert trade_off(guesses, 0.0, "other").oos_recall == 1.0


def test_targets_pick_the_best_in_scope_threshold_that_meets_them() -> None:
    table = sweep(_guesses(), "other")
    recall = choose(table, target_oos_recall=0.75)
    # The lowest threshold over 0.35 rejects three of the four out-of-scope rows.
    assert recall is not None and 0.35 < recall.threshold <= 0.36
    assert recall.oos_recall == 0.75 and recall.in_scope_accuracy == pytest.approx(3 / 4)
    # No misroute at all: over the 0.45 out-of-scope row, which costs the 0.40 in-scope one.
    misroute = choose(table, max_misroute=0.0)
    assert misroute is not None and misroute.misroute == 0.0
    assert 0.45 < misroute.threshold <= 0.46 and misroute.in_scope_accuracy == pytest.approx(2 / 4)
    assert choose(table, target_oos_recall=1.01) is None
    text = format_table(table, recall)
    assert "<- chosen" in text and text.splitlines()[0].split()[0] == "threshold"
