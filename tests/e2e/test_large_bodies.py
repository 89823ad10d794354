"""Large bodies take turns (extproc.request.admission), through a real Envoy.

Clients post ~300 KB prompts while another sends small ones: every large prompt is still
routed by what it says, none fails open, and switchyard's histogram shows the large ones
waited their turns. How much the small requests gain is `make bench-heavy`'s to measure
(a timing bound here would measure this machine's neighbours).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.e2e.stack import Client, make_config, running_stack

pytestmark = pytest.mark.e2e

LARGE_TEXT = "Here is the log; why does the job stop after the export step? " * 5_000


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_large_bodies_wait_their_turn_and_are_still_routed(tmp_path: Path) -> None:
    routes = [
        {"name": "support", "match": {"keywords": ["refund"]}, "backends": [{"backend": "a"}]},
        {"name": "general", "backends": [{"backend": "b"}]},
    ]
    with running_stack(tmp_path, make_config(["a", "b"], routes, "general")) as stack:
        stop = threading.Event()
        small_routes: list[tuple[int, str]] = []

        def small_traffic() -> None:
            client = Client(stack.port)
            while not stop.is_set():
                reply = client.chat("hello there")
                small_routes.append((reply.status, reply.route))
            client.close()

        def large(index: int) -> tuple[int, str]:
            client = Client(stack.port)
            words = "I want a refund" if index % 2 == 0 else "nothing to see"
            reply = client.chat(f"{words}. {LARGE_TEXT}")
            client.close()
            return reply.status, reply.route

        sender = threading.Thread(target=small_traffic)
        sender.start()
        try:
            with ThreadPoolExecutor(4) as pool:
                replies = list(pool.map(large, range(16)))
        finally:
            stop.set()
            sender.join(timeout=30)

        expected = [(200, "support" if i % 2 == 0 else "general") for i in range(16)]
        assert replies == expected
        assert small_routes and set(small_routes) == {(200, "general")}
        metrics = stack.metrics_text()
        assert _metric(metrics, "switchyard_large_body_wait_seconds_count") == 16
        # Small requests were flowing, so the large bodies paused between them: 0.22 s of
        # waits in all when measured, 0.016 s with the pause taken out (turns alone).
        assert _metric(metrics, "switchyard_large_body_wait_seconds_sum") > 0.05
        stats = stack.envoy_stats()
        failed_open = [k for k, v in stats.items() if k.endswith("failure_mode_allowed") and v]
        timeouts = [k for k, v in stats.items() if k.endswith("message_timeouts") and v]
        assert failed_open == [] and timeouts == []
