"""Where rollout state lives: this process (MemoryStore) or the whole fleet (RedisStore).

Both give the app the same few things: the state a new rollout starts in, operator
and analysis actions committed as one transition each, the window of observations
the analysis reads, and whether this replica may decide (promote) now.
"""

from __future__ import annotations

from typing import Protocol

from extproc.config import CanaryConfig, Config
from extproc.rollout.canary import CanaryState, Rollouts
from extproc.rollout.quality import Quality, Served
from extproc.rollout.traffic import TrafficStats
from extproc.rollout.window import Summary
from extproc.store.clock import StoreClock
from extproc.store.metrics import StoreMetrics


class RolloutStore(Protocol):
    replica: str
    clock: StoreClock

    @property
    def available(self) -> bool:
        """False while the shared store does not answer (never for memory)."""

    def decides(self) -> bool:
        """May this replica run the fleet's analysis and promote (the lease holder)?"""

    def leader(self) -> str | None:
        """The replica that decides, as far as this one knows."""

    def starting_state(self, canary: CanaryConfig) -> CanaryState:
        """The local state of a rollout this process has not seen before."""

    def rollouts_changed(self, new_routes: set[str]) -> None:
        """Routes whose rollout is new after a config load: to create or adopt."""

    async def start(self) -> None:
        """Reads the fleet's state before serving (bounded by state.start_timeout_s)."""

    async def act(
        self, route: str, action: str, reason: str, based_on: int | None = None
    ) -> CanaryState:
        """Plans and commits one transition; none if the state is no longer version
        `based_on` (when given). Raises RolloutError when the action cannot apply."""

    async def window(self, route: str, cohort: str, since: float) -> Summary:
        """The observations the analysis judges: the fleet's when shared."""

    async def step_requests(self, route: str, state: CanaryState) -> int:
        """Canary requests served at the current step: the fleet's when shared."""

    def share_requests(self, quality: Quality) -> None:
        """Makes request ids this replica observes known to the fleet (POST /feedback)."""

    async def lookup_request(self, request_id: str) -> Served | None:
        """Where another replica's request went, if the fleet knows."""

    async def claim_feedback(self, request_id: str, kinds: list[str]) -> set[str]:
        """Of these feedback kinds for a request, the ones no replica has counted yet."""

    async def close(self) -> None: ...


def make_store(
    config: Config,
    rollouts: Rollouts,
    traffic: TrafficStats,
    metrics: StoreMetrics,
    clock: StoreClock,
) -> RolloutStore:
    from extproc.store.memory import MemoryStore

    if config.state.store == "memory":
        return MemoryStore(rollouts, traffic, clock)
    # Imported here: a single-process switchyard never loads the Redis client.
    from extproc.store.redis_store import RedisStore

    return RedisStore(config.state, config.analysis, rollouts, traffic, metrics, clock)
