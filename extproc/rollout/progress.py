"""Where a canary stands and what it waits for, in words (`switchyard rollout status`).

A pure function of the state, the route's canary config, the last verdict and the
clock: the status answers "why is it still at 1 %?" without anyone reading the
analysis code. A quiet route's canary can need more requests in the analysis window
than its share of traffic ever brings; this says so, with the rate it measured.
"""

from __future__ import annotations

from typing import Any

from extproc.config import AnalysisConfig, CanaryConfig
from extproc.rollout.analysis import Verdict
from extproc.rollout.canary import CanaryState, Phase, next_step
from extproc.rollout.outcome import Outcome


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _rate_note(more: int, per_second: float) -> str:
    if per_second <= 0:
        return "no canary request has come in the window yet"
    return f"at the window's rate ({per_second * 60:.3g}/min): ~{_duration(more / per_second)}"


def _waiting_for(
    route: str,
    state: CanaryState,
    canary: CanaryConfig,
    verdict: Verdict | None,
    analysis: AnalysisConfig,
    elapsed: float,
    step_requests: int,
    judged_here: bool,
) -> str | None:
    if state.phase is Phase.ROLLED_BACK:
        return f"an operator: `switchyard rollout reset {route}` starts it again"
    if state.phase is Phase.PAUSED:
        return f"an operator: `switchyard rollout resume {route}` (paused)"
    if state.phase is Phase.WAITING:
        return "the fleet's state store (the canary serves 0 % until it answers)"
    if state.phase is Phase.PROMOTED or next_step(canary, state.percent) is None:
        return None
    if not canary.auto:
        return f"an operator: `switchyard rollout promote {route}` (auto: false)"
    if verdict is None:
        return "the next analysis round" if judged_here else "the fleet's leader, which judges it"
    window = min(analysis.window_s, max(elapsed, 1.0))
    rate = verdict.canary_requests / window
    if verdict.status is Outcome.NOT_ENOUGH_DATA:
        missing = []
        more = analysis.min_requests - verdict.canary_requests
        if more > 0:
            if elapsed >= analysis.window_s and rate * analysis.window_s < analysis.min_requests:
                return (
                    f"{more} more canary requests in the window ({verdict.canary_requests} of "
                    f"{analysis.min_requests} in {analysis.window_s:g} s): at this rate "
                    f"({rate * 60:.3g}/min) the window never holds {analysis.min_requests}; "
                    "raise the canary's percent or lower analysis.min_requests"
                )
            missing.append(
                f"needs {more} more canary requests in the window; {_rate_note(more, rate)}"
            )
        stable_more = analysis.min_requests - verdict.stable_requests
        if stable_more > 0:
            missing.append(f"needs {stable_more} more stable requests in the window")
        return "; ".join(missing) or "enough requests: the next verdict"
    if verdict.status is Outcome.DEGRADED:
        return "the rollback this verdict calls for"
    left_s = canary.hold.seconds - elapsed
    left_requests = canary.hold.requests - step_requests
    hold = []
    if left_s > 0:
        hold.append(f"{_duration(left_s)} more at this step")
    if left_requests > 0:
        hold.append(
            f"{left_requests} more canary requests at this step; {_rate_note(left_requests, rate)}"
        )
    return "hold: " + "; ".join(hold) if hold else "the next analysis round to promote it"


def progress(
    route: str,
    state: CanaryState,
    canary: CanaryConfig,
    verdict: Verdict | None,
    analysis: AnalysisConfig,
    now: float,
    step_requests: int,
    judged_here: bool,
) -> dict[str, Any]:
    """The status fields beyond the state itself: steps, hold progress, what it waits for.
    judged_here: this replica runs the analysis (it leads the fleet, or is alone)."""
    elapsed = max(0.0, now - state.step_started)
    if state.phase is Phase.ROLLED_BACK:
        # The verdict that caused it, not the empty window since (0 % gets no traffic).
        said = f"rolled back: {state.reason}"
    elif verdict is None:
        said = "none yet at this step" if judged_here else "judged by the leader"
    else:
        said = verdict.describe()
    return {
        "steps": list(canary.steps),
        "hold": {
            "seconds": canary.hold.seconds,
            "elapsed_s": round(elapsed, 1),
            "requests": canary.hold.requests,
            "requests_done": step_requests,
        },
        "verdict": said,
        "waiting_for": _waiting_for(
            route, state, canary, verdict, analysis, elapsed, step_requests, judged_here
        ),
    }
