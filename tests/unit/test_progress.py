"""What `rollout status` says a canary waits for (extproc.rollout.progress)."""

from __future__ import annotations

from extproc.config import AnalysisConfig, CanaryConfig
from extproc.rollout.analysis import Verdict
from extproc.rollout.canary import CanaryState, Phase
from extproc.rollout.outcome import Outcome
from extproc.rollout.progress import progress

CANARY = CanaryConfig.model_validate(
    {"backend": "v2", "percent": 1, "steps": [1, 5, 100], "hold": {"seconds": 300, "requests": 50}}
)
ANALYSIS = AnalysisConfig(window_s=60, min_requests=20)


def status(
    verdict: Verdict | None,
    *,
    elapsed: float,
    phase: Phase = Phase.PROGRESSING,
    step_requests: int = 0,
    reason: str = "new rollout",
) -> dict[str, object]:
    state = CanaryState("v2", phase, 1.0, step_started=1000.0, reason=reason)
    return progress(
        "clinical",
        state,
        CANARY,
        verdict,
        ANALYSIS,
        1000.0 + elapsed,
        step_requests,
        judged_here=True,
    )


def test_a_canary_filling_its_window_says_how_many_more_and_how_long() -> None:
    said = status(
        Verdict(Outcome.NOT_ENOUGH_DATA, canary_requests=4, stable_requests=396), elapsed=30
    )
    assert said["waiting_for"] == (
        "needs 16 more canary requests in the window; at the window's rate (8/min): ~2 min"
    )
    assert said["verdict"] == "not enough data (n=4 canary / 396 stable)"


def test_a_canary_whose_window_can_never_fill_says_so_and_what_to_change() -> None:
    said = status(
        Verdict(Outcome.NOT_ENOUGH_DATA, canary_requests=4, stable_requests=396), elapsed=600
    )
    waiting = str(said["waiting_for"])
    assert waiting.startswith("16 more canary requests in the window (4 of 20 in 60 s)")
    assert "never holds 20" in waiting and "lower analysis.min_requests" in waiting


def test_a_healthy_canary_waits_for_its_hold() -> None:
    said = status(
        Verdict(Outcome.HEALTHY, canary_requests=30, stable_requests=900),
        elapsed=60,
        step_requests=30,
    )
    assert said["waiting_for"] == (
        "hold: 4 min more at this step; 20 more canary requests at this step; "
        "at the window's rate (30/min): ~40 s"
    )
    assert said["hold"] == {"seconds": 300, "elapsed_s": 60.0, "requests": 50, "requests_done": 30}


def test_a_rolled_back_canary_shows_the_verdict_that_rolled_it_back() -> None:
    cause = "error_rate: degraded: error rate 21.70% vs 1.00%, confidence 0.9999"
    said = status(
        Verdict(Outcome.NOT_ENOUGH_DATA), elapsed=5, phase=Phase.ROLLED_BACK, reason=cause
    )
    assert said["verdict"] == f"rolled back: {cause}"
    assert "rollout reset clinical" in str(said["waiting_for"])
