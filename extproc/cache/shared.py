"""The cache shared by every replica through Redis (`state.store: redis`).

Choice: Redis is never read on the request path. Each replica answers from its own
copy (extproc.cache.entries); Redis holds the fleet's entries (one key per entry,
expiring with it) and carries every fill and purge to the other replicas by
pub/sub. A starting replica loads the live entries, so a restart keeps the cache.

Why not a Redis read per request: an exact lookup would cost a network round trip
on every cached route's request, and a semantic one needs the scope's vectors as
well; the local copy costs memory instead (bounded by max_entries per route).
A fill another replica made becomes visible here within a pub/sub delivery
(milliseconds); one lost while this replica was disconnected is loaded again when
the subscription comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Protocol

from redis import asyncio as aioredis
from redis.exceptions import RedisError

from extproc.cache.entries import Entry
from extproc.config import StateConfig
from extproc.errors import SwitchyardError
from extproc.store.connect import redis_client

log = logging.getLogger("switchyard.cache")
_ERRORS = (RedisError, OSError, asyncio.TimeoutError, ValueError, KeyError)


class PurgeNotShared(SwitchyardError, RuntimeError):
    """A purge that reached this replica's entries but not Redis."""


class LocalCopy(Protocol):
    """This replica's cache, as the fleet's fills and purges reach it
    (extproc.cache.service.ResponseCache)."""

    def adopt(self, entry: Entry) -> None: ...

    def purge_local(self, route: str | None, digests: list[str] | None) -> int: ...


class SharedCache:
    """The cache's Replication (extproc.cache.service) through Redis; `start` hands it
    the local copy that other replicas' fills and purges are applied to."""

    def __init__(self, config: StateConfig, replica: str) -> None:
        self._redis: aioredis.Redis = redis_client(config)
        self._local: LocalCopy | None = None
        self._replica = replica
        self._retry_s = config.sync_interval_s
        self._prefix = f"{config.key_prefix}:cache"
        self._channel = f"{config.key_prefix}:cache-events"
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def _key(self, entry: Entry) -> str:
        return f"{self._prefix}:{entry.route}:{entry.exact}"

    async def start(self, local: LocalCopy) -> None:
        self._local = local
        self._task = asyncio.create_task(self._subscribe_loop())

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task], timeout=2)
        await self._redis.aclose()

    async def _load(self) -> int:
        loaded = 0
        batch: list[str] = []
        async for key in self._redis.scan_iter(match=f"{self._prefix}:*", count=500):
            batch.append(str(key))
            if len(batch) >= 500:
                loaded += await self._adopt_keys(batch)
                batch = []
        return loaded + await self._adopt_keys(batch)

    async def _adopt_keys(self, keys: list[str]) -> int:
        """One round trip for a batch of entries (a start may load max_entries of them)."""
        if not keys:
            return 0
        adopted = 0
        for text in await self._redis.mget(keys):
            if text is None:
                continue  # expired meanwhile
            try:
                self._adopt(Entry.from_json(str(text)))
            except (ValueError, KeyError, TypeError):
                continue  # an entry written by another version: ignored, expires by itself
            adopted += 1
        return adopted

    async def publish(self, entry: Entry) -> bool:
        """Stores a fill for the fleet (after the local store has it; off the request path);
        False when Redis did not take it."""
        ttl_ms = max(1, int((entry.expires - time.time()) * 1000))
        text = entry.to_json()
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(self._key(entry), text, px=ttl_ms)
                pipe.publish(self._channel, json.dumps({"from": self._replica, "fill": text}))
                await pipe.execute()
        except _ERRORS as exc:
            log.debug("cache fill not shared: %s", exc)
            return False
        return True

    async def purge(self, route: str | None, digests: list[str] | None) -> int:
        """Removes matching entries from Redis and tells every replica to do the same."""
        try:
            return await self._purge(route, digests)
        except _ERRORS as exc:
            raise PurgeNotShared(
                f"the state store did not answer ({type(exc).__name__}): this replica's entries "
                "are purged, the fleet's are not; run the purge again"
            ) from None

    async def _purge(self, route: str | None, digests: list[str] | None) -> int:
        pattern = f"{self._prefix}:{route}:*" if route is not None else f"{self._prefix}:*"
        removed = 0
        wanted = set(digests) if digests is not None else None
        async for key in self._redis.scan_iter(match=pattern, count=500):
            if wanted is not None:
                text = await self._redis.get(key)
                if text is None or not wanted & set(json.loads(text)["partition"]):
                    continue
            removed += await self._redis.delete(key)
        await self._redis.publish(
            self._channel,
            json.dumps({"from": self._replica, "purge": {"route": route, "digests": digests}}),
        )
        return removed

    def _apply(self, message: str) -> None:
        event = json.loads(message)
        if event.get("from") == self._replica:
            return
        if "fill" in event:
            self._adopt(Entry.from_json(event["fill"]))
        elif "purge" in event and self._local is not None:
            purge = event["purge"]
            self._local.purge_local(purge.get("route"), purge.get("digests"))

    def _adopt(self, entry: Entry) -> None:
        if self._local is not None:
            self._local.adopt(entry)

    async def _subscribe_loop(self) -> None:
        while not self._closing:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                # Subscribed first, then loaded: nothing filled in between is missed.
                loaded = await self._load()
                log.info("cache: %d shared entries loaded from the state store", loaded)
                while not self._closing:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None:
                        with contextlib.suppress(*_ERRORS, TypeError):
                            self._apply(str(message["data"]))
            except _ERRORS as exc:
                log.warning("cache: state store unreachable (%s); serving this replica's copy", exc)
                await asyncio.sleep(self._retry_s)
            finally:
                with contextlib.suppress(*_ERRORS):
                    await pubsub.aclose()
