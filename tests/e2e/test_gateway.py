"""A closed gateway (issue #29): only the endpoints switchyard serves reach a backend, and
nothing internal to the gateway (its routing headers, Envoy's own, the client's key) does.

Backends are strict: each serves one model and wants its own provider key.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.stack import Stack, chat_body, make_config, running_stack, wait_until

pytestmark = pytest.mark.e2e

KEY_A = "sk-provider-a-0123456789"
KEY_B = "sk-provider-b-9876543210"
CLIENT_KEY = "sk-client-abcdefabcdef"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    routes = [
        {"name": "premium", "match": {"model": ["gpt-premium"]}, "backends": [{"backend": "a"}]},
        {
            "name": "chat",
            "backends": [{"backend": "a", "weight": 50}, {"backend": "b", "weight": 50}],
        },
    ]
    config = make_config(["a", "b", "files"], routes, "chat")
    a, b, files = config["backends"]
    a.update(
        model="model-a",
        credential={"header": "authorization", "env": "KEY_A", "prefix": "Bearer "},
    )
    b.update(model="model-b", credential={"header": "x-api-key", "env": "KEY_B"})
    files.update(credential={"header": "authorization", "env": "KEY_A", "prefix": "Bearer "})
    config["passthrough"] = [{"path": "/v1/files", "backend": "files"}]
    args = {
        "a": ["--served-model", "model-a", "--require-key", KEY_A],
        "b": ["--served-model", "model-b", "--require-key", KEY_B, "--key-header", "x-api-key"],
        "files": ["--require-key", KEY_A],
    }
    with running_stack(
        tmp_path_factory.mktemp("gateway"),
        config,
        backend_args=args,
        envoy_env={"KEY_A": KEY_A, "KEY_B": KEY_B},
    ) as stack:
        yield stack


def _received(stack: Stack) -> dict[str, int]:
    return {name: backend.stats()["received"] for name, backend in stack.backends.items()}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/v1/files-x/abc"),
        ("GET", "/v1/fine_tuning/jobs"),
        ("POST", "/v1/admin"),
        ("GET", "/"),
        ("GET", "/v1/chat/completions"),
        ("POST", "/v1/models"),
        ("POST", "/v1/embeddings"),
    ],
)
def test_unknown_paths_and_methods_get_the_gateways_404_and_reach_no_backend(
    stack: Stack, method: str, path: str
) -> None:
    before = _received(stack)
    reply = stack.client.request(b'{"model": "x"}', path=path, method=method)
    assert reply.status == 404, reply.body
    assert "x-backend" not in reply.headers  # no fake backend answered
    assert reply.headers["content-type"] == "application/json"
    assert reply.json["error"]["code"] == "unknown_url"
    assert reply.json["error"]["type"] == "invalid_request_error"
    assert _received(stack) == before


def test_the_model_list_is_the_gateways_own(stack: Stack) -> None:
    before = _received(stack)
    reply = stack.client.request(b"", path="/v1/models", method="GET")
    assert reply.status == 200 and "x-backend" not in reply.headers
    assert reply.json["object"] == "list"
    assert [model["id"] for model in reply.json["data"]] == ["gpt-premium", "chat"]
    assert _received(stack) == before


def test_an_opened_path_goes_to_its_one_backend_with_that_backends_key(stack: Stack) -> None:
    before = _received(stack)
    reply = stack.client.request(
        b"", path="/v1/files/file-abc", method="DELETE", headers={"x-api-key": CLIENT_KEY}
    )
    assert reply.headers["x-backend"] == "files"
    assert reply.status == 404  # the fake backend's own answer: it has no files
    after = _received(stack)
    assert after["files"] == before["files"] + 1 and after["a"] == before["a"]
    got = stack.backends["files"].received()[-1]
    assert (got["method"], got["path"]) == ("DELETE", "/v1/files/file-abc")
    assert got["headers"]["authorization"] == f"Bearer {KEY_A}"
    assert CLIENT_KEY not in json.dumps(got)


def test_backends_receive_nothing_internal_and_the_client_still_sees_the_decision(
    stack: Stack,
) -> None:
    spoofed = {
        "authorization": f"Bearer {CLIENT_KEY}",
        "x-api-key": CLIENT_KEY,
        "x-switchyard-route": "premium",
        "x-switchyard-cache-fill": "token",
        "x-envoy-retry-on": "5xx",
        "x-envoy-debug": "1",
    }
    replies = [stack.client.request(chat_body(f"hello {i}"), headers=spoofed) for i in range(30)]
    replies.append(stack.client.request(chat_body("hi", model="gpt-premium"), headers=spoofed))
    for reply in replies:
        assert reply.status == 200, reply.body
        assert reply.headers["x-switchyard-backend"] == reply.headers["x-backend"]
        assert reply.cohort == "stable" and reply.headers["x-request-id"]
        # switchyard's observing filter times the backend by it.
        assert reply.headers["x-envoy-upstream-service-time"].isdigit(), reply.headers
    assert {reply.route for reply in replies} == {"chat", "premium"}
    assert {reply.backend for reply in replies} == {"a", "b"}
    for name in ("a", "b"):
        received = stack.backends[name].received()
        assert received, name
        for request in received:
            leaked = [
                header
                for header in request["headers"]
                if header.startswith(("x-switchyard-", "x-envoy-"))
            ]
            assert not leaked, (name, leaked)
            assert CLIENT_KEY not in json.dumps(request), name


# -- client keys ---------------------------------------------------------------------

ALICE_KEY = "sy-alice-7f3c9a1e5b2d4c6f8a0b"
BOB_KEY = "sy-bob-0a1b2c3d4e5f60718293"


def _key_line(name: str, key: str) -> str:
    return f"{name} {hashlib.sha256(key.encode()).hexdigest()}\n"


@pytest.fixture(scope="module")
def auth_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("auth")
    keys = workdir / "clients.keys"
    keys.write_text("# client keys\n" + _key_line("alice", ALICE_KEY))
    routes = [{"name": "chat", "backends": [{"backend": "a"}]}]
    config = make_config(["a"], routes, "chat", auth={"keys_file": "clients.keys"})
    config["backends"][0].update(
        model="model-a",
        credential={"header": "authorization", "env": "KEY_A", "prefix": "Bearer "},
    )
    args = {"a": ["--served-model", "model-a", "--require-key", KEY_A]}
    with running_stack(workdir, config, backend_args=args, envoy_env={"KEY_A": KEY_A}) as stack:
        yield stack


def _ask(stack: Stack, headers: dict[str, str]) -> Any:
    return stack.client.request(chat_body("hello"), headers=headers)


def _refused(stack: Stack) -> dict[str, float]:
    counted = {}
    for line in stack.metrics_text().splitlines():
        if line.startswith("switchyard_client_auth_refused_total{"):
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            counted[reason] = float(line.rsplit(" ", 1)[1])
    return counted


def test_a_request_needs_a_known_client_key(auth_stack: Stack) -> None:
    before = _received(auth_stack)
    for headers, reason in [
        ({}, "missing"),
        ({"authorization": "Bearer "}, "missing"),
        ({"authorization": f"Bearer {BOB_KEY}"}, "wrong"),
        ({"x-api-key": ALICE_KEY + "x"}, "wrong"),
    ]:
        reply = _ask(auth_stack, headers)
        assert reply.status == 401, (headers, reply.body)
        assert reply.headers["x-switchyard-auth"] == reason
        assert reply.json["error"]["code"] == "invalid_api_key"
        assert "x-backend" not in reply.headers
    models = auth_stack.client.request(b"", path="/v1/models", method="GET")
    assert models.status == 401
    assert _received(auth_stack) == before
    # Counted by reason from the refusals switchyard's observing filter sees.
    wait_until(
        lambda: _refused(auth_stack) == {"missing": 3.0, "wrong": 2.0},
        5,
        "the refusals counted",
    )
    for headers in ({"authorization": f"Bearer {ALICE_KEY}"}, {"x-api-key": ALICE_KEY}):
        reply = _ask(auth_stack, headers)
        assert reply.status == 200, reply.body
        assert reply.backend == "a"
    counted = 'switchyard_client_requests_total{client="alice",cohort="stable",route="chat"} 2.0'
    assert counted in auth_stack.metrics_text()
    got = auth_stack.backends["a"].received()[-1]
    assert ALICE_KEY not in json.dumps(got)  # the provider's key only
    assert "x-switchyard-client-name" not in got["headers"]
    assert got["headers"]["authorization"] == f"Bearer {KEY_A}"
    assert ALICE_KEY not in auth_stack.log("switchyard") + auth_stack.log("envoy")


def test_an_edited_keys_file_applies_within_two_seconds(auth_stack: Stack) -> None:
    keys = auth_stack.workdir / "clients.keys"
    bob = {"authorization": f"Bearer {BOB_KEY}"}
    alice = {"authorization": f"Bearer {ALICE_KEY}"}
    assert _ask(auth_stack, bob).status == 401
    tmp = keys.with_suffix(".tmp")
    tmp.write_text(_key_line("bob", BOB_KEY))
    os.replace(tmp, keys)
    started = time.monotonic()
    wait_until(lambda: _ask(auth_stack, bob).status == 200, 5, "bob's new key")
    took = time.monotonic() - started
    print(f"new key accepted after {took:.2f} s")
    assert _ask(auth_stack, alice).status == 401  # removed with the same edit
    assert took < 2.0, took
    # Keep-alive connections opened before the change follow it too (routes, not listeners).
    assert _ask(auth_stack, bob).status == 200


def test_switchyard_down_still_refuses_a_request_without_a_key(auth_stack: Stack) -> None:
    # Last in this module: switchyard stays down. Envoy keeps its last routes and keys.
    auth_stack.stop_switchyard()
    assert _ask(auth_stack, {}).status == 401
    assert _ask(auth_stack, {"x-api-key": "made-up"}).status == 401
    # A known key passes on to the default route (fail-open): the body is not rewritten
    # for the backend, whose strict model check answers; it did reach the backend.
    reply = _ask(auth_stack, {"x-api-key": BOB_KEY})
    assert reply.status != 401 and reply.headers["x-backend"] == "a"


def _leaked(request: dict[str, Any]) -> list[str]:
    return [name for name in request["headers"] if name.startswith(("x-switchyard-", "x-envoy-"))]


def test_retried_attempts_carry_nothing_internal_either(tmp_path: Path) -> None:
    routes = [
        {"name": "chat", "backends": [{"backend": "a"}], "fallbacks": [{"backend": "b"}]},
    ]
    config = make_config(["a", "b"], routes, "chat")
    config["backends"][0]["model"] = "model-a"
    config["backends"][1]["model"] = "model-b"
    args = {"a": ["--served-model", "model-a"], "b": ["--served-model", "model-b"]}
    with running_stack(tmp_path, config, backend_args=args) as stack:
        stack.backends["a"].control(error_rate=1.0, status=429)
        replies = [stack.client.chat(f"hi {i}", headers={"x-envoy-debug": "1"}) for i in range(5)]
        assert {(r.status, r.backend) for r in replies} == {(200, "b")}
        for name in ("a", "b"):
            received = stack.backends[name].received()
            assert len(received) == 5, name
            assert not [_leaked(request) for request in received if _leaked(request)], name


def test_a_client_named_in_a_canary_allowlist_always_gets_the_canary(tmp_path: Path) -> None:
    keys = tmp_path / "clients.keys"
    keys.write_text(_key_line("alice", ALICE_KEY) + _key_line("bob", BOB_KEY))
    routes = [
        {
            "name": "chat",
            "backends": [{"backend": "a"}],
            "canary": {"backend": "b", "percent": 1, "allow": {"clients": ["alice"]}},
        }
    ]
    config = make_config(["a", "b"], routes, "chat", auth={"keys_file": "clients.keys"})
    with running_stack(tmp_path, config) as stack:
        for client, key, cohort in [("alice", ALICE_KEY, "canary"), ("bob", BOB_KEY, "stable")]:
            replies = [
                _ask(stack, {"authorization": f"Bearer {key}", "x-session-id": f"{client}{i}"})
                for i in range(20)
            ]
            assert {r.status for r in replies} == {200}
            # bob's 20 sessions at 1 %: all stable but for a 1-in-5 chance of one canary.
            share = sum(r.cohort == cohort for r in replies)
            assert share == 20 if cohort == "canary" else share >= 19
        # The A/B report sets each client's requests apart.
        wait_until(lambda: "Requests by client" in stack.report(), 5, "the client rows")
        rows = [line.split() for line in stack.report().splitlines()]
        assert ["alice", "chat", "canary", "20"] in rows
