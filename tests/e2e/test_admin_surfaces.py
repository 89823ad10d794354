"""Who can stop Envoy or change a rollout: Envoy's admin stays on loopback, its stats
listener passes on only reads, and POST /rollout needs the admin token (or, without
one, a loopback client)."""

from __future__ import annotations

import http.client
import os
import subprocess
from pathlib import Path

import pytest

from tests.e2e.stack import SWITCHYARD, free_port, http_get, make_config, running_stack

pytestmark = pytest.mark.e2e

ROUTES = [
    {
        "name": "clinical",
        "match": {"keywords": ["symptom"]},
        "backends": [{"backend": "med-v1"}],
        "canary": {"backend": "med-v2", "percent": 5, "steps": [5, 50, 100], "auto": False},
    },
    {"name": "general", "backends": [{"backend": "cheap"}]},
]
BACKENDS = ["med-v1", "med-v2", "cheap"]
TOKEN = "rollout-token-for-tests"


def request(
    host: str, port: int, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.request(method, path, body=b"" if method == "POST" else None, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def non_loopback_address() -> str:
    """An IPv4 address of this machine that is not loopback (the test needs one)."""
    output = subprocess.run(["hostname", "-I"], capture_output=True, text=True, check=True).stdout
    found = [a for a in output.split() if "." in a and not a.startswith("127.")]
    assert found, f"this test needs a non-loopback IPv4 address; hostname -I gave {output!r}"
    return found[0]


def test_stats_listener_serves_reads_only_and_envoy_keeps_serving(tmp_path: Path) -> None:
    config = make_config(BACKENDS, ROUTES, "general")
    with running_stack(tmp_path, config) as stack:
        stats_port = int(stack.config["envoy"]["stats_listen"].rsplit(":", 1)[1])
        assert stack.client.chat("symptom: cough").status == 200

        status, body = request("127.0.0.1", stats_port, "GET", "/stats/prometheus")
        assert status == 200
        assert b"envoy_cluster_upstream_rq_total" in body
        assert request("127.0.0.1", stats_port, "GET", "/ready") == (200, b"LIVE\n")
        # What the admin interface would do on the same paths: never passed on.
        for method, path in [
            ("POST", "/quitquitquit"),
            ("POST", "/runtime_modify?clinical.med-v1=0"),
            ("POST", "/healthcheck/fail"),
            ("POST", "/drain_listeners"),
            ("POST", "/logging?level=trace"),
            ("GET", "/quitquitquit"),
            ("GET", "/config_dump"),
            ("GET", "/stats"),
            ("POST", "/stats/prometheus"),
            ("POST", "/ready"),
            ("GET", "/stats/prometheus/../../quitquitquit"),
        ]:
            assert request("127.0.0.1", stats_port, method, path)[0] == 404, (method, path)

        assert stack.envoy is not None and stack.envoy.poll() is None, "Envoy stopped"
        assert http_get(stack.admin_port, "/ready") == (200, b"LIVE\n")
        status, runtime = http_get(stack.admin_port, "/runtime")
        assert status == 200 and b"clinical" not in runtime, "a runtime value was changed"
        reply = stack.client.chat("symptom: cough")
        assert reply.status == 200 and reply.backend in {"med-v1", "med-v2"}


def test_rollout_needs_the_admin_token(tmp_path: Path) -> None:
    config = make_config(BACKENDS, ROUTES, "general", server={"admin_token_env": "SY_TEST_TOKEN"})
    with running_stack(tmp_path, config, env={"SY_TEST_TOKEN": TOKEN}) as stack:
        port = stack.metrics_port
        path = "/rollout/clinical/promote"
        no_token = request("127.0.0.1", port, "POST", path)
        wrong = request("127.0.0.1", port, "POST", path, {"authorization": "Bearer not-it"})
        assert no_token[0] == wrong[0] == 401
        assert no_token[1] == wrong[1], "a missing and a wrong token must look alike"
        assert stack.switchyard_stats()["rollouts"]["clinical"]["percent"] == 5
        status, body = request(
            "127.0.0.1", port, "POST", path, {"authorization": f"Bearer {TOKEN}"}
        )
        assert status == 200, body
        assert stack.switchyard_stats()["rollouts"]["clinical"]["percent"] == 50
        # Reads stay open.
        for path in ("/metrics", "/healthz", "/stats"):
            assert http_get(port, path)[0] == 200, path

        url = f"http://127.0.0.1:{port}"
        cli = [SWITCHYARD, "rollout", "rollback", "clinical", "--url", url]
        cli += ["--token-env", "SY_TEST_TOKEN"]
        env = {k: v for k, v in os.environ.items() if k != "SY_TEST_TOKEN"}
        refused = subprocess.run(cli, capture_output=True, text=True, env=env, timeout=30)
        assert refused.returncode == 1 and "Authorization" in refused.stderr
        env["SY_TEST_TOKEN"] = TOKEN
        done = subprocess.run(cli, capture_output=True, text=True, env=env, timeout=30)
        assert done.returncode == 0, done.stderr
        assert stack.switchyard_stats()["rollouts"]["clinical"]["phase"] == "rolled_back"
    assert "POST /rollout requires the bearer token from $SY_TEST_TOKEN" in stack.log("switchyard")
    assert TOKEN not in stack.log("switchyard")


def test_without_a_token_rollout_answers_loopback_clients_only(tmp_path: Path) -> None:
    outside = non_loopback_address()
    config = make_config(BACKENDS, ROUTES, "general")
    config["server"]["metrics_listen"] = f"0.0.0.0:{free_port()}"
    env = {"SWITCHYARD_ADMIN_TOKEN": ""}  # set but empty counts as unset
    with running_stack(tmp_path, config, env=env) as stack:
        port = stack.metrics_port
        path = "/rollout/clinical/promote"
        status, body = request(outside, port, "POST", path, {"authorization": "Bearer guess"})
        assert status == 403 and b"loopback" in body
        assert request(outside, port, "GET", "/metrics")[0] == 200, "reads stay open"
        assert stack.switchyard_stats()["rollouts"]["clinical"]["percent"] == 5
        assert request("127.0.0.1", port, "POST", path)[0] == 200
        assert stack.switchyard_stats()["rollouts"]["clinical"]["percent"] == 50
    assert "answers loopback clients only" in stack.log("switchyard")
