"""Per-backend adaptation: which backend answers, the rewrite for it, what Envoy adds, what check says."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from extproc import headers as h
from extproc.config import environment_issues, parse_config
from extproc.envoy_config import render
from extproc.errors import ConfigError
from extproc.request.adapt import NO_REWRITE, BackendAdapter, rewrite
from extproc.request.chat import parse_chat
from extproc.request.metrics import RequestMetrics
from extproc.request.processor import RoutingStream
from extproc.request.runtime import build_runtime
from extproc.rollout.canary import Rollouts, initial_state
from extproc.upstream import backend_for
from proto import core_pb2, ext_proc_pb2

KEY = "sk-never-in-a-file-123"


def config(**backend_extra: object) -> dict:
    return {
        "backends": [
            {"name": "self", "address": "10.0.0.1:8000", "model": "llama"},
            {
                "name": "api-a",
                "address": "api.a.example:443",
                "tls": True,
                "model": "gpt-4o-mini",
                "credential": {"env": "API_A_KEY", "prefix": "Bearer "},
                "path_prefix": "/openai",
                "query": {"api-version": "2024-06-01"},
                **backend_extra,
            },
            {"name": "api-b", "address": "api.b.example:8443", "tls": True},
            {"name": "v2", "address": "10.0.0.2:8000", "model": "llama-v2"},
        ],
        "routes": [
            {
                "name": "r",
                "backends": [
                    {"backend": "self", "weight": 70},
                    {"backend": "api-a", "weight": 20},
                    {"backend": "api-b", "weight": 10},
                ],
                "canary": {"backend": "v2", "percent": 0},
            }
        ],
        "default_route": "r",
    }


CFG = parse_config(config(), "test")


def test_backend_for_walks_the_weights_in_envoys_order() -> None:
    route = CFG.route("r")
    picks = [backend_for(route, h.STABLE, value) for value in range(200)]
    assert picks[:70] == ["self"] * 70
    assert picks[70:90] == ["api-a"] * 20
    assert picks[90:100] == ["api-b"] * 10
    assert picks[100:200] == picks[:100]  # value modulo the total weight
    assert backend_for(route, h.CANARY, 5) == "v2"


def test_each_backend_switchyard_may_pick_has_its_own_route_with_its_host_and_key() -> None:
    bootstrap = render(CFG)
    hcm = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    routes = {
        r["name"]: r for r in hcm["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
    }
    for cohort, backend in [
        ("stable", "self"),
        ("stable", "api-a"),
        ("stable", "api-b"),
    ]:
        route = routes[f"r.{cohort}.{backend}"]
        # Envoy forwards to the backend switchyard named: it computes no split of its own.
        assert route["route"]["cluster"] == backend
        assert {"name": h.UPSTREAM, "string_match": {"exact": backend}} in route["match"]["headers"]
        assert {"name": h.COHORT, "string_match": {"exact": cohort}} in route["match"]["headers"]
        assert "authorization" in route["request_headers_to_remove"]
    assert routes["r.stable.api-a"]["route"]["host_rewrite_literal"] == "api.a.example"
    assert routes["r.stable.api-b"]["route"]["host_rewrite_literal"] == "api.b.example:8443"
    # A canary request names the stable backend its failure is retried on.
    for backend in ("self", "api-a", "api-b"):
        canary = routes[f"r.canary.v2.{backend}"]
        assert canary["route"]["cluster"] == f"_retry.r.v2.{backend}"
        assert canary["route"]["host_rewrite_literal"] == "10.0.0.2:8000"
    assert routes["r.stable.api-a"]["request_headers_to_add"] == [
        {
            "header": {"key": "authorization", "value": "Bearer %ENVIRONMENT(API_A_KEY)%"},
            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
        }
    ]
    # What switchyard did not route (fail-open) takes the default route's weights, as
    # cumulative shares of one draw, each backend with its own rewrite of the body.
    fail_open = [r for r in routes.values() if r["name"].startswith("unrouted/")]
    assert [r["route"]["cluster"] for r in fail_open] == ["self", "api-a", "api-b"]
    shares = [r["match"].get("runtime_fraction", {}).get("default_value") for r in fail_open]
    assert shares == [
        {"numerator": 700_000, "denominator": "MILLION"},
        {"numerator": 900_000, "denominator": "MILLION"},
        None,
    ]
    assert (
        fail_open[1]["request_headers_to_add"] == routes["r.stable.api-a"]["request_headers_to_add"]
    )
    lua = fail_open[1]["typed_per_filter_config"]["switchyard.fail_open"]
    assert 'set_model(handle, "gpt-4o-mini")' in lua["source_code"]["inline_string"]


def test_tls_is_verified_against_the_bundle_or_the_backends_ca_and_its_name() -> None:
    cfg = parse_config(config(tls_ca_file="/etc/ca/a.pem"), "test")
    clusters = {c["name"]: c for c in render(cfg)["static_resources"]["clusters"]}
    context = clusters["api-a"]["transport_socket"]["typed_config"]
    assert context["sni"] == "api.a.example"
    validation = context["common_tls_context"]["validation_context"]
    assert validation["trusted_ca"] == {"filename": "/etc/ca/a.pem"}
    assert validation["match_typed_subject_alt_names"] == [
        {"san_type": "DNS", "matcher": {"exact": "api.a.example"}}
    ]
    bundle = clusters["api-b"]["transport_socket"]["typed_config"]["common_tls_context"]
    assert bundle["validation_context"]["trusted_ca"] == {
        "filename": "/etc/ssl/certs/ca-certificates.crt"
    }
    assert "transport_socket" not in clusters["self"]


def test_insecure_skip_verify_is_the_only_way_to_no_validation() -> None:
    cfg = parse_config(config(insecure_skip_verify=True), "test")
    clusters = {c["name"]: c for c in render(cfg)["static_resources"]["clusters"]}
    assert "common_tls_context" not in clusters["api-a"]["transport_socket"]["typed_config"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"tls": False}, "tls_ca_file and insecure_skip_verify need tls: true"),
        (
            {"tls_ca_file": "/a.pem", "insecure_skip_verify": True},
            "expected tls_ca_file or insecure_skip_verify, not both",
        ),
        ({"forward_client_authorization": True}, "credential already sets authorization"),
        ({"credential": {"env": "1BAD"}}, 'backends "api-a".credential.env'),
        ({"path_prefix": "openai"}, 'backends "api-a".path_prefix'),
    ],
)
def test_inconsistent_backends_are_refused_naming_the_key(extra: dict, message: str) -> None:
    data = config(**extra)
    if extra.get("tls") is False:
        data["backends"][1]["tls_ca_file"] = "/a.pem"
    with pytest.raises(ConfigError) as info:
        parse_config(data, "switchyard.yaml")
    assert message in str(info.value)


def test_check_names_an_unset_key_variable_and_an_unverifiable_tls_backend(
    tmp_path: Path,
) -> None:
    data = config(tls_ca_file=str(tmp_path / "missing.pem"))
    data["envoy"] = {"ca_bundle": str(tmp_path / "no-bundle.crt")}
    issues = [str(i) for i in environment_issues(parse_config(data, "t"), {})]
    assert any(
        i.startswith('backends "api-a".credential.env: environment variable API_A_KEY')
        for i in issues
    )
    assert any(
        i.startswith('backends "api-a".tls_ca_file: no way to verify api.a.example') for i in issues
    )
    assert any(i.startswith('backends "api-b".tls: no way to verify api.b.example') for i in issues)
    (tmp_path / "missing.pem").write_text("pem")
    (tmp_path / "no-bundle.crt").write_text("pem")
    assert environment_issues(parse_config(data, "t"), {"API_A_KEY": KEY}) == []


def test_the_body_is_rewritten_only_when_the_model_differs() -> None:
    adapter = BackendAdapter(model="llama", path_prefix="", query="")
    same = parse_chat(b'{"model": "llama", "messages": [{"role": "user", "content": "hi"}]}')
    assert rewrite(adapter, same, "/v1/chat/completions").body is None
    other = parse_chat(b'{"model": "gpt", "messages": [{"role": "user", "content": "h\xc3\xa9"}]}')
    body = rewrite(adapter, other, "/v1/chat/completions").body
    assert body is not None and json.loads(body) == {**other.data, "model": "llama"}
    assert rewrite(None, other, "/v1/chat/completions").body is None


def test_path_prefix_and_query_extend_the_clients_path() -> None:
    adapter = BackendAdapter(model=None, path_prefix="/openai", query="api-version=1")
    chat = parse_chat(b'{"messages": [{"role": "user", "content": "hi"}]}')
    assert rewrite(adapter, chat, "/v1/chat/completions").path == (
        "/openai/v1/chat/completions?api-version=1"
    )
    assert rewrite(adapter, chat, "/v1/chat/completions?x=1").path == (
        "/openai/v1/chat/completions?x=1&api-version=1"
    )


def _mutation(cfg: dict, body: bytes, session: str) -> ext_proc_pb2.CommonResponse:
    parsed = parse_config(cfg, "test")
    rollouts = Rollouts()
    rollouts.apply_config(parsed, lambda canary: initial_state(canary, 0.0))
    metrics = RequestMetrics()
    stream = RoutingStream(build_runtime(parsed, rollouts, metrics), metrics)
    values = {
        ":method": "POST",
        ":path": "/v1/chat/completions",
        "content-length": str(len(body)),
        "x-session-id": session,
    }
    stream.on_request_headers(
        ext_proc_pb2.HttpHeaders(
            headers=core_pb2.HeaderMap(
                headers=[
                    core_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in values.items()
                ]
            )
        )
    )
    response = asyncio.run(
        stream.on_request_body(ext_proc_pb2.HttpBody(body=body, end_of_stream=True))
    )
    return response.request_body.response


def test_the_processor_rewrites_for_the_backend_envoy_will_pick() -> None:
    body = b'{"model": "x", "messages": [{"role": "user", "content": "hi"}]}'
    seen = set()
    for i in range(200):
        response = _mutation(config(), body, f"s{i}")
        set_ = {
            o.header.key: o.header.raw_value.decode() for o in response.header_mutation.set_headers
        }
        backend = backend_for(CFG.route("r"), h.STABLE, int(set_[h.STICKY]))
        seen.add(backend)
        expected = {"self": "llama", "api-a": "gpt-4o-mini", "api-b": None}[backend]
        if expected is None:
            assert not response.HasField("body_mutation")
            assert "content-length" not in set_
        else:
            new_body = response.body_mutation.body
            assert json.loads(new_body)["model"] == expected
            assert set_["content-length"] == str(len(new_body))
        assert (":path" in set_) == (backend == "api-a")
    assert seen == {"self", "api-a", "api-b"}


def test_a_stream_asks_for_usage_only_when_the_client_did_not() -> None:
    plain = parse_chat(b'{"stream": true, "messages": [{"role": "user", "content": "hi"}]}')
    changes = rewrite(None, plain, "/v1/chat/completions")
    assert changes.strip_usage and changes.body is not None
    assert json.loads(changes.body)["stream_options"] == {"include_usage": True}
    asked = parse_chat(
        b'{"stream": true, "stream_options": {"include_usage": true},'
        b' "messages": [{"role": "user", "content": "hi"}]}'
    )
    assert rewrite(None, asked, "/v1/chat/completions") == NO_REWRITE
    other_options = parse_chat(
        b'{"stream": true, "stream_options": {"continuous_usage_stats": false},'
        b' "messages": [{"role": "user", "content": "hi"}]}'
    )
    body = rewrite(None, other_options, "/v1/chat/completions").body
    assert body is not None
    assert json.loads(body)["stream_options"] == {
        "continuous_usage_stats": False,
        "include_usage": True,
    }


def test_check_env_fails_on_an_unset_key_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "switchyard.yaml"
    data = config()
    del data["backends"][2]  # api-b: would need the system bundle, not the point here
    data["routes"][0]["backends"].pop()
    data["envoy"] = {"ca_bundle": str(tmp_path / "bundle.pem")}
    (tmp_path / "bundle.pem").write_text("PEM")
    path.write_text(yaml.safe_dump(data))
    switchyard = str(Path(sys.executable).parent / "switchyard")
    env = {k: v for k, v in os.environ.items() if k != "API_A_KEY"}
    failed = subprocess.run(
        [switchyard, "check", "--env", "-c", str(path)], capture_output=True, text=True, env=env
    )
    assert failed.returncode == 2
    unset = 'backends "api-a".credential.env: environment variable API_A_KEY is not set'
    assert unset in failed.stderr
    warned = subprocess.run(
        [switchyard, "check", "-c", str(path)], capture_output=True, text=True, env=env
    )
    assert warned.returncode == 0 and f"WARNING: {path}: {unset}" in warned.stderr
    passed = subprocess.run(
        [switchyard, "check", "-c", str(path)],
        capture_output=True,
        text=True,
        env={**env, "API_A_KEY": KEY},
    )
    assert passed.returncode == 0, passed.stderr
    assert KEY not in passed.stdout + passed.stderr


def test_insecure_skip_verify_is_warned_about_loudly(tmp_path: Path) -> None:
    path = tmp_path / "switchyard.yaml"
    path.write_text(yaml.safe_dump(config(insecure_skip_verify=True)))
    switchyard = str(Path(sys.executable).parent / "switchyard")
    rendered = subprocess.run(
        [switchyard, "envoy", "-c", str(path), "-o", str(tmp_path / "envoy.yaml")],
        capture_output=True,
        text=True,
    )
    assert rendered.returncode == 0, rendered.stderr
    assert "WARNING: backend api-a: insecure_skip_verify is set" in rendered.stderr


def test_check_warns_when_a_backend_key_is_open_to_any_client(tmp_path: Path) -> None:
    path = tmp_path / "switchyard.yaml"
    data = config()
    path.write_text(yaml.safe_dump(data))
    switchyard = str(Path(sys.executable).parent / "switchyard")
    env = {**os.environ, "API_A_KEY": KEY, "API_B_KEY": KEY}
    run = [switchyard, "check", "-c", str(path)]
    open_gateway = subprocess.run(run, capture_output=True, text=True, env=env)
    assert "no client auth is configured" in open_gateway.stderr
    assert "api-a" in open_gateway.stderr
    keys = tmp_path / "clients.keys"
    added = subprocess.run(
        [switchyard, "keys", "add", "alice", "--file", str(keys)], capture_output=True, text=True
    )
    assert added.returncode == 0, added.stderr
    key = added.stdout.strip()
    assert keys.read_text() == f"alice {hashlib.sha256(key.encode()).hexdigest()}\n"
    assert key not in keys.read_text()
    path.write_text(yaml.safe_dump({**data, "auth": {"keys_file": "clients.keys"}}))
    closed = subprocess.run(run, capture_output=True, text=True, env=env)
    assert closed.returncode == 0, closed.stderr
    assert "no client auth" not in closed.stderr
