"""Quality signals through real Envoy: request ids, POST /feedback, refusals, quality rollbacks.

One stack for the module (a 50 % canary, so each cohort gets signals fast); every test
starts from an operator reset, which opens a fresh analysis window.
"""

from __future__ import annotations

import json
import math
import random
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.fleet import running_fleet
from tests.e2e.stack import (
    OBSERVE_ALL,
    SWITCHYARD,
    Client,
    Load,
    Reply,
    Stack,
    canary_config,
    http_post,
    running_stack,
    wait_until,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    config = canary_config(percent=50, steps=[50, 100], hold={"seconds": 3600, "requests": 10**6})
    config["envoy"].update(OBSERVE_ALL)  # feedback for every stable answer counts
    with running_stack(tmp_path_factory.mktemp("quality"), config) as running:
        yield running


@pytest.fixture
def fresh(stack: Stack) -> Stack:
    """The canary back at its first step, a new window, well-behaved backends."""
    for backend in stack.backends.values():
        backend.control(refusal_rate=0.0, quality_score=-1.0, error_rate=0.0)
    status, _ = http_post(stack.metrics_port, "/rollout/clinical/reset")
    assert status == 200
    wait_until(lambda: rollout(stack)["phase"] == "progressing", 10, "the reset")
    time.sleep(1.1)  # the window starts at the whole second after the reset
    return stack


def rollout(stack: Stack) -> dict[str, Any]:
    return stack.switchyard_stats()["rollouts"]["clinical"]


def send(stack: Stack, count: int) -> list[Reply]:
    def one(n: int) -> Reply:
        client = Client(stack.port)
        try:
            return client.chat("symptom: cough", headers={"x-session-id": f"q-{time.time()}-{n}"})
        finally:
            client.close()

    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(one, range(count)))
    assert all(reply.status == 200 for reply in replies)
    return replies


def post_feedback(stack: Stack, payload: object) -> tuple[int, dict[str, Any]]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    status, answer = http_post(stack.metrics_port, "/feedback", body)
    return status, json.loads(answer)


def test_bad_or_unknown_feedback_gets_a_clear_4xx_and_disturbs_nothing(fresh: Stack) -> None:
    stack = fresh
    stack.backends["med-v1"].control(quality_score=0.7)  # the score header, from a backend
    replies = send(stack, 40)
    ids = [reply.headers.get("x-request-id", "") for reply in replies]
    assert all(ids) and len(set(ids)) == len(ids)  # every routed answer carries its own id
    before = rollout(stack)
    cases = [
        (b"{", 400, "expected a JSON object"),
        ({"request_id": "no-such-request", "score": 0.5}, 404, "unknown request id"),
        ({"request_id": ids[0], "score": 2}, 400, "score: expected a number from 0 to 1"),
        ({"request_id": ids[0], "flag": "rude"}, 400, "flag: expected one of"),
        ({"request_id": ids[0]}, 400, "expected a score, a flag, or both"),
        (b"x" * 20_000, 413, "expected at most"),
    ]
    for payload, expected, message in cases:
        status, answer = post_feedback(stack, payload)
        assert (status, expected) == (expected, expected) and message in answer["error"]
    status, answer = post_feedback(stack, {"request_id": ids[1], "flag": "wrong"})
    assert status == 200 and answer["route"] == "clinical"
    time.sleep(1.0)
    after = rollout(stack)
    assert (after["phase"], after["version"]) == (before["phase"], before["version"])
    assert send(stack, 5)
    metrics = stack.metrics_text()
    assert 'switchyard_feedback_total{result="unknown_id",source="post"} 1.0' in metrics
    assert 'switchyard_feedback_total{result="invalid",source="post"} 4.0' in metrics
    wait_until(lambda: quality_row(stack, "stable")["scored"] > 0, 5, "header scores")
    assert quality_row(stack, "stable")["score_mean"] == 0.7  # Envoy passed the header on


def test_feedback_gets_exactly_one_response_on_the_wire(stack: Stack) -> None:
    """Read to the end of the connection: nothing follows the one answer."""
    body = json.dumps({"request_id": "not-a-known-one", "score": 0.5}).encode()
    request = (
        b"POST /feedback HTTP/1.1\r\nhost: x\r\nconnection: close\r\n"
        + f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )
    with socket.create_connection(("127.0.0.1", stack.metrics_port), timeout=5) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert received.count(b"HTTP/1.") == 1, received
    assert b" 404 " in received.split(b"\r\n")[0] and b"unknown request id" in received


def quality_row(stack: Stack, cohort: str) -> dict[str, Any]:
    rows = stack.switchyard_stats()["quality"]
    return next(r for r in rows if r["route"] == "clinical" and r["cohort"] == cohort)


def scores_posted(stack: Stack, replies: list[Reply], score: Any) -> None:
    for reply in replies:
        payload = {"request_id": reply.headers["x-request-id"], "score": score(reply)}
        # switchyard learns a request id when its response's observe stream ends, which
        # trails the reply the client got: on a loaded machine the last ids take a moment.
        status = wait_until(partial(_posted, stack, payload), 10, "the request id known")
        assert status == 200


def _posted(stack: Stack, payload: dict[str, Any]) -> int | None:
    """The status of a feedback post, None while its request id is unknown (404)."""
    status, _ = post_feedback(stack, payload)
    return None if status == 404 else status


@pytest.mark.long
def test_same_scores_for_both_cohorts_do_not_roll_back_over_minutes(fresh: Stack) -> None:
    """A/A for two minutes: traffic and scores from one distribution for both cohorts,
    the window sliding over them (bench/canary_sim.py --quality covers hours)."""
    stack = fresh
    rng = random.Random(7)
    deadline = time.monotonic() + 120
    rounds = 0
    while time.monotonic() < deadline:
        replies = send(stack, 40)
        scores_posted(stack, replies, lambda _: round(rng.uniform(0.3, 1.0), 3))
        state = rollout(stack)
        assert state["phase"] == "progressing", state
        rounds += 1
        time.sleep(1.0)
    assert rounds >= 20
    assert "score: healthy, mean score" in state["verdict"], state["verdict"]


def test_low_scores_posted_for_the_canary_roll_it_back(fresh: Stack) -> None:
    stack = fresh
    rng = random.Random(8)
    replies = send(stack, 160)
    assert rollout(stack)["phase"] == "progressing"

    def score(reply: Reply) -> float:
        low = reply.cohort == "canary"
        return round(rng.uniform(0.1, 0.4) if low else rng.uniform(0.6, 1.0), 3)

    posted_at = time.monotonic()
    scores_posted(stack, replies, score)
    wait_until(lambda: rollout(stack)["phase"] == "rolled_back", 15, "a score rollback")
    print(f"score rollback {time.monotonic() - posted_at:.1f}s after the scores were posted")
    reason = rollout(stack)["reason"]
    assert reason.startswith("quality.score: degraded: mean score") and "scored)" in reason


def test_a_refusing_canary_is_rolled_back_on_refusals_alone(fresh: Stack) -> None:
    stack = fresh
    with Load(stack, "symptom: cough", threads=4) as load:
        wait_until(lambda: sum(s.cohort == "canary" for s in load.sent) >= 30, 20, "traffic")
        stack.backends["med-v2"].control(refusal_rate=1.0)
        refusing_at = time.monotonic()
        wait_until(lambda: rollout(stack)["phase"] == "rolled_back", 20, "a refusal rollback")
        took = time.monotonic() - refusing_at
    print(f"refusal rollback after {took:.1f}s: {rollout(stack)['reason']}")
    assert rollout(stack)["reason"].startswith("quality.refusal: degraded: refusal rate")
    assert all(sent.status == 200 for sent in load.sent)  # status stayed healthy throughout
    canary = quality_row(stack, "canary")
    assert canary["flags"]["refusal"] >= 5
    assert "refusal" not in quality_row(stack, "stable")["flags"]
    command = [
        SWITCHYARD, "report",
        "--admin", f"http://127.0.0.1:{stack.admin_port}",
        "--switchyard", f"http://127.0.0.1:{stack.metrics_port}",
    ]  # fmt: skip
    text = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    quality_table = text.split("Quality by route, cohort and backend")[1].split("\n\n")[0]
    line = next(line for line in quality_table.splitlines() if line.startswith("clinical  canary"))
    assert line.split()[-4] != "0.00%"  # the refusal column
    assert 'switchyard_rollbacks_total{reason="quality.refusal",route="clinical"}' in (
        stack.metrics_text()
    )


def test_fleet_feedback_on_another_replica_rolls_the_canary_back(tmp_path: Path) -> None:
    config = canary_config(percent=50, steps=[50, 100], hold={"seconds": 3600, "requests": 10**6})
    config["envoy"].update(OBSERVE_ALL)  # feedback for every stable answer counts
    with running_fleet(tmp_path, config, replicas=2) as fleet:
        served_by, asked = fleet.replicas
        # The analysis counts from the whole second after the step started: a fleet up
        # within that second would send the whole batch before its window opens.
        started = datetime.fromisoformat(fleet.rollout(0, "clinical")["step_started"])
        wait_until(lambda: time.time() >= math.ceil(started.timestamp()), 5, "the window to open")
        # Posted right away: an id not in Redis yet (the serving replica flushes every
        # 0.25 s) is read again after a flush.
        replies = send(served_by, 120)
        rng = random.Random(9)

        def score(reply: Reply) -> float:
            low = reply.cohort == "canary"
            return round(rng.uniform(0.1, 0.4) if low else rng.uniform(0.6, 1.0), 3)

        # 200 for each: this replica never saw these requests, it finds them in Redis.
        posted = {reply.headers["x-request-id"]: score(reply) for reply in replies}
        scores_posted(asked, replies, lambda reply: posted[reply.headers["x-request-id"]])
        # The same scores posted again to the replica that served them count once.
        for request_id, value in posted.items():
            status, answer = post_feedback(served_by, {"request_id": request_id, "score": value})
            assert (status, answer["result"]) == (200, "duplicate")
        wait_until(
            lambda: {fleet.rollout(i, "clinical")["phase"] for i in (0, 1)} == {"rolled_back"},
            15,
            "the fleet's score rollback",
        )
        assert fleet.rollout(0, "clinical")["reason"].startswith("quality.score")
        # The claims live in Redis: a replica killed and restarted still counts none again.
        asked.stop_switchyard(signal.SIGKILL)
        asked.start_switchyard()
        request_id, value = next(iter(posted.items()))
        status, answer = post_feedback(asked, {"request_id": request_id, "score": value})
        assert (status, answer["result"]) == (200, "duplicate")


def test_an_answer_cut_by_max_tokens_is_flagged_truncated(fresh: Stack) -> None:
    stack = fresh
    cut = stack.client.chat("symptom: a sore throat", max_tokens=1)
    assert cut.status == 200 and cut.json["choices"][0]["finish_reason"] == "length"
    backend = cut.backend

    def truncated() -> float:
        for line in stack.metrics_text().splitlines():
            if line.startswith("switchyard_quality_flags_total") and (
                'flag="truncated"' in line and f'backend="{backend}"' in line
            ):
                return float(line.split()[-1])
        return 0.0

    wait_until(lambda: truncated() >= 1, 5, "the truncated flag")
    # A limit the backend refuses reaches the client as the backend's own 400.
    refused = stack.client.chat("symptom: a sore throat", max_tokens=0)
    assert refused.status == 400 and refused.json["error"]["param"] == "max_tokens"
