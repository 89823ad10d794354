"""The canary control loop: every analysis interval, a verdict per route with a canary, and
the rollback or promotion it calls for, committed through the rollout store.

In a fleet only the lease holder judges the fleet's traffic and promotes; while the store
is away every replica judges its own traffic and may only roll back (../shared/FLEET.md).
With analysis.source envoy, each round first adds this second's deltas of the local
Envoy's route statistics to the traffic it judges.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from functools import partial
from typing import Protocol

from extproc import headers as h
from extproc.config import CanaryConfig, Config
from extproc.rollout.analysis import Verdict, analyze
from extproc.rollout.canary import CanaryState, Phase, Rollouts, hold_met
from extproc.rollout.envoy_stats import EnvoyRouteStats
from extproc.rollout.envoy_stats import fetch as fetch_envoy_stats
from extproc.rollout.outcome import Outcome
from extproc.rollout.traffic import TrafficStats
from extproc.rollout.window import Summary

log = logging.getLogger("switchyard.controller")


class DecidingStore(Protocol):
    """What the loop asks of the rollout store (extproc.store.RolloutStore); named here so
    that rollout/ does not import the store, which is built on rollout's own types."""

    @property
    def available(self) -> bool: ...

    def decides(self) -> bool: ...

    def starting_state(self, canary: CanaryConfig) -> CanaryState: ...

    def rollouts_changed(self, new_routes: set[str]) -> None: ...

    async def act(
        self, route: str, action: str, reason: str, based_on: int | None = None
    ) -> CanaryState: ...

    async def window(self, route: str, cohort: str, since: float) -> Summary: ...

    async def step_requests(self, route: str, state: CanaryState) -> int: ...


class CanaryController:
    def __init__(
        self,
        config: Callable[[], Config],
        rollouts: Rollouts,
        store: DecidingStore,
        traffic: TrafficStats,
        clock: Callable[[], float],
        reads_envoy_stats: bool = True,
    ) -> None:
        """reads_envoy_stats: False in all but one process per Envoy (server.workers), so
        that analysis.source envoy counts each request once."""
        self._config = config
        self._reads_envoy_stats = reads_envoy_stats
        self._rollouts = rollouts
        self._store = store
        self._traffic = traffic
        self._clock = clock
        self.verdicts: dict[str, Verdict] = {}
        """The last verdict per route, as this replica judged it."""
        self._envoy_stats: tuple[str, EnvoyRouteStats] | None = None
        self._envoy_stats_ok = True
        rollouts.subscribe(self._on_rollout_change)

    def adopt(self, config: Config) -> None:
        """A (re)loaded config's canaries: the store learns the new ones, the traffic
        record keeps what the analysis of these routes reads."""
        new_routes = self._rollouts.apply_config(config, self._store.starting_state)
        self._store.rollouts_changed(new_routes)
        self._traffic.analyse_routes(
            frozenset(self._rollouts.states()), keep_s=2 * config.analysis.window_s
        )
        self._traffic.observed_feeds_analysis = config.analysis.source == "observed"

    def _on_rollout_change(self, route: str, old: CanaryState | None, new: CanaryState) -> None:
        # The analysis reads traffic from the step's start on: a verdict on the next
        # step comes from traffic served at that step.
        self.verdicts.pop(route, None)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._config().analysis.interval_s)
            try:
                if self._config().analysis.source == "envoy" and self._reads_envoy_stats:
                    await self._read_envoy_stats()
                await self.analyze_once()
            except Exception:
                log.exception("canary analysis failed; will retry")

    async def analyze_once(self) -> None:
        """One round of verdicts, and the transitions they call for."""
        config = self._config()
        cfg = config.analysis
        deciding, alone = self._store.decides(), not self._store.available
        for route, state in self._rollouts.states().items():
            canary = self._rollouts.canary(route)
            if canary is None or state.phase is Phase.WAITING:
                continue
            if not deciding and not alone:
                self.verdicts.pop(route, None)
                continue
            since = max(self._clock() - cfg.window_s, state.step_started)
            route_analysis = config.route(route).analysis
            verdict = analyze(
                await self._store.window(route, h.CANARY, since),
                await self._store.window(route, h.STABLE, since),
                cfg,
                route_analysis.quality if route_analysis else None,
            )
            self.verdicts[route] = verdict
            if not (canary.auto and state.phase is Phase.PROGRESSING):
                continue
            if verdict.status is Outcome.DEGRADED:
                reason = f"{verdict.metric}: {verdict.describe()}"
                await self._store.act(route, "rollback", reason, based_on=state.version)
            elif verdict.status is Outcome.HEALTHY and deciding:
                requests = await self._store.step_requests(route, state)
                if hold_met(canary, state, self._clock(), requests):
                    await self._store.act(
                        route, "promote", "healthy and hold met", based_on=state.version
                    )

    async def _read_envoy_stats(self) -> None:
        admin = self._config().envoy.admin
        if self._envoy_stats is None or self._envoy_stats[0] != admin:
            self._envoy_stats = (admin, EnvoyRouteStats(partial(fetch_envoy_stats, admin)))
        loop = asyncio.get_running_loop()
        try:
            deltas = await loop.run_in_executor(None, self._envoy_stats[1].deltas)
        except OSError as exc:  # Envoy not up yet, or restarting: said once per outage
            if self._envoy_stats_ok:
                log.warning("analysis.source envoy: cannot read %s: %s", admin, exc)
            self._envoy_stats_ok = False
            return
        self._envoy_stats_ok = True
        for (route, cohort), summary in deltas.items():
            self._traffic.add_summary(route, cohort, summary)
