"""envoy.observe_sample through real Envoy, at the product's default: every canary response
observed, a tenth of stable's (picked by x-request-id), feedback outside the sample answered
"unsampled", and the automatic rollback still as fast."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from extproc.config import EnvoyConfig
from extproc.response.sampling import in_sample
from tests.e2e.stack import Load, Stack, canary_config, http_post, running_stack, wait_until

pytestmark = pytest.mark.e2e

SHARE = EnvoyConfig().observe_sample


def traffic(stack: Stack, cohort: str) -> dict[str, Any]:
    rows = [r for r in stack.switchyard_stats()["traffic"] if r["route"] == "clinical"]
    return next((r for r in rows if r["cohort"] == cohort), {"observed": 0})


def feedback(stack: Stack, request_id: str) -> tuple[int, dict[str, Any]]:
    body = json.dumps({"request_id": request_id, "score": 0.9}).encode()
    status, answer = http_post(stack.metrics_port, "/feedback", body)
    return status, json.loads(answer)


def test_sampled_stable_and_every_canary_then_a_fast_rollback(tmp_path: Path) -> None:
    assert SHARE < 1  # the default samples
    with running_stack(tmp_path, canary_config()) as stack:
        # Stable replies, by their ids: feedback is accepted for the sampled ones (once
        # observed) and answered "unsampled" for the rest, never "unknown".
        ids = []
        for n in range(60):
            reply = stack.client.chat("symptom: cough", headers={"x-session-id": f"fb-{n}"})
            if reply.cohort == "stable":
                ids.append(reply.headers["x-request-id"])
        inside = [i for i in ids if in_sample(i, SHARE)]
        outside = [i for i in ids if not in_sample(i, SHARE)]
        assert inside and outside, (len(inside), len(outside))
        for request_id in outside:
            status, answer = feedback(stack, request_id)
            assert (status, answer["result"]) == (202, "unsampled"), answer
        for request_id in inside:
            wait_until(lambda i=request_id: feedback(stack, i)[0] == 200, 5, "sampled feedback")
        metrics = stack.metrics_text()
        unsampled = (
            f'switchyard_feedback_total{{result="unsampled",source="post"}} {len(outside)}.0'
        )
        assert unsampled in metrics

        with Load(stack, "symptom: cough") as load:
            wait_until(
                lambda: sum(s.cohort == "canary" for s in load.sent) >= 30, 30, "canary traffic"
            )
            sent = {
                c: sum(s.cohort == c and s.status == 200 for s in load.sent)
                for c in ("canary", "stable")
            }
            # Observe streams trail the responses: every canary response shows up.
            wait_until(
                lambda: traffic(stack, "canary")["observed"] >= sent["canary"],
                10,
                "canary observed",
            )
            stable = traffic(stack, "stable")
            assert stable["observed_share"] == SHARE
            total_stable = sent["stable"] + len(ids)
            assert 0.02 * total_stable < stable["observed"] < 0.3 * total_stable
            assert stable["requests"] == round(stable["observed"] / SHARE)
            assert stack.envoy_stats()["cluster.med-v1.upstream_rq_total"] >= sent["stable"]

            stack.backends["med-v2"].control(error_rate=1.0)
            broken_at = time.monotonic()
            state = lambda: stack.switchyard_stats()["rollouts"]["clinical"]["phase"]  # noqa: E731
            wait_until(lambda: state() == "rolled_back", 30, "the rollback")
            took = time.monotonic() - broken_at
    print(f"sampled {stable['observed']} of {total_stable} stable; rollback after {took:.2f}s")
    assert took < 5.0
