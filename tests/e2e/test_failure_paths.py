"""Failure paths that answer: what a client gets when switchyard, a canary or a backend fails.

Every backend is strict, as vLLM and hosted APIs are: it serves one model name
(`--served-model`) and wants its own key (`--require-key`). A request that reaches it
with another backend's body or key is answered 404/401, so a 2xx means Envoy and
switchyard (or Envoy alone) sent the right body with the right key.
"""

from __future__ import annotations

import contextlib
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.stack import (
    MODEL_DIR,
    OBSERVE_ALL,
    Load,
    Stack,
    http_get,
    make_config,
    running_stack,
    wait_until,
)

pytestmark = pytest.mark.e2e

STRICT = {
    "self": ("llama-3.1-8b", "sk-self"),
    "api": ("gpt-4o-mini", "sk-api"),
    "med": ("med-llm", "sk-med"),
}
LABELS = [
    {
        "name": "medical",
        "examples": [
            "What is the maximum daily dose of paracetamol?",
            "What are the symptoms of a stroke?",
            "Is it safe to take ibuprofen with blood thinners?",
        ],
    },
    {
        "name": "cooking",
        "examples": [
            "How long should I boil an egg?",
            "Give me a recipe for banana bread",
            "How do I make pizza dough?",
        ],
    },
]


def _strict_config(routes: list[dict[str, Any]], default: str, **sections: Any) -> dict[str, Any]:
    config = make_config(list(STRICT), routes, default, **sections)
    for backend in config["backends"]:
        model, _ = STRICT[backend["name"]]
        backend["model"] = model
        backend["credential"] = {
            "header": "authorization",
            "env": f"KEY_{backend['name'].upper()}",
            "prefix": "Bearer ",
        }
    return config


def _backend_args() -> dict[str, list[str]]:
    return {
        name: ["--served-model", model, "--require-key", key]
        for name, (model, key) in STRICT.items()
    }


def _envoy_env() -> dict[str, str]:
    return {f"KEY_{name.upper()}": key for name, (_, key) in STRICT.items()}


def _strict_stack(
    tmp_path: Path, config: dict[str, Any]
) -> contextlib.AbstractContextManager[Stack]:
    return running_stack(tmp_path, config, backend_args=_backend_args(), envoy_env=_envoy_env())


FALLBACK_ROUTES = [
    {"name": "general", "backends": [{"backend": "self"}], "fallbacks": [{"backend": "api"}]}
]


def test_with_switchyard_killed_every_request_reaches_a_backend_that_serves_it(
    tmp_path: Path,
) -> None:
    routes = [
        {"name": "clinical", "match": {"label": "medical"}, "backends": [{"backend": "med"}]},
        {
            "name": "general",
            "backends": [{"backend": "self", "weight": 50}, {"backend": "api", "weight": 50}],
        },
    ]
    config = _strict_config(routes, "general")
    config["labels"] = LABELS
    config["classifier"] = {"model": str(MODEL_DIR)}
    with _strict_stack(tmp_path, config) as stack:
        routed = stack.client.chat("What are the symptoms of a stroke?")
        assert (routed.status, routed.route, routed.backend) == (200, "clinical", "med")

        stack.stop_switchyard(signal.SIGKILL)
        replies = [
            stack.client.chat("What are the symptoms of a stroke?", model="client-model")
            for _ in range(40)
        ]
        assert [r.status for r in replies] == [200] * 40, [r.body[:200] for r in replies[:3]]
        # The default route's split, each body rewritten for the backend that answered.
        answered = {r.backend for r in replies}
        assert answered == {"self", "api"}
        for reply in replies:
            assert reply.json["model"] == STRICT[reply.backend][0]
        stats = stack.envoy_stats()
        counted = sum(
            stats.get(f"vhost.switchyard.route.unrouted.{name}.upstream_rq_completed", 0)
            for name in ("self", "api")
        )
        assert counted == 40
        assert stack.backends["med"].stats()["requests"] == 1

        started = time.monotonic()
        stack.start_switchyard()
        wait_until(
            lambda: stack.client.chat("What are the symptoms of a stroke?").route == "clinical",
            30,
            "routing by meaning again",
        )
        assert time.monotonic() - started < 30
        report = stack.report()
        line = next(x for x in report.splitlines() if "bypassed switchyard (fail-open)" in x)
        assert "answered by" in line and "self " in line and "api " in line


def test_fail_open_under_load_while_switchyard_restarts_answers_every_request(
    tmp_path: Path,
) -> None:
    routes = [
        {
            "name": "general",
            "backends": [{"backend": "self", "weight": 70}, {"backend": "api", "weight": 30}],
        }
    ]
    config = _strict_config(routes, "general")
    with _strict_stack(tmp_path, config) as stack:
        with Load(stack, "hello", threads=4) as load:
            wait_until(lambda: len(load.sent) > 100, 30, "traffic")
            stack.stop_switchyard(signal.SIGKILL)
            down = time.monotonic()
            wait_until(lambda: len(load.since(down)) > 200, 30, "traffic with switchyard down")
            stack.start_switchyard()
            up = time.monotonic()
            wait_until(
                lambda: any(s.cohort == "stable" for s in load.since(up)), 30, "routed again"
            )
        statuses = [s.status for s in load.sent]
        assert set(statuses) == {200}, f"{sum(s != 200 for s in statuses)} of {len(statuses)}"


def http_get_text(stack: Stack, path: str) -> str:
    return http_get(stack.metrics_port, path)[1].decode()


def _canary_route(**canary: Any) -> list[dict[str, Any]]:
    return [
        {
            "name": "general",
            "backends": [{"backend": "self", "weight": 50}, {"backend": "api", "weight": 50}],
            "canary": {
                "backend": "med",
                "percent": 25,
                "steps": [25, 50, 100],
                "hold": {"seconds": 3600, "requests": 100000},
                **canary,
            },
        }
    ]


@pytest.mark.parametrize("error_rate", [1.0, 0.1])
def test_a_failing_canary_is_retried_on_stable_and_no_client_sees_its_errors(
    tmp_path: Path, error_rate: float
) -> None:
    config = _strict_config(
        _canary_route(), "general", analysis={"interval_s": 0.5, "window_s": 30}
    )
    with _strict_stack(tmp_path, config) as stack:
        with Load(stack, "hello", threads=4) as load:
            wait_until(lambda: len(load.sent) > 200, 30, "traffic")
            stack.backends["med"].control(error_rate=error_rate, status=503)
            failing = time.monotonic()
            if error_rate == 1.0:
                wait_until(
                    lambda: '"phase": "rolled_back"' in http_get_text(stack, "/rollout"),
                    10,
                    "the rollback",
                )
                assert time.monotonic() - failing <= 5.0
            else:
                # Some errors, then (usually) the analysis rolls the canary back.
                wait_until(lambda: stack.backends["med"].stats()["errors"] >= 5, 30, "errors")
                time.sleep(1.0)
        statuses = [s.status for s in load.sent]
        assert set(statuses) == {200}, f"{sum(s != 200 for s in statuses)} client errors"
        # The canary's failures were still counted on the canary, the stable answers apart.
        rows = {(r["cohort"], r["backend"]): r for r in stack.switchyard_stats()["traffic"]}
        assert rows[("canary", "med")]["errors"] >= stack.backends["med"].stats()["errors"] * 0.9
        assert rows[("retried", "self")]["requests"] + rows[("retried", "api")]["requests"] > 0
        retried = rows[("retried", "self")]
        assert retried["errors"] == 0
        assert "retried" in stack.report()


def test_a_saturated_primary_overflows_to_the_fallback_and_comes_back(tmp_path: Path) -> None:
    config = _strict_config(FALLBACK_ROUTES, "general", envoy=OBSERVE_ALL)  # exact counts
    with _strict_stack(tmp_path, config) as stack:
        stack.backends["self"].control(error_rate=1.0, status=429)
        replies = [stack.client.chat("hi", headers={"x-session-id": "s1"}) for _ in range(20)]
        assert [r.status for r in replies] == [200] * 20
        assert {r.backend for r in replies} == {"api"}
        assert {r.json["model"] for r in replies} == {STRICT["api"][0]}
        # The fallback got its own key and Host, and the request its own model name.
        received = stack.backends["api"].received()[-1]
        assert received["model"] == STRICT["api"][0]
        assert received["headers"]["authorization"] == f"Bearer {STRICT['api'][1]}"
        stack.backends["self"].control(error_rate=0.0)
        back = [stack.client.chat("hi", headers={"x-session-id": "s1"}) for _ in range(10)]
        assert {r.backend for r in back} == {"self"}
        rows = {(r["cohort"], r["backend"]): r for r in stack.switchyard_stats()["traffic"]}
        assert rows[("fallback", "api")]["requests"] == 20


def test_with_every_backend_down_the_client_gets_a_json_503(tmp_path: Path) -> None:
    config = _strict_config(FALLBACK_ROUTES, "general")
    with _strict_stack(tmp_path, config) as stack:
        for backend in stack.backends.values():
            backend.process.kill()
            backend.process.wait()
        reply = stack.client.chat("hi")
        assert reply.status == 503
        assert reply.headers["content-type"].startswith("application/json")
        assert reply.json["error"]["type"] == "upstream_unavailable"
