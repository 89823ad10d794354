"""What the HTTP thread (extproc.http_api) asks of the running server: operator actions and
cache purges committed on the event loop, fleet lookups for feedback, and the status and
stats answers (`rollout status`, the report)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, TypeVar

from extproc.cache.service import ResponseCache
from extproc.reload import ConfigReloader
from extproc.request.metrics import RequestMetrics
from extproc.rollout.canary import CanaryState, RolloutError, Rollouts
from extproc.rollout.controller import CanaryController
from extproc.rollout.progress import progress
from extproc.rollout.quality import Quality, Served
from extproc.rollout.shadow_comparison import compare
from extproc.rollout.traffic import TrafficStats
from extproc.store import RolloutStore

OPERATOR_TIMEOUT_S = 10.0
"""An operator action waits this long for the store to commit it."""

T = TypeVar("T")


class LoopBridge:
    """Runs calls on the event loop for the HTTP thread, and waits for their results."""

    def __init__(self, store: RolloutStore) -> None:
        self._store = store
        self._loop: asyncio.AbstractEventLoop | None = None

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop is running: calls go to it from now on."""
        self._loop = loop

    def call(self, call: Coroutine[Any, Any, T]) -> T:
        """The call's result; TimeoutError when it takes longer than an operator action may."""
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(call, self._loop)
        return future.result(timeout=OPERATOR_TIMEOUT_S)

    def lookup_request(self, request_id: str) -> Served | None:
        """Asks the fleet's store where a request went."""
        return self._or(lambda: self._store.lookup_request(request_id), None)

    def claim_feedback(self, request_id: str, kinds: list[str]) -> set[str]:
        """Which of these feedback kinds the fleet has not counted."""
        return self._or(lambda: self._store.claim_feedback(request_id, kinds), set(kinds))

    def _or(self, call: Callable[[], Coroutine[Any, Any, T]], fallback: T) -> T:
        """`fallback` when the loop is not running yet or the call takes too long."""
        if self._loop is None:
            return fallback
        try:
            return self.call(call())
        except TimeoutError:
            return fallback


class Admin:
    """The answers behind /rollout, /stats and /cache/purge."""

    def __init__(
        self,
        bridge: LoopBridge,
        reloader: ConfigReloader,
        rollouts: Rollouts,
        store: RolloutStore,
        controller: CanaryController,
        traffic: TrafficStats,
        quality: Quality,
        cache: ResponseCache,
        request_metrics: RequestMetrics,
        clock: Callable[[], float],
    ) -> None:
        self._bridge = bridge
        self._reloader = reloader
        self._rollouts = rollouts
        self._store = store
        self._controller = controller
        self._traffic = traffic
        self._quality = quality
        self._cache = cache
        self._request_metrics = request_metrics
        self._clock = clock

    def act(self, route: str, action: str) -> CanaryState:
        """An operator action: committed by the store on the loop."""
        if action == "launch":
            self._check_shadow(route)
        return self._bridge.call(self._store.act(route, action, "operator"))

    def purge_cache(self, route: str | None, partition: str | None) -> int:
        """`switchyard cache purge`: done on the loop (and in Redis)."""
        return self._bridge.call(self._cache.purge(route, partition))

    def _check_shadow(self, route: str) -> None:
        """`launch` takes a healthy shadow only (judged on this replica's observations)."""
        self._rollouts.get(route)  # a route without a canary: 404, as for any action
        shadow = compare(self._traffic.snapshot(), self._reloader.config).get(route)
        if shadow is None:
            raise RolloutError(f"route {route!r} has no shadow to launch")
        if shadow["verdict"] != "healthy":
            raise RolloutError(f"route {route!r}: the shadow is not healthy: {shadow['verdict']}")

    def status(self) -> dict[str, object]:
        """Every rollout as this replica serves it, and who decides (`rollout status`)."""
        config = self._reloader.config
        return {
            "store": config.state.store,
            "store_available": self._store.available,
            "replica": self._store.replica,
            "leader": self._store.leader(),
            "config": {
                "version": self._reloader.version,
                "xds": config.envoy.xds,
                "envoys": self._reloader.xds.status(),
            },
            "rollouts": self._rollout_rows(),
        }

    def _rollout_rows(self) -> dict[str, dict[str, object]]:
        routes: dict[str, dict[str, object]] = {}
        now = self._clock()
        analysis = self._reloader.config.analysis
        for route, state in self._rollouts.states().items():
            verdict = self._controller.verdicts.get(route)
            canary = self._rollouts.canary(route)
            step_requests = self._rollouts.step_requests(route)
            routes[route] = {
                "backend": state.backend,
                "phase": state.phase.value,
                "percent": state.serving_percent,
                "step_percent": state.percent,
                "version": state.version,
                "reason": state.reason,
                "updated_by": state.updated_by,
                "updated_at": _iso(state.updated_at),
                "step_started": _iso(state.step_started),
                "step_requests_here": step_requests,
                "verdict": verdict.describe() if verdict else "judged by the leader",
                "verdict_detail": asdict(verdict) if verdict else None,
            }
            if canary is not None:
                routes[route].update(
                    progress(
                        route,
                        state,
                        canary,
                        verdict,
                        analysis,
                        now,
                        step_requests,
                        judged_here=self._store.decides() or not self._store.available,
                    )
                )
        return routes

    def stats(self) -> dict[str, object]:
        traffic = self._traffic.snapshot()
        return {
            "traffic": traffic,
            "quality": self._quality.snapshot(),
            "rollouts": self._rollout_rows(),
            "shadows": compare(traffic, self._reloader.config),
            "cache": self._cache.snapshot(),
            "clients": self._request_metrics.client_rows(),
        }


def _iso(seconds: float) -> str | None:
    """Store-clock seconds (Unix time) as an ISO timestamp."""
    if not seconds:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")
