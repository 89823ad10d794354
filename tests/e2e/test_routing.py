"""Rules-based routing through a real Envoy to real HTTP backends (issue: walking skeleton)."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.stack import SWITCHYARD, Stack, chat_body, make_config, running_stack, wait_until

pytestmark = pytest.mark.e2e

ROUTES = [
    {
        "name": "clinical",
        "match": {"keywords": ["dosage", "symptom"]},
        "backends": [{"backend": "med"}],
    },
    {
        "name": "code",
        "match": {"regex": r"(?i)\bpython\b|\bstack trace\b"},
        "backends": [{"backend": "coder"}],
    },
    {"name": "premium", "match": {"model": ["gpt-premium"]}, "backends": [{"backend": "big"}]},
    {
        "name": "beta",
        "match": {"header": {"name": "x-tenant", "value": "beta"}},
        "backends": [{"backend": "big"}],
    },
    {"name": "general", "backends": [{"backend": "cheap"}]},
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    config = make_config(["med", "coder", "big", "cheap"], ROUTES, "general")
    with running_stack(tmp_path_factory.mktemp("routing"), config) as stack:
        yield stack


@pytest.mark.parametrize(
    ("prompt", "extra", "headers", "route", "backend"),
    [
        ("What dosage of ibuprofen is safe?", {}, {}, "clinical", "med"),
        ("My Python script prints a stack trace", {}, {}, "code", "coder"),
        ("Write a haiku", {"model": "gpt-premium"}, {}, "premium", "big"),
        ("Write a haiku", {}, {"x-tenant": "beta"}, "beta", "big"),
        ("Write a haiku", {}, {}, "general", "cheap"),
        ("Quelle posologie pour un enfant ? symptom: fièvre", {}, {}, "clinical", "med"),
    ],
)
def test_each_route_is_reached_by_its_prompts(
    stack: Stack, prompt: str, extra: dict, headers: dict, route: str, backend: str
) -> None:
    reply = stack.client.request(chat_body(prompt, **extra), headers)
    assert reply.status == 200, reply.body
    assert (reply.route, reply.backend) == (route, backend)
    assert reply.json["backend"] == backend  # the backend itself answered


def test_spoofed_routing_headers_are_ignored(stack: Stack) -> None:
    reply = stack.client.chat(
        "Write a haiku",
        headers={
            "x-switchyard-route": "clinical",
            "x-switchyard-cohort": "canary",
            "x-switchyard-sticky": "7",
        },
    )
    assert (reply.status, reply.route, reply.backend) == (200, "general", "cheap")


def test_streamed_answers_pass_through(stack: Stack) -> None:
    reply = stack.client.chat("symptom check", stream=True)
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/event-stream")
    # The usage event switchyard asked for is not shown to a client that did not ask.
    assert b"data: [DONE]" in reply.body and b'"usage"' not in reply.body
    assert reply.backend == "med"
    asked = stack.client.chat("symptom check", stream=True, stream_options={"include_usage": True})
    assert b"data: [DONE]" in asked.body and b'"usage"' in asked.body


def test_the_model_list_comes_from_the_gateway_without_asking_anyone(stack: Stack) -> None:
    before = stack.envoy_stats().get("http.ingress.ext_proc.switchyard.streams_started", 0)
    reply = stack.client.request(b"", path="/v1/models", method="GET")
    assert reply.status == 200 and reply.backend == "switchyard"
    assert [model["id"] for model in reply.json["data"]] == ["gpt-premium", "general"]
    after = stack.envoy_stats().get("http.ingress.ext_proc.switchyard.streams_started", 0)
    assert after == before  # the processor was not even asked


def test_malformed_json_gets_a_clear_400_and_reaches_no_backend(stack: Stack) -> None:
    before = {name: b.stats()["requests"] for name, b in stack.backends.items()}
    reply = stack.client.request(b'{"messages": [')
    assert reply.status == 400
    assert reply.json["error"]["code"] == "invalid_request_body"
    assert "not valid JSON" in reply.json["error"]["message"]
    assert {name: b.stats()["requests"] for name, b in stack.backends.items()} == before


def test_check_refuses_an_invalid_config_naming_the_key(tmp_path: Path) -> None:
    config = make_config(["a"], [{"name": "r", "backends": [{"backend": "nope"}]}], "r")
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps(config))
    result = subprocess.run([SWITCHYARD, "check", "-c", str(path)], capture_output=True, text=True)
    assert result.returncode == 2
    assert 'routes "r".backends[0].backend' in result.stderr
    assert "unknown backend 'nope'" in result.stderr
    assert str(path) in result.stderr


def test_fail_open_to_default_route_when_switchyard_is_down(tmp_path: Path) -> None:
    config = make_config(
        ["med", "cheap"],
        [ROUTES[0], {"name": "general", "backends": [{"backend": "cheap"}]}],
        "general",
    )
    with running_stack(tmp_path, config) as stack:
        client = stack.client
        assert client.chat("symptom of flu").backend == "med"
        stack.stop_switchyard(signal.SIGKILL)
        replies = [
            client.chat("symptom of flu", headers={"x-switchyard-route": "clinical"})
            for _ in range(5)
        ]
        assert [(r.status, r.backend) for r in replies] == [(200, "cheap")] * 5
        allowed = stack.envoy_stats()["http.ingress.ext_proc.switchyard.failure_mode_allowed"]
        assert allowed >= 5
        # Back up: routed again without restarting Envoy.
        stack.start_switchyard()
        wait_until(lambda: client.chat("symptom of flu").backend == "med", 15, "routing again")


def test_invalid_config_reload_keeps_the_running_config(tmp_path: Path) -> None:
    config = make_config(
        ["med", "cheap"],
        [ROUTES[0], {"name": "general", "backends": [{"backend": "cheap"}]}],
        "general",
    )
    with running_stack(tmp_path, config) as stack:
        stack.config_path.write_text("routes: [ {name: broken")
        wait_until(
            lambda: 'switchyard_config_reloads_total{result="failure"} 1.0' in stack.metrics_text(),
            10,
            "the failed reload to be counted",
        )
        assert stack.client.chat("symptom of flu").backend == "med"
        assert "config reload refused" in stack.log("switchyard")
        # A valid edit is picked up while traffic flows.
        config["routes"][0]["match"] = {"keywords": ["rash"]}
        stack.write_config(config)
        wait_until(
            lambda: stack.client.chat("a rash on my arm").backend == "med", 10, "the new keyword"
        )
        assert stack.client.chat("symptom of flu").backend == "cheap"
