from __future__ import annotations

import random

from extproc.config import AnalysisConfig, parse_config
from extproc.rollout.analysis import Status, analyze
from extproc.rollout.canary import Phase, Rollouts
from extproc.rollout.observe import Sample


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def config(**canary: object):
    return parse_config(
        {
            "backends": [
                {"name": "a", "address": "127.0.0.1:1"},
                {"name": "b", "address": "127.0.0.1:2"},
            ],
            "routes": [
                {
                    "name": "r",
                    "backends": [{"backend": "a"}],
                    "canary": {
                        "backend": "b",
                        "percent": 1,
                        "steps": [1, 5, 100],
                        "hold": {"seconds": 10, "requests": 3},
                        **canary,
                    },
                }
            ],
            "default_route": "r",
        },
        "t",
    )


def test_promotion_waits_for_hold_time_and_requests() -> None:
    clock = Clock()
    rollouts = Rollouts(clock)
    rollouts.apply_config(config())
    assert not rollouts.due_for_promotion("r")
    clock.now = 11
    assert not rollouts.due_for_promotion("r")  # no requests yet
    for _ in range(3):
        rollouts.record_canary_request("r")
    assert rollouts.due_for_promotion("r")
    assert rollouts.promote("r").percent == 5
    assert not rollouts.due_for_promotion("r")  # a new step starts a new hold
    state = rollouts.promote("r")
    assert (state.percent, state.phase) == (100, Phase.PROMOTED)


def test_rollback_sticks_until_reset_and_reload_keeps_state() -> None:
    rollouts = Rollouts(Clock())
    rollouts.apply_config(config())
    rollouts.rollback("r", "error_rate")
    assert rollouts.promote("r").phase is Phase.ROLLED_BACK
    rollouts.apply_config(config())  # same canary backend: state kept
    assert rollouts.state("r").serving_percent == 0
    assert rollouts.reset("r").serving_percent == 1
    rollouts.apply_config(config())
    assert rollouts.state("r").phase is Phase.PROGRESSING


def samples(n: int, error_rate: float, latency: float, rng: random.Random) -> list[Sample]:
    return [
        Sample(0, rng.random() < error_rate, latency * rng.lognormvariate(0, 0.2)) for _ in range(n)
    ]


def test_total_failure_is_detected_from_few_requests() -> None:
    rng = random.Random(1)
    verdict = analyze(samples(20, 1.0, 0.05, rng), samples(400, 0.0, 0.05, rng), AnalysisConfig())
    assert verdict.status is Status.DEGRADED and verdict.metric == "error_rate"


def test_doubled_latency_is_detected() -> None:
    rng = random.Random(2)
    verdict = analyze(samples(40, 0, 0.1, rng), samples(800, 0, 0.05, rng), AnalysisConfig())
    assert verdict.status is Status.DEGRADED and verdict.metric == "latency"


def test_small_absolute_differences_are_not_a_verdict() -> None:
    # 0.1 % -> 0.2 % errors on 100 requests is below the absolute floor.
    rng = random.Random(3)
    verdict = analyze(
        samples(100, 0.002, 0.05, rng), samples(2000, 0.001, 0.05, rng), AnalysisConfig()
    )
    assert verdict.status is Status.HEALTHY


def test_a_a_false_alarm_rate_is_low() -> None:
    rng = random.Random(4)
    cfg = AnalysisConfig()
    alarms = sum(
        analyze(samples(60, 0.02, 0.05, rng), samples(1200, 0.02, 0.05, rng), cfg).status
        is Status.DEGRADED
        for _ in range(500)
    )
    assert alarms <= 3  # confidence 0.999 per test, two tests per check


def test_not_enough_data() -> None:
    rng = random.Random(5)
    assert (
        analyze(samples(5, 1, 0.05, rng), samples(500, 0, 0.05, rng), AnalysisConfig()).status
        is Status.NOT_ENOUGH_DATA
    )
