"""Shadow launch: config checks, the Envoy it renders, the routing decision, launch, report."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from extproc import headers as h
from extproc.config import Config, parse_config
from extproc.envoy_config import DISABLED, SHADOW_LISTENER, render, yaml_form
from extproc.errors import ConfigError
from extproc.request.adapt import compile_adapters
from extproc.request.chat import parse_chat
from extproc.request.routing import Router
from extproc.request.runtime import Runtime
from extproc.request.shadow import is_shadow_copy, shadow_rewrite
from extproc.rollout.canary import Phase, RolloutError, Rollouts, initial_state, plan
from extproc.rollout.metrics import RolloutMetrics
from extproc.rollout.shadow_comparison import (
    Side,
    compare,
    launch_refusal,
    shadow_html,
    shadow_lines,
)
from extproc.rollout.traffic import TrafficStats

ENVOY = str(Path(sys.executable).parent / "envoy")

SHADOWED: dict[str, Any] = {
    "backends": [
        {"name": "v1", "address": "127.0.0.1:1"},
        {
            "name": "v2",
            "address": "llm.internal:443",
            "tls": True,
            "model": "v2-model",
            "path_prefix": "/openai",
            "credential": {"env": "V2_KEY", "prefix": "Bearer "},
        },
        {"name": "other", "address": "127.0.0.1:3"},
    ],
    "routes": [
        {
            "name": "chat",
            "backends": [{"backend": "v1"}],
            "canary": {"backend": "v2", "percent": 0, "steps": [5, 50, 100]},
            "shadow": {"backend": "v2", "percent": 20},
        },
        {"name": "plain", "match": {"keywords": ["x"]}, "backends": [{"backend": "other"}]},
    ],
    "default_route": "chat",
}


def shadowed(**route: Any) -> dict[str, Any]:
    data = copy.deepcopy(SHADOWED)
    data["routes"][0].update(route)
    return data


def issues(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "switchyard.yaml")
    return [str(issue) for issue in info.value.issues]


# -- config -------------------------------------------------------------------------------


def test_a_shadow_alone_or_with_its_canary_at_zero_loads() -> None:
    config = parse_config(SHADOWED, "t")
    assert config.routes[0].shadow is not None and config.routes[0].shadow.percent == 20
    alone = shadowed()
    del alone["routes"][0]["canary"]
    assert parse_config(alone, "t").routes[0].canary is None


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        (
            {"shadow": {"backend": "nope", "percent": 5}},
            'routes "chat".shadow.backend: unknown backend',
        ),
        (
            {"shadow": {"backend": "v1", "percent": 5}},
            'routes "chat".shadow.backend: expected a backend that is not one of the route\'s stable',
        ),
        (
            {"shadow": {"backend": "v2", "percent": 0}},
            'routes "chat".shadow.percent: expected a number > 0',
        ),
        (
            {"shadow": {"backend": "v2", "percent": 100.5}},
            'routes "chat".shadow.percent: expected a number <= 100',
        ),
        ({"shadow": {"backend": "v2"}}, 'routes "chat".shadow.percent: missing'),
        (
            {"shadow": {"backend": "v2", "percent": 5, "extra": 1}},
            'routes "chat".shadow.extra: unknown key',
        ),
        (
            {"shadow": {"backend": "other", "percent": 5}},
            "routes \"chat\".shadow.backend: expected the canary's backend 'v2'",
        ),
        (
            {"canary": {"backend": "v2", "percent": 5, "steps": [5, 50]}},
            'routes "chat".canary.percent: expected 0 with a shadow',
        ),
    ],
)
def test_shadow_mistakes_name_their_key_path(route: dict[str, Any], expected: str) -> None:
    found = issues(shadowed(**route))
    assert any(issue.startswith(expected) for issue in found), found


def test_a_shadow_needs_the_observing_filter() -> None:
    data = shadowed()
    data["envoy"] = {"observe": "off"}
    assert any(i.startswith('routes "chat".shadow: expected envoy.observe') for i in issues(data))


# -- rendered Envoy -------------------------------------------------------------------------


def _listener(bootstrap: dict[str, Any], name: str) -> dict[str, Any]:
    return next(x for x in bootstrap["static_resources"]["listeners"] if x["name"] == name)


def _routes(listener: dict[str, Any]) -> list[dict[str, Any]]:
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return hcm["route_config"]["virtual_hosts"][0]["routes"]


def test_marked_sessions_take_a_variant_that_copies_to_the_internal_listener() -> None:
    bootstrap = render(parse_config(SHADOWED, "t"))
    names = [route["name"] for route in _routes(_listener(bootstrap, "ingress"))]
    # The variant is tried before the stable route it copies.
    assert names.index("chat.stable.v1.shadowed") < names.index("chat.stable.v1")
    routes = {r["name"]: r for r in _routes(_listener(bootstrap, "ingress"))}
    variant, stable = routes["chat.stable.v1.shadowed"], routes["chat.stable.v1"]
    assert {m["name"] for m in variant["match"]["headers"]} == {
        h.ROUTE,
        h.COHORT,
        h.UPSTREAM,
        h.SHADOW,
    }
    [mirror] = variant["route"]["request_mirror_policies"]
    assert mirror["cluster"] == SHADOW_LISTENER and mirror["disable_shadow_host_suffix_append"]
    # The router removed switchyard's headers before copying: the copy gets back the two
    # the internal listener routes and rewrites on.
    restored = {
        m["append"]["header"]["key"]: m["append"]["header"]["value"]
        for m in mirror["request_headers_mutations"]
    }
    assert restored == {
        h.ROUTE: "chat",
        h.SHADOW: f"%DYNAMIC_METADATA(switchyard.decision:{h.SHADOW})%",
    }
    assert variant["route"]["cluster"] == stable["route"]["cluster"] == "v1"
    assert "request_mirror_policies" not in stable["route"]
    assert not any(name.startswith("plain.") and "shadowed" in name for name in names)
    assert h.SHADOW in h.INTERNAL  # a client cannot mark its own requests


def test_the_internal_listener_rewrites_observes_and_forwards_to_the_shadow() -> None:
    bootstrap = render(parse_config(SHADOWED, "t"))
    listener = _listener(bootstrap, SHADOW_LISTENER)
    assert listener["internal_listener"] == {} and "address" not in listener
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    assert [f["name"] for f in hcm["http_filters"]] == [
        "switchyard.route",
        "switchyard.observe",
        "envoy.filters.http.router",
    ]
    route = next(r for r in _routes(listener) if r["name"] == "chat.shadow")
    assert route["route"]["cluster"] == "v2"
    assert route["route"]["host_rewrite_literal"] == "llm.internal"
    added = [add["header"] for add in route["request_headers_to_add"]]
    assert added == [{"key": "authorization", "value": "Bearer %ENVIRONMENT(V2_KEY)%"}]
    answered = {a["header"]["key"]: a["header"]["value"] for a in route["response_headers_to_add"]}
    assert answered == {h.ROUTE: "chat", h.COHORT: h.SHADOW_COHORT}
    vhost = hcm["route_config"]["virtual_hosts"][0]
    assert {h.ROUTE, h.COHORT, h.SHADOW, "x-api-key"} <= set(vhost["request_headers_to_remove"])
    # v2 takes another model name: the copy goes through the routing filter, version named.
    assert route["typed_per_filter_config"]["switchyard.route"]["overrides"]
    assert _routes(listener)[-1]["direct_response"] == {"status": 404}
    cluster = next(
        c for c in bootstrap["static_resources"]["clusters"] if c["name"] == SHADOW_LISTENER
    )
    endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert endpoint["address"] == {
        "envoy_internal_address": {"server_listener_name": SHADOW_LISTENER}
    }
    assert bootstrap["bootstrap_extensions"][0]["name"] == "envoy.bootstrap.internal_listener"


def test_a_copy_that_needs_no_rewrite_skips_switchyards_routing_filter() -> None:
    data = shadowed(shadow={"backend": "other", "percent": 10})
    del data["routes"][0]["canary"]
    listener = _listener(render(parse_config(data, "t")), SHADOW_LISTENER)
    route = next(r for r in _routes(listener) if r["name"] == "chat.shadow")
    assert route["typed_per_filter_config"] == {"switchyard.route": yaml_form(DISABLED)}
    assert {h.COHORT: h.SHADOW_COHORT}.items() <= {
        a["header"]["key"]: a["header"]["value"] for a in route["response_headers_to_add"]
    }.items()


def test_without_a_shadow_nothing_of_it_is_rendered() -> None:
    data = shadowed()
    del data["routes"][0]["shadow"]
    data["routes"][0]["canary"]["percent"] = 5
    bootstrap = render(parse_config(data, "t"))
    assert [x["name"] for x in bootstrap["static_resources"]["listeners"]] == ["ingress", "stats"]
    clusters = bootstrap["static_resources"]["clusters"]
    assert all(c["name"] != SHADOW_LISTENER for c in clusters)


def test_rendered_shadow_passes_envoy_validate(tmp_path: Path) -> None:
    path = tmp_path / "envoy.yaml"
    path.write_text(yaml.safe_dump(render(parse_config(SHADOWED, "t"))))
    result = subprocess.run(
        [ENVOY, "--mode", "validate", "-c", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -- the routing decision -----------------------------------------------------------------


def router(data: dict[str, Any] | None = None) -> tuple[Router, Rollouts, Config]:
    config = parse_config(data or SHADOWED, "t")
    rollouts = Rollouts()
    rollouts.apply_config(config, lambda canary: initial_state(canary, 0.0))
    return Router(config, rollouts), rollouts, config


def body(text: str = "hello") -> bytes:
    return json.dumps({"model": "m", "messages": [{"role": "user", "content": text}]}).encode()


def decide(r: Router, session: str | None, text: str = "hello") -> Any:
    headers = {"x-session-id": session} if session else {}
    return r.decide(parse_chat(body(text)), headers, None)


def test_shadowed_sessions_are_about_the_percent_and_stay_shadowed() -> None:
    r, _, _ = router()
    decisions = [decide(r, f"s{i}") for i in range(4000)]
    share = sum(d.shadow for d in decisions) / len(decisions)
    assert 0.17 < share < 0.23, share
    assert all(d.cohort == h.STABLE and d.backend == "v1" for d in decisions)
    assert all(decide(r, f"s{i}").shadow == decisions[i].shadow for i in range(200))
    assert h.SHADOW not in decisions[0].headers()  # the processor adds the client's path


def test_no_session_no_shadow_and_other_routes_never() -> None:
    r, _, _ = router({**shadowed(), "session": {"sources": ["header:x-session-id"]}})
    assert not any(decide(r, None).shadow for _ in range(200))
    assert not any(decide(r, f"s{i}", "x marks").shadow for i in range(200))


def test_the_shadow_stops_once_launched_or_rolled_back_and_returns_on_reset() -> None:
    r, rollouts, _ = router()
    sessions = [f"s{i}" for i in range(1000)]
    shadowed_before = {s for s in sessions if decide(r, s).shadow}

    def act(action: str) -> None:
        state, canary = rollouts.get("chat")
        rollouts.adopt(
            "chat", replace(plan(action, state, canary, 1.0, "t"), version=state.version + 1)
        )

    act("launch")
    assert rollouts.get("chat")[0].percent == 5
    launched = [decide(r, s) for s in sessions]
    assert not any(d.shadow for d in launched)
    canary = {s for s, d in zip(sessions, launched, strict=True) if d.cohort == h.CANARY}
    # The first step's sessions are among those the shadow saw (5 % <= 20 %).
    assert canary and canary <= shadowed_before
    act("rollback")
    assert not any(decide(r, s).shadow for s in sessions)
    act("reset")
    assert {s for s in sessions if decide(r, s).shadow} == shadowed_before


def test_launch_only_from_the_shadow_phase() -> None:
    _, rollouts, _ = router()
    state, canary = rollouts.get("chat")
    launched = plan("launch", state, canary, 5.0, "op")
    assert (launched.phase, launched.percent, launched.step_started) == (Phase.PROGRESSING, 5, 5.0)
    with pytest.raises(RolloutError, match="expected a canary at 0 %"):
        plan("launch", launched, canary, 6.0, "op")
    rolled_back = plan("rollback", state, canary, 6.0, "op")
    with pytest.raises(RolloutError, match="rolled_back"):
        plan("launch", rolled_back, canary, 7.0, "op")


# -- the copy, rewritten for the shadow ------------------------------------------------------


def test_the_copy_is_rewritten_for_the_shadow_from_the_clients_path() -> None:
    r, _, config = router()
    runtime = Runtime(config, r, None, compile_adapters(config))
    headers = {
        ":path": "/v1/chat/completions",
        h.ROUTE: "chat",
        h.SHADOW: "/v1/chat/completions",
        "content-length": "70",
    }
    assert is_shadow_copy(headers) and not is_shadow_copy({h.ROUTE: "chat"})
    changes, new_body = shadow_rewrite(runtime, parse_chat(body()), headers)
    assert changes[h.COHORT] == h.SHADOW_COHORT
    assert changes[":path"] == "/openai/v1/chat/completions"
    assert new_body is not None and json.loads(new_body)["model"] == "v2-model"
    assert changes["content-length"] == str(len(new_body))
    unknown = shadow_rewrite(runtime, parse_chat(body()), {**headers, h.ROUTE: "plain"})
    assert unknown == ({h.COHORT: h.SHADOW_COHORT}, None)


def test_shadow_answers_never_enter_the_analysis_window() -> None:
    traffic = TrafficStats(RolloutMetrics(), clock=lambda: 10.0)
    traffic.analyse_routes(frozenset({"chat"}), keep_s=100)
    traffic.record("chat", h.SHADOW_COHORT, "v2", 500, 0.01, None, None, 0.0)
    traffic.record("chat", h.STABLE, "v1", 200, 0.01, None, None, 0.0)
    assert traffic.window("chat", h.SHADOW_COHORT, 0).requests == 0
    assert traffic.window("chat", h.STABLE, 0).requests == 1
    assert {row["cohort"] for row in traffic.snapshot()} == {h.SHADOW_COHORT, h.STABLE}


# -- the comparison and the launch gate -------------------------------------------------------


def test_launch_gate_wants_enough_answers_and_margins_kept() -> None:
    cfg = parse_config(SHADOWED, "t").analysis
    primary = Side(requests=200, errors=2, latency_p50_ms=100.0)
    assert "not enough data" in (launch_refusal(primary, Side(requests=5), cfg) or "")
    assert launch_refusal(primary, Side(requests=100, errors=1, latency_p50_ms=105.0), cfg) is None
    assert "error rate 10.00%" in (
        launch_refusal(primary, Side(requests=100, errors=10, latency_p50_ms=100.0), cfg) or ""
    )
    assert "median latency 5000.0 ms" in (
        launch_refusal(primary, Side(requests=100, latency_p50_ms=5000.0), cfg) or ""
    )


def test_report_puts_the_shadow_beside_the_primary() -> None:
    config = parse_config(SHADOWED, "t")
    traffic = TrafficStats(RolloutMetrics())
    for _ in range(30):
        traffic.record("chat", h.STABLE, "v1", 200, 0.010, None, (10, 2), 0.0)
        traffic.record("chat", h.SHADOW_COHORT, "v2", 503, 0.020, None, None, 0.0)
    shadows = compare(traffic.snapshot(), config)
    assert set(shadows) == {"chat"}
    chat = shadows["chat"]
    assert chat["primary"]["requests"] == chat["shadow"]["requests"] == 30
    assert chat["shadow"]["error_rate"] == 1.0 and chat["primary"]["error_rate"] == 0.0
    assert chat["primary"]["prompt_tokens_per_request"] == 10
    assert chat["verdict"].startswith("error rate 100.00%")
    text = "\n".join(shadow_lines(shadows))
    assert "chat   primary  (stable)  30" in text and "chat   shadow   v2" in text
    assert "chat: 20% of sessions -> error rate" in text
    assert "Shadow on route chat" in "".join(shadow_html(shadows))
    assert shadow_lines({})[-1] == "  (no route has a shadow)"


# -- launch in a fleet ----------------------------------------------------------------------


async def test_launch_is_committed_once_for_the_whole_fleet(tmp_path: Path) -> None:
    from extproc.tools.devstack import RedisServer
    from tests.unit.test_redis_store import Replica, eventually

    server = RedisServer(tmp_path)
    server.start()
    data = shadowed()
    data["routes"][0]["name"] = data["default_route"] = "r"
    data["state"] = {
        "store": "redis",
        "redis_url": server.url,
        "sync_interval_s": 0.2,
        "lease_ttl_s": 1.0,
        "start_timeout_s": 0.5,
    }
    config = parse_config(data, "t")
    replicas = [Replica(config), Replica(config)]
    try:
        for replica in replicas:
            await replica.store.start()
        a, b = replicas
        assert a.state.percent == b.state.percent == 0
        launched = await a.store.act("r", "launch", "operator")
        assert (launched.phase, launched.percent) == (Phase.PROGRESSING, 5)
        await eventually(lambda: b.state.percent == 5)
        with pytest.raises(RolloutError, match="expected a canary at 0 %"):
            await b.store.act("r", "launch", "operator")
    finally:
        for replica in replicas:
            await replica.store.close()
        server.stop()
