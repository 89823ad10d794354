"""analysis.source envoy through real Envoy: the rollback from Envoy's own statistics, with
observing turned off altogether."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.fleet import running_fleet
from tests.e2e.stack import Load, Stack, canary_config, running_stack, wait_until

pytestmark = pytest.mark.e2e


def phase(stack: Stack) -> str:
    return str(stack.switchyard_stats()["rollouts"]["clinical"]["phase"])


def verdict(stack: Stack) -> str:
    return str(stack.switchyard_stats()["rollouts"]["clinical"]["verdict"])


def test_a_failing_canary_is_rolled_back_from_envoys_statistics_alone(tmp_path: Path) -> None:
    config = canary_config()
    config["analysis"]["source"] = "envoy"
    config["envoy"]["observe"] = "off"
    with running_stack(tmp_path, config) as stack, Load(stack, "symptom: cough") as load:
        wait_until(lambda: sum(s.cohort == "canary" for s in load.sent) >= 30, 30, "canary traffic")
        # Both cohorts counted by Envoy: a healthy verdict, no rollback.
        wait_until(lambda: "healthy" in verdict(stack), 15, "a healthy verdict")
        assert phase(stack) == "progressing"
        assert stack.switchyard_stats()["traffic"] == []  # nothing observed
        stack.backends["med-v2"].control(error_rate=1.0)
        broken_at = time.monotonic()
        wait_until(lambda: phase(stack) == "rolled_back", 30, "the rollback")
        took = time.monotonic() - broken_at
    print(f"rollback from Envoy's statistics after {took:.2f}s")
    assert took < 5.0
    assert "error_rate" in stack.log("switchyard")


def test_a_fleet_rolls_back_from_the_envoy_statistics_of_a_replica_that_does_not_lead(
    tmp_path: Path,
) -> None:
    """Each replica reads its own Envoy's counters into the fleet's per-second buckets in
    Redis; the leader judges them even when no request went through its own Envoy."""
    config = canary_config()
    config["analysis"]["source"] = "envoy"
    config["envoy"]["observe"] = "off"
    with running_fleet(tmp_path, config, replicas=2) as fleet:
        wait_until(lambda: fleet.leader() is not None, 10, "a leader")
        leader = fleet.leader()
        assert leader is not None
        follower = fleet.replicas[1 - leader]
        with Load(follower, "symptom: cough") as load:
            wait_until(
                lambda: sum(s.cohort == "canary" for s in load.sent) >= 30, 30, "canary traffic"
            )
            # The leader's own Envoy saw nothing: a healthy verdict there is the follower's
            # counters, read through Redis.
            wait_until(
                lambda: "healthy" in fleet.rollout(leader, "clinical")["verdict"],
                15,
                "a healthy verdict on the leader",
            )
            follower.backends["med-v2"].control(error_rate=1.0)
            broken_at = time.monotonic()
            wait_until(
                lambda: {fleet.rollout(i, "clinical")["phase"] for i in (0, 1)} == {"rolled_back"},
                20,
                "the fleet's rollback",
            )
            took = time.monotonic() - broken_at
        print(f"fleet rollback from a follower's Envoy statistics after {took:.2f}s")
        assert fleet.rollout(leader, "clinical")["reason"].startswith("error_rate")
        assert took < 10.0
