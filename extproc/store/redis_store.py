"""Rollout state shared by the fleet, in Redis.

Keys (P = state.key_prefix):
- `P:rollout:<route>`  hash: the committed state (version, backend, phase, percent,
  step_started, reason, updated_by, updated_at). Every change is a compare-and-set
  on `version` (a Lua script): of two replicas reaching a verdict on the same
  version, one commits and the other adopts what it wrote.
- `P:events`  pub/sub channel: "<route> <version>" after each commit. Replicas
  re-read the record; the periodic sync is the safety net for missed messages.
- `P:leader`  the analysis lease: `SET NX PX`, renewed only by its holder.
- `P:obs:<route>:<cohort>:<second>`  hash: observations summed by every replica
  (extproc.rollout.window.Summary fields), per second of Redis's clock.
- `P:steps:<route>:<version>`  canary requests the fleet served at that version.
- `P:req:<request id>`  where a request went, for POST /feedback on another replica
  (extproc.store.redis_requests).

Nothing from a prompt or a response is written: route and cohort names, counts,
log latencies. Nothing on the request path waits for Redis: every call here runs
in background tasks or behind an operator's request, with short timeouts.

When Redis is away: traffic flows on the last known state, nothing is promoted,
and a replica still rolls a canary back on its own observations; that rollback is
written when Redis answers again, unless the record moved on meanwhile (then the
newer record wins). When Redis comes back empty (restarted without persistence),
replicas write back the committed state they hold, at its version; a rollback that
waited to be written has a newer version and wins over it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets
import time
from dataclasses import replace
from importlib import resources as package_files
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from extproc.config import AnalysisConfig, CanaryConfig, StateConfig
from extproc.rollout.canary import (
    CanaryState,
    Phase,
    RolloutError,
    Rollouts,
    initial_state,
    plan,
    waiting_state,
)
from extproc.rollout.quality import Quality, Served
from extproc.rollout.traffic import TrafficStats
from extproc.rollout.window import Summary
from extproc.store.clock import StoreClock
from extproc.store.connect import redis_client
from extproc.store.metrics import StoreMetrics
from extproc.store.redis_requests import SharedRequestIds

log = logging.getLogger("switchyard.store")

STEP_COUNT_TTL_S = 7 * 86_400
"""A step's request count outlives any hold a config can ask for."""
LOOKUP_ATTEMPTS = 3
"""Reads of a request id for POST /feedback: now, and after one and two flush intervals."""

_STORE_ERRORS = (RedisError, OSError, asyncio.TimeoutError)


def _script(name: str) -> str:
    """A Redis script shipped beside this module (extproc/store/lua/)."""
    return (package_files.files("extproc.store") / "lua" / f"{name}.lua").read_text()


def replica_id() -> str:
    """The pod's name and a random suffix: a restarted pod is a new replica."""
    name = os.environ.get("POD_NAME") or os.uname().nodename
    return f"{name}-{secrets.token_hex(3)}"


def encode(state: CanaryState) -> dict[str, str]:
    return {
        "version": str(state.version),
        "backend": state.backend,
        "phase": state.phase.value,
        "percent": repr(state.percent),
        "step_started": repr(state.step_started),
        "reason": state.reason,
        "updated_by": state.updated_by,
        "updated_at": repr(state.updated_at),
    }


def decode(raw: dict[str, str]) -> CanaryState | None:
    """None for a missing or unreadable record (written by something else)."""
    try:
        return CanaryState(
            backend=raw["backend"],
            phase=Phase(raw["phase"]),
            percent=float(raw["percent"]),
            step_started=float(raw["step_started"]),
            reason=raw.get("reason", ""),
            version=int(raw["version"]),
            updated_by=raw.get("updated_by", ""),
            updated_at=float(raw.get("updated_at", 0.0)),
        )
    except (KeyError, ValueError):
        return None


class RedisStore:
    def __init__(
        self,
        config: StateConfig,
        analysis: AnalysisConfig,
        rollouts: Rollouts,
        traffic: TrafficStats,
        metrics: StoreMetrics,
        clock: StoreClock,
    ) -> None:
        self.replica = replica_id()
        self.clock = clock
        self._config = config
        self._analysis = analysis
        self._rollouts = rollouts
        self._traffic = traffic
        self._metrics = metrics
        self._redis: aioredis.Redis = redis_client(config)
        self._cas = self._redis.register_script(_script("compare_and_set"))
        self._lease = self._redis.register_script(_script("hold_lease"))
        prefix = config.key_prefix
        self._channel = f"{prefix}:events"
        self._leader_key = f"{prefix}:leader"
        self._prefix = prefix
        self._available = False
        self._leads_until = 0.0
        self._leader: str | None = None
        self._to_create: set[str] = set()
        self._pending: dict[str, int] = {}
        """Routes rolled back locally while Redis was away -> the version it was based on."""
        self._unflushed: dict[tuple[str, str, int], Summary] = {}
        self._unflushed_requests: dict[tuple[str, int], int] = {}
        self._request_ids: SharedRequestIds | None = None
        self._sync_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        traffic.share()
        metrics.state_store_up.set(0)

    # -- what the app reads -------------------------------------------------------------

    @property
    def available(self) -> bool:
        return self._available

    def decides(self) -> bool:
        return self._available and time.monotonic() < self._leads_until

    def leader(self) -> str | None:
        return self._leader

    def starting_state(self, canary: CanaryConfig) -> CanaryState:
        return waiting_state(canary, self.clock())

    def rollouts_changed(self, new_routes: set[str]) -> None:
        self._to_create |= new_routes

    def share_requests(self, quality: Quality) -> None:
        self._request_ids = SharedRequestIds(self._redis, self._prefix, quality)

    async def lookup_request(self, request_id: str) -> Served | None:
        if self._request_ids is None or not self._available:
            return None
        try:
            # Feedback can arrive before the serving replica's next flush has written the
            # id: look again after one and after two flush intervals before answering 404.
            for attempt in range(LOOKUP_ATTEMPTS):
                if attempt:
                    await asyncio.sleep(self._config.flush_interval_s)
                served = await self._request_ids.lookup(request_id)
                if served is not None:
                    return served
            return None
        except _STORE_ERRORS as exc:
            self._mark(False, f"lookup: {type(exc).__name__}")
            return None

    async def claim_feedback(self, request_id: str, kinds: list[str]) -> set[str]:
        if self._request_ids is None or not self._available:
            return set(kinds)  # Redis away: each replica dedupes its own posts only
        try:
            return await self._request_ids.claim(request_id, kinds)
        except _STORE_ERRORS as exc:
            self._mark(False, f"claim: {type(exc).__name__}")
            return set(kinds)

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        deadline = time.monotonic() + self._config.start_timeout_s
        while True:
            if await self.sync():
                break
            if time.monotonic() >= deadline:
                log.error(
                    "state store %s unreachable after %.0fs: serving with every canary at 0 %% "
                    "until it answers",
                    self._where(),
                    self._config.start_timeout_s,
                )
                break
            await asyncio.sleep(min(0.5, self._config.sync_interval_s))
        self._tasks = [
            asyncio.create_task(self._sync_loop()),
            asyncio.create_task(self._subscribe_loop()),
            asyncio.create_task(self._flush_loop()),
        ]

    async def close(self) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        # redis-py can turn a cancellation inside a read into a timeout, which the loops
        # catch: they also stop on _closing, and close() does not wait forever for them.
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2 * self._config.timeout_ms / 1000 + 1)
        if self.decides():
            # Hand the lease over at once instead of letting it expire.
            with contextlib.suppress(*_STORE_ERRORS):
                if await self._redis.get(self._leader_key) == self.replica:
                    await self._redis.delete(self._leader_key)
        await self._flush()
        await self._redis.aclose()

    def _where(self) -> str:
        return self._config.redis_url.split("@")[-1]

    def _mark(self, available: bool, operation: str = "") -> None:
        if available != self._available:
            if available:
                log.warning("state store %s answers again", self._where())
            else:
                log.error("state store %s unreachable (%s)", self._where(), operation)
        self._available = available
        self._metrics.state_store_up.set(1 if available else 0)
        if not available:
            self._metrics.state_store_errors.labels(operation).inc()
            self._leads_until = 0.0
            self._metrics.state_leader.set(0)

    # -- background loops ---------------------------------------------------------------

    async def _sync_loop(self) -> None:
        while not self._closing:
            await asyncio.sleep(self._config.sync_interval_s)
            await self.sync()

    async def sync(self) -> bool:
        """Clock, lease and every route's record; True when Redis answered."""
        try:
            sent = self.clock.local()
            seconds, micros = await self._redis.time()
            self.clock.calibrate(seconds + micros / 1e6, sent, self.clock.local())
            await self._hold_lease()
            for route in self._rollouts.states():
                await self._reconcile(route)
        except _STORE_ERRORS as exc:
            self._mark(False, f"sync: {type(exc).__name__}")
            return False
        self._mark(True)
        return True

    async def _hold_lease(self) -> None:
        started = time.monotonic()
        ttl_ms = int(self._config.lease_ttl_s * 1000)
        held = await self._lease(keys=[self._leader_key], args=[self.replica, ttl_ms])
        # Trust the lease for less than its ttl, counted from before the call was sent:
        # the holder stops deciding before anyone else may start.
        self._leads_until = started + self._config.lease_ttl_s * 0.8 if held else 0.0
        holder = self.replica if held else await self._redis.get(self._leader_key)
        self._leader = None if holder is None else str(holder)
        self._metrics.state_leader.set(1 if held else 0)

    async def _subscribe_loop(self) -> None:
        while not self._closing:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                while not self._closing:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None:
                        route = str(message["data"]).split(" ", 1)[0]
                        if self._rollouts.state(route) is not None:
                            await self._reconcile(route)
            except _STORE_ERRORS as exc:
                self._metrics.state_store_errors.labels("subscribe").inc()
                log.debug("state store subscription lost: %s", exc)
                await asyncio.sleep(self._config.sync_interval_s)
            finally:
                with contextlib.suppress(*_STORE_ERRORS):
                    await pubsub.aclose()

    async def _flush_loop(self) -> None:
        while not self._closing:
            await asyncio.sleep(self._config.flush_interval_s)
            await self._flush()

    async def _flush(self) -> None:
        """Adds this replica's new observations and step requests to the fleet's."""
        for bucket, summary in self._traffic.take_unshared().items():
            self._unflushed.setdefault(bucket, Summary()).merge(summary)
        for step, count in self._rollouts.take_unshared_requests().items():
            self._unflushed_requests[step] = self._unflushed_requests.get(step, 0) + count
        pipe = self._redis.pipeline(transaction=False)
        # Request ids that fail to be written are not retried: feedback for them is
        # answered by their own replica only.
        ids = self._request_ids is not None and self._request_ids.write(pipe)
        if not self._unflushed and not self._unflushed_requests and not ids:
            return
        keep_s = int(2 * self._analysis.window_s) + 2
        for (route, cohort, second), summary in self._unflushed.items():
            key = f"{self._prefix}:obs:{route}:{cohort}:{second}"
            for name, value in summary.fields().items():
                if isinstance(value, float):
                    pipe.hincrbyfloat(key, name, value)
                else:
                    pipe.hincrby(key, name, value)
            pipe.expire(key, keep_s)
        for (route, version), count in self._unflushed_requests.items():
            steps_key = f"{self._prefix}:steps:{route}:{version}"
            pipe.incrby(steps_key, count)
            pipe.expire(steps_key, STEP_COUNT_TTL_S)
        try:
            await pipe.execute()
        except _STORE_ERRORS as exc:
            self._mark(False, f"flush: {type(exc).__name__}")
            # Kept for the next try, but only what a window can still use.
            oldest = self.clock() - self._analysis.window_s
            self._unflushed = {k: v for k, v in self._unflushed.items() if k[2] >= oldest}
            return
        self._unflushed, self._unflushed_requests = {}, {}

    # -- reading and writing records ------------------------------------------------------

    def _record_key(self, route: str) -> str:
        return f"{self._prefix}:rollout:{route}"

    async def _read(self, route: str) -> CanaryState | None:
        raw: dict[str, str] = await self._redis.hgetall(self._record_key(route))  # type: ignore[assignment]
        return decode(raw) if raw else None

    async def _compare_and_set(self, route: str, expected: int | None, new: CanaryState) -> bool:
        """Writes `new` if the record's version is still `expected` (None: no record)."""
        fields = [item for pair in encode(new).items() for item in pair]
        written = await self._cas(
            keys=[self._record_key(route)],
            args=[
                "" if expected is None else str(expected),
                self._channel,
                f"{route} {new.version}",
                *fields,
            ],
        )
        return bool(written)

    def _stamped(self, state: CanaryState, version: int) -> CanaryState:
        return replace(state, version=version, updated_by=self.replica, updated_at=self.clock())

    async def _reconcile(self, route: str) -> None:
        """Brings this replica's copy of one route and the record in line."""
        async with self._sync_lock:
            local, canary = self._rollouts.state(route), self._rollouts.canary(route)
            if local is None or canary is None:
                return
            record = await self._read(route)
            record_version = None if record is None else record.version
            if route in self._pending:
                base = self._pending[route]
                if record is not None and record.version > base:
                    log.warning(
                        "rollout %s: the store moved on (v%d) while this replica's rollback "
                        "waited to be written; the store's state wins",
                        route,
                        record.version,
                    )
                    self._rollouts.adopt(route, record, force=True)
                    self._settle(route)
                    return
                written = self._stamped(local, base + 1)
                if await self._compare_and_set(route, record_version, written):
                    self._rollouts.adopt(route, written, force=True)
                    self._settle(route)
                return
            if route in self._to_create:
                if record is None or record.backend != canary.backend:
                    created = self._stamped(
                        initial_state(canary, self.clock()), (record_version or 0) + 1
                    )
                    if await self._compare_and_set(route, record_version, created):
                        self._rollouts.adopt(route, created, force=True)
                        self._to_create.discard(route)
                    return
                self._rollouts.adopt(route, record, force=True)
                self._to_create.discard(route)
                return
            if record is None:
                if local.version > 0:
                    # Redis lost the record (restarted without persistence): write back
                    # the committed state this replica holds, at its own version, so that
                    # a rollback still waiting to be written (a newer version) wins.
                    if await self._compare_and_set(route, None, local):
                        log.warning(
                            "rollout %s: restored v%d to an empty store", route, local.version
                        )
                else:
                    self._to_create.add(route)
                return
            if record.backend != canary.backend:
                # Written by replicas on a newer (or older) config: serve none of it.
                if local.phase is not Phase.WAITING:
                    self._rollouts.adopt(route, waiting_state(canary, self.clock()), force=True)
                return
            if record.version > local.version:
                self._rollouts.adopt(route, record)
            elif record.version < local.version:
                # The store went back in time (restored empty, then a replica created the
                # rollout anew): the fleet's newer state goes back in.
                await self._compare_and_set(route, record.version, local)

    def _settle(self, route: str) -> None:
        self._pending.pop(route, None)
        self._metrics.state_pending_writes.set(len(self._pending))

    # -- actions ------------------------------------------------------------------------

    async def act(
        self, route: str, action: str, reason: str, based_on: int | None = None
    ) -> CanaryState:
        """One transition from the freshest state, or none if `based_on` (the version a
        verdict was reached on) is no longer current: of two replicas deciding on the same
        version, one commits and the other adopts what it wrote."""
        state, canary = self._rollouts.get(route)
        if state.phase is Phase.WAITING:
            raise RolloutError(f"route {route!r}: the fleet's state is not known yet")
        if self._available:
            try:
                if route in self._pending:
                    await self._reconcile(route)  # the rollback that waited first
                record = await self._read(route)
                if record is not None and record.backend == canary.backend:
                    self._rollouts.adopt(route, record)
                state = self._rollouts.get(route)[0]
                if based_on is not None and state.version != based_on:
                    return state
                new = plan(action, state, canary, self.clock(), reason)
                if new is state:
                    return state
                committed = self._stamped(new, state.version + 1)
                if await self._compare_and_set(route, state.version, committed):
                    self._rollouts.adopt(route, committed)
                    return committed
                await self._reconcile(route)
                return self._rollouts.get(route)[0]
            except _STORE_ERRORS as exc:
                self._mark(False, f"commit: {type(exc).__name__}")
        if based_on is not None and state.version != based_on:
            return state
        new = plan(action, state, canary, self.clock(), reason)
        if new is state:
            return state
        return self._act_alone(route, action, state, new)

    def _act_alone(
        self, route: str, action: str, state: CanaryState, new: CanaryState
    ) -> CanaryState:
        """Without Redis only a rollback applies (safety first); it is written later."""
        if action != "rollback":
            raise RolloutError(
                f"route {route!r}: the state store is unreachable; only a rollback can be "
                "applied now"
            )
        alone = replace(new, updated_by=self.replica, updated_at=self.clock())
        self._pending.setdefault(route, state.version)
        self._metrics.state_pending_writes.set(len(self._pending))
        self._rollouts.adopt(route, alone, force=True)
        return alone

    # -- the fleet's observations ---------------------------------------------------------

    async def window(self, route: str, cohort: str, since: float) -> Summary:
        if not self._available:
            return self._traffic.window(route, cohort, since)
        first, last = math.ceil(since), int(self.clock())
        pipe = self._redis.pipeline(transaction=False)
        for second in range(first, last + 1):
            pipe.hgetall(f"{self._prefix}:obs:{route}:{cohort}:{second}")
        try:
            raw_buckets: list[Any] = await pipe.execute()
        except _STORE_ERRORS as exc:
            self._mark(False, f"window: {type(exc).__name__}")
            return self._traffic.window(route, cohort, since)
        total = Summary()
        for raw in raw_buckets:
            if raw:
                total.merge(Summary.from_fields(raw))
        return total

    async def step_requests(self, route: str, state: CanaryState) -> int:
        if not self._available:
            return self._rollouts.step_requests(route)
        try:
            counted = await self._redis.get(f"{self._prefix}:steps:{route}:{state.version}")
        except _STORE_ERRORS as exc:
            self._mark(False, f"steps: {type(exc).__name__}")
            return self._rollouts.step_requests(route)
        return int(counted or 0)
