"""One config version for Envoy and switchyard: a saved change reaches Envoy over xDS, and
the request path switches only when Envoy runs it too.

Every backend is strict (`--served-model`, as vLLM): a body rewritten for one backend and
sent to another would answer 404, so "no non-2xx" means Envoy and switchyard agreed on
every single request while the config changed under load.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.stack import (
    Load,
    Stack,
    backend_shares,
    free_port,
    http_get,
    make_config,
    running_stack,
    wait_until,
)

pytestmark = pytest.mark.e2e

MODELS = {"a": "model-a", "b": "model-b", "v2": "model-v2", "v3": "model-v3"}
SWITCH_BOUND_S = 5.0


def _config() -> dict[str, Any]:
    routes = [
        {
            "name": "chat",
            "backends": [{"backend": "a", "weight": 70}, {"backend": "b", "weight": 30}],
            "canary": {
                "backend": "v2",
                "percent": 20,
                "steps": [20, 50, 100],
                "auto": False,
            },
        }
    ]
    # A generous message timeout: a loaded test machine must not make Envoy fail open
    # (what fail-open sends is another test's business), only versions are judged here.
    config = make_config(
        list(MODELS),
        routes,
        "chat",
        analysis={"interval_s": 0.5},
        envoy={"message_timeout_ms": 5000},
    )
    for backend in config["backends"]:
        backend["model"] = MODELS[backend["name"]]
    return config


def _strict(names: list[str]) -> dict[str, list[str]]:
    return {name: ["--served-model", MODELS[name]] for name in names}


def _status(stack: Stack) -> dict[str, Any]:
    status, body = http_get(stack.metrics_port, "/rollout")
    assert status == 200
    return json.loads(body)


def _switched(stack: Stack, old_version: str) -> str | None:
    """The new config version once switchyard runs it and every Envoy acknowledged it."""
    config = _status(stack)["config"]
    envoys = config["envoys"]
    if config["version"] == old_version or not envoys:
        return None
    if all((e["config_version"] or "").startswith(config["version"]) for e in envoys):
        return str(config["version"])
    return None


def _change(stack: Stack, edit: Any) -> tuple[str, float]:
    """Saves an edited config; returns the new version and how long until Envoy ran it."""
    old = _status(stack)["config"]["version"]
    edit(stack.config)
    started = time.monotonic()
    stack.write_config()
    version = wait_until(lambda: _switched(stack, old), SWITCH_BOUND_S, "the new config in Envoy")
    return version, time.monotonic() - started


def _start_backend(stack: Stack, name: str, model: str) -> dict[str, Any]:
    port = free_port()
    stack.launch_backend(name, port, "--served-model", model).process.wait_ready(15)
    return {"name": name, "address": f"127.0.0.1:{port}", "model": model}


def test_saved_changes_reach_envoy_under_load_with_no_request_sent_to_the_wrong_backend(
    tmp_path: Path,
) -> None:
    with running_stack(tmp_path, _config(), backend_args=_strict(list(MODELS))) as stack:
        assert stack.envoy is not None
        envoy_pid = stack.envoy.pid
        switch_times = []
        with Load(stack, "hello there", threads=6) as load:
            wait_until(lambda: len(load.sent) > 200, 30, "traffic")

            # Weights 70/30 -> 30/70.
            def flip(config: dict[str, Any]) -> None:
                config["routes"][0]["backends"] = [
                    {"backend": "a", "weight": 30},
                    {"backend": "b", "weight": 70},
                ]

            _, took = _change(stack, flip)
            switch_times.append(took)
            since = time.monotonic()
            wait_until(lambda: len(load.since(since)) > 600, 30, "traffic on the new weights")
            stable = [s for s in load.since(since) if s.cohort == "stable"]
            assert 0.6 < backend_shares(stable).get("b", 0) < 0.8, backend_shares(stable)

            # A backend the config did not have joins the route.
            added = _start_backend(stack, "c", "model-c")

            def add(config: dict[str, Any]) -> None:
                config["backends"].append(added)
                config["routes"][0]["backends"].append({"backend": "c", "weight": 50})

            _, took = _change(stack, add)
            switch_times.append(took)
            wait_until(lambda: stack.backends["c"].stats()["requests"] > 20, 10, "c's traffic")

            # The canary's backend is swapped, and the old one leaves the config.
            def swap(config: dict[str, Any]) -> None:
                config["routes"][0]["canary"]["backend"] = "v3"
                config["backends"] = [b for b in config["backends"] if b["name"] != "v2"]

            _, took = _change(stack, swap)
            switch_times.append(took)
            # Requests Envoy matched with the previous version still go to v2: let them pass.
            since = time.monotonic() + 1.0
            wait_until(lambda: len(load.since(since)) > 300, 30, "traffic after the swap")
            canary = {s.backend for s in load.since(since) if s.cohort == "canary"}
            assert canary == {"v3"}
        failed = [s for s in load.sent if s.status != 200]
        assert not failed, f"{len(failed)} of {len(load.sent)} failed, first: {failed[:3]}"
        assert stack.envoy.pid == envoy_pid and stack.envoy.poll() is None
        assert max(switch_times) < SWITCH_BOUND_S

        # Once no request matched with the previous version can be under way, Envoy holds
        # the last version alone: the backend that left the config left Envoy too.
        def clusters() -> set[str]:
            listed = json.loads(http_get(stack.admin_port, "/clusters?format=json")[1])
            return {c["name"] for c in listed["cluster_statuses"]}

        wait_until(lambda: "v2" not in clusters(), 15, "v2's cluster retired from Envoy")
        assert {"a", "b", "c", "v3"} <= clusters()
        assert 'result="success"' in stack.metrics_text()


def test_a_version_envoy_rejects_leaves_both_on_the_running_one(tmp_path: Path) -> None:
    with running_stack(tmp_path, _config(), backend_args=_strict(list(MODELS))) as stack:
        old = _status(stack)["config"]["version"]
        stack.config["backends"][1].update(
            {"tls": True, "tls_ca_file": str(tmp_path / "missing-ca.pem")}
        )
        stack.config["routes"][0]["backends"] = [
            {"backend": "a", "weight": 1},
            {"backend": "b", "weight": 99},
        ]
        stack.write_config()
        wait_until(
            lambda: (
                'switchyard_config_reloads_total{result="envoy_rejected"} 1.0'
                in stack.metrics_text()
            ),
            15,
            "the rejection counted",
        )
        status = _status(stack)["config"]
        assert status["version"] == old
        assert [e["config_version"] for e in status["envoys"]] == [old]
        assert "missing-ca.pem" in (status["envoys"][0]["last_rejection"] or "")
        assert "missing-ca.pem" in stack.log("switchyard")
        # Both still run the old split, and every body still fits its backend.
        replies = [stack.client.chat("hi", headers={"x-session-id": f"s{i}"}) for i in range(60)]
        assert {r.status for r in replies} == {200}
        stable = [r for r in replies if r.cohort == "stable"]
        assert sum(r.backend == "a" for r in stable) > len(stable) / 2


def test_envoy_keeps_its_config_while_switchyard_restarts_then_they_agree_again(
    tmp_path: Path,
) -> None:
    with running_stack(tmp_path, _config(), backend_args=_strict(list(MODELS))) as stack:
        version = _status(stack)["config"]["version"]
        stack.stop_switchyard(signal.SIGKILL)
        time.sleep(1.0)
        # Envoy still has its listener and routes (from switchyard, over xDS).
        assert http_get(stack.admin_port, "/ready")[0] == 200
        listeners = http_get(stack.admin_port, "/listeners?format=json")[1].decode()
        assert "ingress" in listeners
        stack.start_switchyard()
        wait_until(
            lambda: [e["config_version"] for e in _status(stack)["config"]["envoys"]] == [version],
            10,
            "Envoy reconnected and acknowledged the same version",
        )
        replies = [stack.client.chat("hi", headers={"x-session-id": f"s{i}"}) for i in range(20)]
        assert {r.status for r in replies} == {200}
        assert {r.route for r in replies} == {"chat"}
