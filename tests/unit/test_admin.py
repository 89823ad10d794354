"""The HTTP thread's way to the store on the event loop (extproc.admin.LoopBridge), and the
metrics registry's place below every area."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading

import pytest

from extproc import admin
from extproc.admin import LoopBridge
from extproc.rollout.quality import Served


class FleetStore:
    """The two fleet calls the bridge makes, recording the thread each ran on."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.threads: list[str] = []

    async def lookup_request(self, request_id: str) -> Served | None:
        self.threads.append(threading.current_thread().name)
        await asyncio.sleep(self.delay_s)
        return Served(route=f"route-of-{request_id}", cohort="canary", backend="b", second=0)

    async def claim_feedback(self, request_id: str, kinds: list[str]) -> set[str]:
        self.threads.append(threading.current_thread().name)
        await asyncio.sleep(self.delay_s)
        return {kinds[0]}


def test_before_the_loop_runs_the_answers_are_the_fallbacks() -> None:
    store = FleetStore()
    bridge = LoopBridge(store)  # type: ignore[arg-type]
    assert bridge.lookup_request("id-1") is None
    assert bridge.claim_feedback("id-1", ["score", "unsafe"]) == {"score", "unsafe"}
    assert store.threads == []


async def test_calls_from_another_thread_run_on_the_loop() -> None:
    store = FleetStore()
    bridge = LoopBridge(store)  # type: ignore[arg-type]
    bridge.attach(asyncio.get_running_loop())
    served = await asyncio.to_thread(bridge.lookup_request, "id-1")
    claimed = await asyncio.to_thread(bridge.claim_feedback, "id-1", ["score", "unsafe"])
    assert served is not None and served.route == "route-of-id-1"
    assert claimed == {"score"}
    assert store.threads == [threading.current_thread().name] * 2


async def test_a_store_slower_than_an_operator_action_gets_the_fallback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(admin, "OPERATOR_TIMEOUT_S", 0.05)
    bridge = LoopBridge(FleetStore(delay_s=0.3))  # type: ignore[arg-type]
    bridge.attach(asyncio.get_running_loop())
    assert await asyncio.to_thread(bridge.lookup_request, "id-1") is None
    kinds = ["score", "unsafe"]
    assert await asyncio.to_thread(bridge.claim_feedback, "id-1", kinds) == set(kinds)
    await asyncio.sleep(0.3)  # the abandoned calls finish before the loop closes


def test_the_metrics_registry_imports_no_area() -> None:
    # Every area imports the registry: the registry importing one would be a cycle.
    probe = "import sys, extproc.metrics; print(sorted(m for m in sys.modules if m.startswith('extproc.')))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert "extproc.metrics" in loaded
    assert "extproc.rollout" not in loaded and "extproc.request" not in loaded, loaded
