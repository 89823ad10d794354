"""Shadow launch through a real Envoy: copies of P % of sessions go to the shadow backend,
clients only ever get the primary's answers, and a healthy shadow becomes a canary."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from extproc.request.session import cohort_bucket
from tests.e2e.stack import (
    OBSERVE_ALL,
    SWITCHYARD,
    Stack,
    make_config,
    running_stack,
    wait_until,
)

pytestmark = pytest.mark.e2e

TOKEN = "shadow-admin-token"
SHADOW_PERCENT = 30
ROUTES = [
    {
        "name": "chat",
        "backends": [{"backend": "v1"}],
        "canary": {
            "backend": "v2",
            "percent": 0,
            "steps": [10, 50, 100],
            "hold": {"seconds": 3600, "requests": 100_000},
        },
        "shadow": {"backend": "v2", "percent": SHADOW_PERCENT},
    },
    {
        # Nothing to rewrite for this shadow: Envoy alone marks and forwards its copies.
        "name": "notes",
        "match": {"keywords": ["note"]},
        "backends": [{"backend": "v1"}],
        "shadow": {"backend": "v3", "percent": 50},
    },
]


def is_shadowed(session: str, percent: float = SHADOW_PERCENT, route: str = "chat") -> bool:
    return cohort_bucket(route, session) < percent * 100


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    config = make_config(
        ["v1", "v2", "v3"],
        ROUTES,
        "chat",
        server={"admin_token_env": "SY_SHADOW_TOKEN"},
        analysis={"min_requests": 20},
        envoy=OBSERVE_ALL,  # the tests wait for stable's copies and replies to be observed
    )
    # The shadow serves another model name, strictly: a copy not rewritten for it fails.
    config["backends"][1]["model"] = "v2-model"
    with running_stack(
        tmp_path_factory.mktemp("shadow"),
        config,
        env={"SY_SHADOW_TOKEN": TOKEN},
        backend_args={"v2": ["--served-model", "v2-model"]},
    ) as stack:
        yield stack


def converse(stack: Stack, sessions: list[str], turns: int = 1) -> list[tuple[str, str, float]]:
    """Every session's turns; asserts each answer is the primary's.

    (session, cohort, seconds) per request. The cohort is empty when Envoy failed open
    (switchyard slower than envoy.message_timeout_ms on a busy machine): such a request
    is not routed, so not copied either.
    """

    def one(session: str) -> list[tuple[str, str, float]]:
        out = []
        for turn in range(turns):
            start = time.perf_counter()
            reply = stack.client.chat(
                "hello", *(["and then?"] * turn), headers={"x-session-id": session}
            )
            elapsed = time.perf_counter() - start
            assert reply.status == 200, reply.body
            assert reply.json["backend"] == reply.backend == "v1", (session, reply.headers)
            assert reply.cohort in ("stable", "")
            out.append((session, reply.cohort, elapsed))
        return out

    with ThreadPoolExecutor(8) as pool:
        return [item for items in pool.map(one, sessions) for item in items]


def shadow_sessions(stack: Stack, backend: str = "v2") -> Counter[str]:
    received = stack.backends[backend].received()
    return Counter(r["headers"].get("x-session-id", "") for r in received)


def rollout(
    stack: Stack, action: str, *extra: str, token: str = TOKEN, route: str = "chat"
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SY_SHADOW_TOKEN": token}
    return subprocess.run(
        [
            SWITCHYARD,
            "rollout",
            action,
            route,
            "--url",
            f"http://127.0.0.1:{stack.metrics_port}",
            "--token-env",
            "SY_SHADOW_TOKEN",
            *extra,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )


def test_shadow_gets_its_percent_of_sessions_whole_and_clients_only_the_primary(
    stack: Stack,
) -> None:
    sessions = [f"user-{i}" for i in range(300)]
    sent = converse(stack, sessions, turns=2)
    routed = Counter(session for session, cohort, _ in sent if cohort == "stable")
    assert sum(routed.values()) >= 0.97 * len(sent)
    expected = Counter({s: n for s, n in routed.items() if is_shadowed(s)})
    # Copies are sent without waiting for them: they arrive shortly after.
    wait_until(
        lambda: shadow_sessions(stack).total() >= expected.total(), 15, "the shadow's copies"
    )
    time.sleep(0.3)
    # By session: the sessions the hash picks, every turn of their conversation.
    assert shadow_sessions(stack) == expected
    assert 0.22 < len(expected) / len(sessions) < 0.38
    copy = stack.backends["v2"].received()[0]
    assert copy["model"] == "v2-model" and copy["path"] == "/v1/chat/completions"
    assert stack.backends["v1"].stats()["requests"] == 600


def test_a_copy_needing_no_rewrite_is_marked_and_observed_by_envoy_alone(stack: Stack) -> None:
    routed = []
    for session in (f"note-{i}" for i in range(100)):
        reply = stack.client.chat("take a note", headers={"x-session-id": session})
        assert (reply.status, reply.backend) == (200, "v1")
        if reply.route == "notes":  # not when Envoy failed open on a busy machine
            routed.append(session)
    assert len(routed) >= 97
    expected = Counter({s: 1 for s in routed if is_shadowed(s, 50, "notes")})
    wait_until(lambda: shadow_sessions(stack, "v3") == expected, 10, "the notes copies")
    # The copy is marked in its answer for the observing filter, never to the backend.
    copy = stack.backends["v3"].received()[0]["headers"]
    assert not [name for name in copy if name.startswith(("x-switchyard-", "x-envoy-"))]
    wait_until(
        lambda: any(
            (r["route"], r["cohort"], r["backend"], r["requests"])
            == ("notes", "shadow", "v3", expected.total())
            for r in stack.switchyard_stats()["traffic"]
        ),
        10,
        "the notes copies observed",
    )
    rows = stack.switchyard_stats()["traffic"]
    assert not any(
        r["route"] == "notes" and r["backend"] == "v3" and r["cohort"] != "shadow" for r in rows
    )
    stats = stack.envoy_stats()
    copies_to_v2 = stack.backends["v2"].stats()["requests"]
    assert stats["http.shadow.ext_proc.switchyard.streams_started"] == copies_to_v2


def test_launch_needs_the_token_and_turns_the_shadow_into_its_first_step(stack: Stack) -> None:
    wait_until(
        lambda: stack.switchyard_stats()["shadows"]["chat"]["verdict"] == "healthy",
        10,
        "a healthy shadow",
    )
    denied = rollout(stack, "launch", token="wrong")
    assert denied.returncode == 1 and "Authorization: Bearer" in denied.stderr
    launched = rollout(stack, "launch")
    assert launched.returncode == 0, launched.stderr
    row = next(line for line in launched.stdout.splitlines() if line.startswith("chat "))
    assert row.split()[1:3] == ["progressing", "10%"], launched.stdout  # status's table
    before = stack.backends["v2"].stats()["requests"]
    sessions = [f"launched-{i}" for i in range(300)]
    canary = set()
    for session in sessions:
        reply = stack.client.chat("hello", headers={"x-session-id": session})
        assert reply.status == 200
        if reply.cohort == "canary":
            assert reply.backend == "v2"
            canary.add(session)
    # The first step's sessions are among those the shadow saw, and copies stopped.
    assert canary == {s for s in sessions if is_shadowed(s, 10)}
    time.sleep(0.5)
    assert stack.backends["v2"].stats()["requests"] - before == len(canary)
    again = rollout(stack, "launch")
    assert again.returncode == 1 and "expected a canary at 0 %" in again.stderr
    # Back to the shadow phase for what follows.
    assert rollout(stack, "reset").returncode == 0


def test_a_failing_or_slow_shadow_costs_clients_nothing(stack: Stack) -> None:
    shadowed = [s for s in (f"slow-{i}" for i in range(2000)) if is_shadowed(s)][:450]
    base = [t for _, _, t in converse(stack, shadowed[:150])]
    stack.backends["v2"].control(error_rate=1.0, status=500)
    failing = [t for _, _, t in converse(stack, shadowed[150:300])]
    stack.backends["v2"].control(error_rate=0.0, latency_ms=5000)
    slow = [t for _, _, t in converse(stack, shadowed[300:])]
    stack.backends["v2"].control(latency_ms=0)
    p50 = statistics.median(base)
    # Generous bounds for a shared machine: a 5 s shadow would show as seconds.
    assert statistics.median(failing) < 2 * p50 + 0.02, (p50, statistics.median(failing))
    assert statistics.median(slow) < 2 * p50 + 0.02, (p50, statistics.median(slow))
    assert max(slow) < 2.5


def test_report_shows_the_shadow_beside_the_primary_and_launch_refuses_it(
    stack: Stack, tmp_path: Path
) -> None:
    # The slow copies finish (5 s) and are observed.
    wait_until(
        lambda: stack.switchyard_stats()["shadows"]["chat"]["shadow"]["latency_p95_ms"] > 4000,
        15,
        "the slow copies observed",
    )
    shadow = json.loads(stack.report("--json"))["shadows"]["chat"]
    assert shadow["backend"] == "v2"
    assert shadow["shadow"]["requests"] >= 450 and shadow["shadow"]["errors"] >= 140
    assert shadow["primary"]["errors"] == 0 and shadow["primary"]["requests"] > 1000
    assert shadow["shadow"]["prompt_tokens_per_request"] > 0
    assert shadow["verdict"].startswith("error rate")
    text = stack.report()
    assert "Shadows (copies of some sessions' requests" in text
    assert "chat: 30% of sessions -> error rate" in text
    section = text[text.index("Shadows (") :].splitlines()
    lines = [line.split() for line in section if line.strip().startswith("chat ")]
    assert lines[0][:3] == ["chat", "primary", "(stable)"]
    assert lines[1][:3] == ["chat", "shadow", "v2"]
    # The canary analysis never saw the copies: nothing judged, nothing rolled back.
    state = json.loads(rollout(stack, "status", "--json").stdout)["rollouts"]["chat"]
    assert (state["phase"], state["percent"]) == ("progressing", 0)
    assert state["verdict_detail"]["canary_requests"] == 0
    page = tmp_path / "report.html"
    stack.report("--html", str(page))
    assert '<section class="shadow" data-route="chat">' in page.read_text()
    assert "has no canary" in rollout(stack, "launch", route="notes").stderr
    refused = rollout(stack, "launch")
    assert refused.returncode == 1 and "the shadow is not healthy: error rate" in refused.stderr
