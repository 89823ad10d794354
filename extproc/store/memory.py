"""Rollout state in this process only: one replica, the demo, development."""

from __future__ import annotations

import os
from dataclasses import replace

from extproc.config import CanaryConfig
from extproc.rollout.canary import CanaryState, Rollouts, initial_state, plan
from extproc.rollout.quality import Quality, Served
from extproc.rollout.traffic import TrafficStats
from extproc.rollout.window import Summary
from extproc.store.clock import StoreClock


class MemoryStore:
    def __init__(self, rollouts: Rollouts, traffic: TrafficStats, clock: StoreClock) -> None:
        self.replica = f"{os.uname().nodename}/{os.getpid()}"
        self.clock = clock
        self._rollouts = rollouts
        self._traffic = traffic

    @property
    def available(self) -> bool:
        return True

    def decides(self) -> bool:
        return True

    def leader(self) -> str | None:
        return self.replica

    def starting_state(self, canary: CanaryConfig) -> CanaryState:
        now = self.clock()
        return replace(
            initial_state(canary, now), version=1, updated_by=self.replica, updated_at=now
        )

    def rollouts_changed(self, new_routes: set[str]) -> None:
        pass  # starting_state already is the committed state

    async def start(self) -> None:
        pass

    async def act(
        self, route: str, action: str, reason: str, based_on: int | None = None
    ) -> CanaryState:
        state, canary = self._rollouts.get(route)
        if based_on is not None and state.version != based_on:
            return state
        now = self.clock()
        new = plan(action, state, canary, now, reason)
        if new is state:
            return state
        new = replace(new, version=state.version + 1, updated_by=self.replica, updated_at=now)
        self._rollouts.adopt(route, new)
        return new

    async def window(self, route: str, cohort: str, since: float) -> Summary:
        return self._traffic.window(route, cohort, since)

    async def step_requests(self, route: str, state: CanaryState) -> int:
        return self._rollouts.step_requests(route)

    def share_requests(self, quality: Quality) -> None:
        pass  # one process: every request id is already where the feedback arrives

    async def lookup_request(self, request_id: str) -> Served | None:
        return None

    async def claim_feedback(self, request_id: str, kinds: list[str]) -> set[str]:
        return set(kinds)  # one process: the request's own record already dedupes

    async def close(self) -> None:
        pass
