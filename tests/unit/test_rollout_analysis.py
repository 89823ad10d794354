from __future__ import annotations

import random
from dataclasses import replace

import pytest

from extproc.config import AnalysisConfig, parse_config
from extproc.rollout.analysis import analyze
from extproc.rollout.canary import Phase, RolloutError, Rollouts, hold_met
from extproc.rollout.metrics import RolloutMetrics
from extproc.rollout.outcome import Outcome
from extproc.rollout.traffic import TrafficStats
from extproc.rollout.window import Summary, summarize
from extproc.store.clock import StoreClock
from extproc.store.memory import MemoryStore


class Clock(StoreClock):
    def __init__(self) -> None:
        super().__init__(lambda: self.now)
        self.now = 0.0


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


def memory_store(clock: Clock) -> tuple[Rollouts, MemoryStore]:
    rollouts = Rollouts()
    store = MemoryStore(rollouts, TrafficStats(RolloutMetrics(), clock=clock), clock)
    store.rollouts_changed(rollouts.apply_config(config(), store.starting_state))
    return rollouts, store


def hold_met_now(rollouts: Rollouts, clock: Clock) -> bool:
    state, canary = rollouts.get("r")
    return hold_met(canary, state, clock(), rollouts.step_requests("r"))


async def test_promotion_waits_for_hold_time_and_requests() -> None:
    clock = Clock()
    rollouts, store = memory_store(clock)
    assert not hold_met_now(rollouts, clock)
    clock.now = 11
    assert not hold_met_now(rollouts, clock)  # no requests yet
    for _ in range(3):
        rollouts.record_canary_request("r")
    assert hold_met_now(rollouts, clock)
    promoted = await store.act("r", "promote", "test")
    assert (promoted.percent, promoted.version) == (5, 2)
    assert not hold_met_now(rollouts, clock)  # a new step starts a new hold
    state = await store.act("r", "promote", "test")
    assert (state.percent, state.phase) == (100, Phase.PROMOTED)


async def test_rollback_sticks_until_reset_and_reload_keeps_state() -> None:
    rollouts, store = memory_store(Clock())
    await store.act("r", "rollback", "error_rate")
    assert (await store.act("r", "promote", "test")).phase is Phase.ROLLED_BACK
    assert rollouts.apply_config(config(), store.starting_state) == set()  # same canary backend
    assert rollouts.state("r").serving_percent == 0
    assert (await store.act("r", "reset", "")).serving_percent == 1
    rollouts.apply_config(config(), store.starting_state)
    assert rollouts.state("r").phase is Phase.PROGRESSING


async def test_unknown_route_and_stale_versions_are_refused() -> None:
    rollouts, store = memory_store(Clock())
    with pytest.raises(RolloutError):
        await store.act("nope", "promote", "")
    current = rollouts.state("r")
    assert not rollouts.adopt("r", replace(current, percent=50))  # same version: ignored
    assert rollouts.adopt("r", replace(current, percent=50, version=current.version + 1))
    assert rollouts.state("r").percent == 50


def samples(n: int, error_rate: float, latency: float, rng: random.Random) -> Summary:
    return summarize(
        [(rng.random() < error_rate, latency * rng.lognormvariate(0, 0.2)) for _ in range(n)]
    )


def test_total_failure_is_detected_from_few_requests() -> None:
    rng = random.Random(1)
    verdict = analyze(samples(20, 1.0, 0.05, rng), samples(400, 0.0, 0.05, rng), AnalysisConfig())
    assert verdict.status is Outcome.DEGRADED and verdict.metric == "error_rate"


def test_doubled_latency_is_detected() -> None:
    rng = random.Random(2)
    verdict = analyze(samples(40, 0, 0.1, rng), samples(800, 0, 0.05, rng), AnalysisConfig())
    assert verdict.status is Outcome.DEGRADED and verdict.metric == "latency"


def test_small_absolute_differences_are_not_a_verdict() -> None:
    # 0.1 % -> 0.2 % errors on 100 requests is below the absolute floor.
    rng = random.Random(3)
    verdict = analyze(
        samples(100, 0.002, 0.05, rng), samples(2000, 0.001, 0.05, rng), AnalysisConfig()
    )
    assert verdict.status is Outcome.HEALTHY


def test_a_a_false_alarm_rate_is_low() -> None:
    rng = random.Random(4)
    cfg = AnalysisConfig()
    alarms = sum(
        analyze(samples(60, 0.02, 0.05, rng), samples(1200, 0.02, 0.05, rng), cfg).status
        is Outcome.DEGRADED
        for _ in range(500)
    )
    assert alarms <= 3  # confidence 0.999 per test, two tests per check


def test_not_enough_data() -> None:
    rng = random.Random(5)
    assert (
        analyze(samples(5, 1, 0.05, rng), samples(500, 0, 0.05, rng), AnalysisConfig()).status
        is Outcome.NOT_ENOUGH_DATA
    )
