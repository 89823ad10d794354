"""envoy.observe_sample through real Envoy: every canary response observed, a share of stable's,
and the automatic rollback still as fast."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.stack import Load, Stack, canary_config, running_stack, wait_until

pytestmark = pytest.mark.e2e

SHARE = 0.2


def traffic(stack: Stack, cohort: str) -> dict[str, Any]:
    rows = [r for r in stack.switchyard_stats()["traffic"] if r["route"] == "clinical"]
    return next((r for r in rows if r["cohort"] == cohort), {"observed": 0})


def test_sampled_stable_and_every_canary_then_a_fast_rollback(tmp_path: Path) -> None:
    config = canary_config()
    config["envoy"]["observe_sample"] = SHARE
    with running_stack(tmp_path, config) as stack, Load(stack, "symptom: cough") as load:
        wait_until(lambda: sum(s.cohort == "canary" for s in load.sent) >= 30, 30, "canary traffic")
        sent = {
            c: sum(s.cohort == c and s.status == 200 for s in load.sent)
            for c in ("canary", "stable")
        }
        # Observe streams trail the responses: every canary response shows up.
        wait_until(
            lambda: traffic(stack, "canary")["observed"] >= sent["canary"], 10, "canary observed"
        )
        stable = traffic(stack, "stable")
        assert stable["observed_share"] == SHARE
        assert 0.05 * sent["stable"] < stable["observed"] < 0.45 * sent["stable"]
        assert stable["requests"] == round(stable["observed"] / SHARE)
        report_stats = stack.envoy_stats()
        assert report_stats["cluster.med-v1.upstream_rq_total"] >= sent["stable"]

        stack.backends["med-v2"].control(error_rate=1.0)
        broken_at = time.monotonic()
        state = lambda: stack.switchyard_stats()["rollouts"]["clinical"]["phase"]  # noqa: E731
        wait_until(lambda: state() == "rolled_back", 30, "the rollback")
        took = time.monotonic() - broken_at
    print(f"sampled {stable['observed']} of {sent['stable']} stable; rollback after {took:.2f}s")
    assert took < 5.0
