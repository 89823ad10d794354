"""bench/canary_sim.py's quality cases: the numbers docs/CANARY.md quotes come from these."""

from __future__ import annotations

import random
from dataclasses import replace

from bench.canary_sim import QUALITY, Cohort, false_alarms, run
from extproc.config import AnalysisConfig


def test_a_refusing_canary_is_found_in_seconds_and_an_a_a_one_never() -> None:
    cfg, rng = AnalysisConfig(), random.Random(11)
    stable = Cohort(0.01, 800, refusal_rate=0.02, score_mean=0.7)
    refusing = replace(stable, refusal_rate=1.0)
    found = run(cfg, 100, 0.05, stable, stable, refusing, 30, 120, rng, QUALITY)
    assert found is not None and 0 < found < 15
    assert false_alarms(cfg, 100, 0.05, stable, 600, rng, QUALITY) == 0


def test_scores_below_the_margin_are_found_and_at_the_margin_not() -> None:
    cfg, rng = AnalysisConfig(), random.Random(12)
    stable = Cohort(0.01, 800, score_mean=0.7)
    found = run(
        cfg, 100, 0.05, stable, stable, replace(stable, score_mean=0.3), 30, 150, rng, QUALITY
    )
    assert found is not None and 0 < found < 60
    at_margin = replace(stable, score_mean=0.65)
    assert run(cfg, 100, 0.05, stable, stable, at_margin, 30, 300, rng, QUALITY) is None
