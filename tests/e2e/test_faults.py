"""Bad input, faults and load through a real Envoy: defined behaviour, nothing lost."""

from __future__ import annotations

import http.client
import json
import random
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.stack import (
    Client,
    Load,
    Stack,
    http_get,
    make_config,
    running_stack,
    wait_until,
)

pytestmark = pytest.mark.e2e

ROUTES = [
    {"name": "clinical", "match": {"keywords": ["symptom"]}, "backends": [{"backend": "med"}]},
    {"name": "general", "backends": [{"backend": "cheap"}]},
]


def config(**sections: Any) -> dict[str, Any]:
    return make_config(["med", "cheap"], ROUTES, "general", **sections)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("faults"), config()) as stack:
        yield stack


def chunked_post(port: int, body: bytes) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))
        conn.request(
            "POST",
            "/v1/chat/completions",
            body=chunks,
            encode_chunked=True,
            headers={"content-type": "application/json"},
        )
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_oversized_bodies_get_a_clear_413_from_switchyard(stack: Stack) -> None:
    huge = json.dumps({"messages": [{"role": "user", "content": "x" * 3_000_000}]}).encode()
    reply = stack.client.request(huge)  # content-length announces it: refused before buffering
    assert reply.status == 413 and reply.json["error"]["code"] == "request_too_large"
    slightly = json.dumps({"messages": [{"role": "user", "content": "y" * 1_060_000}]}).encode()
    status, body = chunked_post(stack.port, slightly)  # no length: refused once buffered
    assert status == 413 and json.loads(body)["error"]["code"] == "request_too_large"


def test_hostile_json_gets_a_400(stack: Stack) -> None:
    for body in (b"[" * 100_000, b"\xff\xfe\xfa", b'"just a string"', b'{"messages": "hi"}'):
        reply = stack.client.request(body)
        assert reply.status == 400, (body[:20], reply.body)
        assert reply.json["error"]["code"] == "invalid_request_body"


def test_a_dead_backend_gives_a_clear_error_and_spares_other_routes(tmp_path: Path) -> None:
    with running_stack(tmp_path, config()) as stack:
        stack.backends["med"].process.kill()
        stack.backends["med"].process.wait()
        reply = stack.client.chat("symptom: cough")
        assert reply.status == 503 and b"upstream connect error" in reply.body
        assert stack.client.chat("hello").status == 200
        stats = stack.envoy_stats()
        assert stats["cluster.med.upstream_cx_connect_fail"] >= 1
        assert stats["cluster.med.upstream_rq_retry"] >= 1  # connect failures are retried


def test_a_stalled_switchyard_fails_open_within_the_message_timeout(tmp_path: Path) -> None:
    with running_stack(tmp_path, config(envoy={"message_timeout_ms": 300})) as stack:
        assert stack.client.chat("symptom: cough").backend == "med"
        assert stack.switchyard is not None
        stack.switchyard.send_signal(signal.SIGSTOP)
        try:
            started = time.monotonic()
            replies = [stack.client.chat("symptom: cough") for _ in range(3)]
            took = time.monotonic() - started
        finally:
            stack.switchyard.send_signal(signal.SIGCONT)
        assert [(r.status, r.backend) for r in replies] == [(200, "cheap")] * 3
        assert took < 3 * 0.3 + 2
        stats = stack.envoy_stats()
        assert stats["http.ingress.ext_proc.switchyard.message_timeouts"] >= 3
        assert stats["http.ingress.ext_proc.switchyard.failure_mode_allowed"] >= 3
        wait_until(lambda: stack.client.chat("symptom: cough").backend == "med", 10, "recovery")


def test_fail_closed_when_configured(tmp_path: Path) -> None:
    with running_stack(tmp_path, config(envoy={"failure_mode_allow": False})) as stack:
        assert stack.client.chat("hello").status == 200
        stack.stop_switchyard(signal.SIGKILL)
        assert stack.client.chat("hello").status == 500


def test_sigterm_lets_in_flight_and_draining_requests_finish(tmp_path: Path) -> None:
    # A long grace: Envoy's config stream (ADS) never ends by itself, and must not hold the
    # stop for all of it; the requests in flight finish in milliseconds.
    cfg = config(server={"drain_s": 2.0, "grace_s": 30})
    with running_stack(tmp_path, cfg) as stack:
        with Load(stack, "symptom: cough", threads=4) as load:
            time.sleep(1)
            assert stack.switchyard is not None
            stack.switchyard.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            wait_until(lambda: http_get(stack.metrics_port, "/healthz")[0] == 503, 2, "draining")
            time.sleep(1)
            during_drain = stack.envoy_stats()[
                "http.ingress.ext_proc.switchyard.failure_mode_allowed"
            ]
            assert stack.switchyard.wait(timeout=20) == 0
            assert time.monotonic() - signalled < 2.0 + 8, "the stop waited out the grace"
            time.sleep(0.5)
        statuses = Counter(s.status for s in load.sent)
        assert set(statuses) == {200}, statuses  # nothing failed, before, during or after
        routed_in_drain = [s for s in load.since(signalled) if s.at < signalled + 1.5]
        assert routed_in_drain and all(s.backend == "med" for s in routed_in_drain)
        assert during_drain == 0
        assert "shutting down" in stack.log("switchyard") and "stopped" in stack.log("switchyard")


def test_prompts_are_never_logged_unless_asked_and_then_redacted(tmp_path: Path) -> None:
    secret = "symptom: my card 4111 1111 1111 1111 and mail jane@example.org"
    with running_stack(tmp_path / "off", config(), serve_args=["--log-level", "debug"]) as stack:
        assert stack.client.chat(secret).status == 200
        stack.stop_switchyard(signal.SIGTERM)
        assert "4111" not in stack.log("switchyard") and "jane@" not in stack.log("switchyard")
        assert "my card" not in stack.log("switchyard")
    with running_stack(
        tmp_path / "on", config(server={"log_prompts": True}), serve_args=["--log-level", "debug"]
    ) as stack:
        assert stack.client.chat(secret).status == 200
        stack.stop_switchyard(signal.SIGTERM)
        log = stack.log("switchyard")
        assert "my card #### #### #### #### and mail <email>" in log
        assert "4111" not in log


@pytest.mark.long
def test_soak_mixed_input_loses_nothing(tmp_path: Path) -> None:
    """A bounded soak: 60 s at a steady rate, good and bad input mixed."""
    kinds: dict[str, tuple[str, str, bytes, set[int]]] = {
        "routed": (
            "POST",
            "/v1/chat/completions",
            json.dumps({"messages": [{"role": "user", "content": "symptom: cough"}]}).encode(),
            {200},
        ),
        "default": (
            "POST",
            "/v1/chat/completions",
            json.dumps({"messages": [{"role": "user", "content": "hi"}], "stream": True}).encode(),
            {200},
        ),
        "malformed": ("POST", "/v1/chat/completions", b'{"messages": [', {400}),
        "too_large": ("POST", "/v1/chat/completions", b" " * 1_100_000, {413}),
        "get": ("GET", "/v1/models", b"", {200}),
    }
    outcomes: Counter[tuple[str, int]] = Counter()
    lost: list[str] = []
    lock = threading.Lock()
    with running_stack(tmp_path, config()) as stack:
        rss: list[int] = []
        stop = threading.Event()

        def worker(seed: int) -> None:
            rng = random.Random(seed)
            client = Client(stack.port)
            try:
                while not stop.is_set():
                    kind = rng.choice(list(kinds))
                    method, path, body, expected = kinds[kind]
                    try:
                        reply = client.request(body, path=path, method=method)
                    except Exception as exc:  # counted, never hidden
                        with lock:
                            lost.append(f"{kind}: {exc!r}")
                        continue
                    with lock:
                        outcomes[(kind, reply.status)] += 1
                        if reply.status not in expected:
                            lost.append(f"{kind}: {reply.status} {reply.body[:100]!r}")
                    time.sleep(0.005)  # steady rate, not saturation
            finally:
                client.close()

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rss.append(stack.switchyard_rss_kb())
            time.sleep(5)
        stop.set()
        for thread in threads:
            thread.join()
        stats = stack.envoy_stats()
    total = sum(outcomes.values())
    print(f"soak: {total} requests, {dict(outcomes)}, rss KB {rss}")
    assert lost == []
    assert total > 2000 and {kind for kind, _ in outcomes} == set(kinds)
    assert stats["http.ingress.ext_proc.switchyard.failure_mode_allowed"] == 0
    assert stats["http.ingress.ext_proc.switchyard.message_timeouts"] == 0
    assert max(rss[2:]) - rss[2] < 30_000, rss  # no growth after warm-up beyond 30 MB


def test_a_stuck_observer_costs_the_response_nothing(tmp_path: Path) -> None:
    """The observe filter's processor accepts connections and never answers: responses
    must come back as fast as before and complete."""
    black_hole = socket.socket()
    black_hole.bind(("127.0.0.1", 0))
    black_hole.listen(1024)  # the kernel completes handshakes; nobody ever reads
    port = black_hole.getsockname()[1]

    def point_observe_at_black_hole(bootstrap: dict[str, Any]) -> None:
        for cluster in bootstrap["static_resources"]["clusters"]:
            if cluster["name"] == "_switchyard_observe":
                endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
                endpoint["endpoint"]["address"] = {
                    "socket_address": {"address": "127.0.0.1", "port_value": port}
                }

    stack = Stack(tmp_path, config())
    try:
        stack.write_config()
        stack.start_backends()
        stack.start_switchyard()
        stack.start_envoy(edit=point_observe_at_black_hole)
        timings = []
        for _ in range(30):
            started = time.monotonic()
            reply = stack.client.chat("symptom: cough", stream=True)
            timings.append(time.monotonic() - started)
            assert reply.status == 200 and reply.backend == "med" and b"[DONE]" in reply.body
        timings.sort()
        print(
            f"with a stuck observer: p50 {timings[15] * 1000:.1f} ms, max {timings[-1] * 1000:.1f} ms"
        )
        assert timings[15] < 0.05 and timings[-1] < 0.5
        assert stack.switchyard_stats()["traffic"] == []  # the observer really saw nothing
    finally:
        stack.close()
        black_hole.close()
