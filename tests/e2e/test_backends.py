"""Backends as they really are, through a real Envoy: model names, keys, Host, path, TLS.

The fake backends are as strict as the servers they stand for (vLLM's 404 for a
model they do not serve, a provider's 401 without its key, HTTPS only) and
report what they received, so every assertion is about what a backend saw.
"""

from __future__ import annotations

import http.client
import json
import subprocess
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.e2e.stack import (
    OBSERVE_ALL,
    SWITCHYARD,
    Stack,
    free_port,
    http_get,
    make_config,
    running_stack,
    wait_until,
)

pytestmark = pytest.mark.e2e

KEY_A = "sk-provider-a-0f9d8c7b6a5e4d3c"
KEY_B = "sk-provider-b-1a2b3c4d5e6f7a8b"
CLIENT_KEY = "sk-client-own-key-9z8y7x6w"


def send_sessions(stack: Stack, sessions: list[str], **extra: object) -> list[dict]:
    def one(session: str) -> dict:
        reply = stack.client.chat(
            "where is my invoice?",
            headers={"x-session-id": session, "authorization": f"Bearer {CLIENT_KEY}"},
            **extra,
        )
        assert reply.status == 200, (reply.status, reply.body)
        return {"backend": reply.backend, **reply.json}

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, sessions))


# -- a canary of a new model version ----------------------------------------------


@pytest.fixture(scope="module")
def canary_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    routes = [
        {
            "name": "chat",
            "backends": [{"backend": "v1"}],
            "canary": {"backend": "v2", "percent": 30, "auto": False},
        }
    ]
    config = make_config(["v1", "v2"], routes, "chat")
    config["backends"][0]["model"] = "model-v1"
    config["backends"][1]["model"] = "model-v2"
    args = {"v1": ["--served-model", "model-v1"], "v2": ["--served-model", "model-v2"]}
    with running_stack(tmp_path_factory.mktemp("model-canary"), config, backend_args=args) as stack:
        yield stack


def test_canary_model_v2_beside_model_v1_each_sees_its_own_name(canary_stack: Stack) -> None:
    replies = send_sessions(canary_stack, [f"s{i}" for i in range(500)], model="model-v1")
    by_backend = Counter(reply["backend"] for reply in replies)
    assert by_backend["v2"] > 50 and by_backend["v1"] > 250, by_backend
    for name, model in [("v1", "model-v1"), ("v2", "model-v2")]:
        received = canary_stack.backends[name].received()
        assert len(received) == by_backend[name]
        assert {r["model"] for r in received} == {model}
    # The documented choice: the answer names the model that produced it.
    assert {(r["backend"], r["model"]) for r in replies} == {
        ("v1", "model-v1"),
        ("v2", "model-v2"),
    }


def test_a_chunked_request_body_is_rewritten_too(canary_stack: Stack) -> None:
    body = json.dumps({"model": "other", "messages": [{"role": "user", "content": "hi"}]})
    conn = http.client.HTTPConnection("127.0.0.1", canary_stack.port, timeout=10)
    try:
        conn.request(
            "POST",
            "/v1/chat/completions",
            body=iter([body[:20].encode(), body[20:].encode()]),
            headers={"content-type": "application/json", "x-session-id": "chunked"},
            encode_chunked=True,
        )
        response = conn.getresponse()
        reply = response.read()
    finally:
        conn.close()
    assert response.status == 200, reply
    assert json.loads(reply)["model"] in {"model-v1", "model-v2"}


def test_a_model_name_the_backend_does_not_serve_is_refused_by_the_fake(
    canary_stack: Stack,
) -> None:
    """The fake is strict: without switchyard's rewrite the canary would answer 404."""
    conn = http.client.HTTPConnection("127.0.0.1", canary_stack.backends["v2"].port, timeout=5)
    conn.request(
        "POST",
        "/v1/chat/completions",
        body=json.dumps({"model": "model-v1", "messages": [{"role": "user", "content": "x"}]}),
    )
    response = conn.getresponse()
    body = response.read()
    conn.close()
    assert response.status == 404
    assert json.loads(body)["type"] == "NotFoundError"


# -- a self-hosted model and two providers with their own keys ---------------------


@pytest.fixture(scope="module")
def split_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    routes = [
        {
            "name": "support",
            "backends": [
                {"backend": "selfhosted", "weight": 70},
                {"backend": "api-a", "weight": 20},
                {"backend": "api-b", "weight": 10},
            ],
        }
    ]
    config = make_config(["selfhosted", "api-a", "api-b"], routes, "support")
    selfhosted, api_a, api_b = config["backends"]
    selfhosted["model"] = "llama-3.1-70b"
    api_a.update(
        model="gpt-4o-mini",
        credential={"header": "authorization", "env": "API_A_KEY", "prefix": "Bearer "},
        path_prefix="/openai",
        query={"api-version": "2024-06-01"},
    )
    api_b.update(model="claude-haiku", credential={"header": "x-api-key", "env": "API_B_KEY"})
    config["server"]["log_prompts"] = True
    args = {
        "selfhosted": ["--served-model", "llama-3.1-70b"],
        "api-a": ["--served-model", "gpt-4o-mini", "--require-key", KEY_A],
        "api-b": [
            "--served-model",
            "claude-haiku",
            "--require-key",
            KEY_B,
            "--key-header",
            "x-api-key",
        ],
    }
    keys = {"API_A_KEY": KEY_A, "API_B_KEY": KEY_B}
    with running_stack(
        tmp_path_factory.mktemp("split"),
        config,
        backend_args=args,
        envoy_env=keys,
        serve_args=["--log-level", "debug"],
    ) as stack:
        yield stack


def test_70_20_10_split_each_backend_gets_only_its_own_key(split_stack: Stack) -> None:
    replies = send_sessions(split_stack, [f"user-{i}" for i in range(400)], model="whatever")
    shares = Counter(reply["backend"] for reply in replies)
    assert 230 <= shares["selfhosted"] <= 330 and shares["api-a"] >= 45, shares
    assert shares["api-b"] >= 20, shares
    seen = {name: split_stack.backends[name].received() for name in split_stack.backends}
    assert {name: len(got) for name, got in seen.items()} == dict(shares)
    for request in seen["selfhosted"]:
        assert "authorization" not in request["headers"]
        assert "x-api-key" not in request["headers"]
    for request in seen["api-a"]:
        assert request["headers"]["authorization"] == f"Bearer {KEY_A}"
        assert "x-api-key" not in request["headers"]
    for request in seen["api-b"]:
        assert request["headers"]["x-api-key"] == KEY_B
        assert "authorization" not in request["headers"]
    everything = json.dumps(seen)
    assert CLIENT_KEY not in everything
    assert {r["model"] for r in seen["api-b"]} == {"claude-haiku"}


def test_host_and_path_seen_by_a_provider_are_its_own(split_stack: Stack) -> None:
    send_sessions(split_stack, [f"hp-{i}" for i in range(40)])
    for name, backend in split_stack.backends.items():
        received = backend.received()
        assert received, name
        assert {r["host"] for r in received} == {f"127.0.0.1:{backend.port}"}
        expected = (
            "/openai/v1/chat/completions?api-version=2024-06-01"
            if name == "api-a"
            else "/v1/chat/completions"
        )
        assert {r["path"] for r in received} == {expected}


def test_keys_appear_in_no_config_report_metric_or_log(split_stack: Stack) -> None:
    send_sessions(split_stack, [f"leak-{i}" for i in range(20)])
    rendered = (split_stack.workdir / "envoy.yaml").read_text()
    admin = split_stack.admin_port
    config_dump = http_get(admin, "/config_dump?include_eds")[1].decode()
    # The routes and clusters Envoy got over xDS name the variable only.
    assert "%ENVIRONMENT(API_A_KEY)%" in config_dump
    report = subprocess.run(
        [
            SWITCHYARD,
            "report",
            "--json",
            "--admin",
            f"http://127.0.0.1:{admin}",
            "--switchyard",
            f"http://127.0.0.1:{split_stack.metrics_port}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert report.returncode == 0, report.stderr
    places = {
        "switchyard.yaml": split_stack.config_path.read_text(),
        "envoy.yaml": rendered,
        "config_dump": config_dump,
        "envoy /stats": http_get(admin, "/stats")[1].decode(),
        "report": report.stdout + report.stderr,
        "/metrics": split_stack.metrics_text(),
        "/stats": json.dumps(split_stack.switchyard_stats()),
        "switchyard log (debug)": split_stack.log("switchyard"),
        "envoy log": split_stack.log("envoy"),
    }
    assert "routed request_id" in places["switchyard log (debug)"]  # debug really was on
    for where, text in places.items():
        for secret in (KEY_A, KEY_B, CLIENT_KEY):
            assert secret not in text, f"{secret[:8]}... found in {where}"


# -- TLS to a provider -------------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certificates(folder: Path) -> None:
    """A test CA, a certificate it signs for localhost, one for another name, and an impostor."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(
        "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=switchyard test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=folder,
    )  # fmt: skip
    for name, san in [("provider", "DNS:localhost"), ("elsewhere", "DNS:api.elsewhere.test")]:
        _openssl(
            "req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
            cwd=folder,
        )  # fmt: skip
        (folder / f"{name}.ext").write_text(
            f"subjectAltName={san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
        )
        _openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext",
            cwd=folder,
        )  # fmt: skip
    _openssl(
        "req", "-x509", *ec, "-keyout", "impostor.key", "-out", "impostor.pem", "-days", "2",
        "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
        cwd=folder,
    )  # fmt: skip


def restart_envoy(stack: Stack) -> None:
    assert stack.envoy is not None
    stack.envoy.stop(timeout=20)
    wait_until(lambda: _closed(stack.admin_port), 10, "old Envoy's admin port to close")
    stack.start_envoy()


def _closed(port: int) -> bool:
    try:
        http_get(port, "/ready", timeout=0.5)
    except OSError:
        return True
    return False


def restart_provider(stack: Stack, cert: str, folder: Path) -> None:
    provider = stack.backends["provider"]
    provider.process.stop()
    stack.launch_backend(
        "provider", provider.port,
        "--tls-cert", str(folder / f"{cert}.pem"), "--tls-key", str(folder / f"{cert}.key"),
        "--require-key", KEY_A,
    ).process.wait_ready(15)  # fmt: skip


def test_tls_provider_verified_against_its_ca_and_its_name(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    make_certificates(certs)
    port = free_port()
    config = make_config(
        ["provider"], [{"name": "chat", "backends": [{"backend": "provider"}]}], "chat"
    )
    config["backends"][0].update(
        address=f"localhost:{port}",
        tls=True,
        credential={"env": "API_A_KEY", "prefix": "Bearer "},
    )
    args = {
        "provider": [
            "--tls-cert", str(certs / "provider.pem"), "--tls-key", str(certs / "provider.key"),
            "--require-key", KEY_A,
        ]
    }  # fmt: skip
    with running_stack(
        tmp_path / "stack", config, backend_args=args, envoy_env={"API_A_KEY": KEY_A}
    ) as stack:
        # Envoy trusts only the system bundle: the test CA's certificate is refused.
        refused = stack.client.chat("hello", headers={"x-session-id": "a"})
        assert refused.status == 503, refused.body
        assert stack.backends["provider"].received() == []

        config["backends"][0]["tls_ca_file"] = str(certs / "ca.pem")
        stack.write_config(config)
        # The restarted Envoy takes its clusters from switchyard: wait until it serves the CA.
        wait_until(
            lambda: 'switchyard_config_reloads_total{result="success"} 1.0' in stack.metrics_text(),
            10,
            "switchyard to load the CA",
        )
        restart_envoy(stack)
        accepted = stack.client.chat("hello", headers={"x-session-id": "a"})
        assert accepted.status == 200, accepted.body
        received = stack.backends["provider"].received()
        assert [r["host"] for r in received] == [f"localhost:{port}"]

        for cert in ("impostor", "elsewhere"):  # self-signed; the right CA but another name
            restart_provider(stack, cert, certs)
            reply = stack.client.chat("hello", headers={"x-session-id": "a"})
            assert reply.status == 503, (cert, reply.body)
            assert stack.backends["provider"].received() == [], cert


# -- token usage of streamed answers ------------------------------------------------


@pytest.fixture(scope="module")
def stream_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    chat = [{"name": "chat", "backends": [{"backend": "llm"}]}]
    config = make_config(["llm"], chat, "chat", envoy=OBSERVE_ALL)  # counts every answer
    config["backends"][0].update(
        model="llama", price={"prompt_per_1m": 1_000_000, "completion_per_1m": 2_000_000}
    )
    with running_stack(
        tmp_path_factory.mktemp("stream-usage"),
        config,
        backend_args={"llm": ["--served-model", "llama"]},
    ) as stack:
        yield stack


def _events(body: bytes) -> list[str]:
    return [e.removeprefix("data: ") for e in body.decode().split("\n\n") if e.strip()]


def test_streams_count_tokens_without_showing_the_client_a_usage_chunk(
    stream_stack: Stack,
) -> None:
    for i in range(20):
        reply = stream_stack.client.chat(
            "hello there", stream=True, headers={"x-session-id": f"{i}"}
        )
        assert reply.status == 200, reply.body
        events = _events(reply.body)
        assert events[-1] == "[DONE]"
        chunks = [json.loads(e) for e in events[:-1]]
        assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == (
            "[llm] answered "
        )
        assert all("usage" not in c and c["choices"] for c in chunks), events
    # What the client asked for itself it still gets.
    asked = stream_stack.client.chat("hi", stream=True, stream_options={"include_usage": True})
    usage = [json.loads(e) for e in _events(asked.body)[:-1] if '"usage"' in e]
    assert len(usage) == 1 and usage[0]["choices"] == []

    def counted() -> dict | None:
        rows = stream_stack.switchyard_stats()["traffic"]
        row = next((r for r in rows if r["backend"] == "llm"), None)
        return row if row and row["requests"] == 21 else None

    row = wait_until(counted, 10, "21 observed responses")
    assert row["completion_tokens"] == 21 * 2  # "[llm] answered", every stream counted
    assert row["prompt_tokens"] >= 21 and row["cost"] > 0


def test_an_error_answer_to_a_stream_reaches_the_client_whole(stream_stack: Stack) -> None:
    backend = stream_stack.backends["llm"]
    backend.control(error_rate=1.0, status=503)
    try:
        reply = stream_stack.client.chat("hello", stream=True)
    finally:
        backend.control(error_rate=0.0)
    assert reply.status == 503
    assert reply.json["error"]["message"] == "llm: simulated failure"
