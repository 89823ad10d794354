"""Where each request went, in Redis: POST /feedback on any replica of a fleet finds it.

The replica that observed a response remembers its request id in memory
(extproc.rollout.quality); in a fleet it also writes `P:req:<request id>` with the
route, cohort, backend, answer second and the signals it already has, in its
periodic flush (one SET per request, expiring after quality.remember_s). A replica
asked about an id it never saw reads that key: one GET, on the feedback's path only,
never on the request path. Nothing from the prompt or the answer is written.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from extproc.rollout.quality import Quality, Served


def encode(served: Served) -> str:
    return "\t".join(
        (
            served.route,
            served.cohort,
            served.backend,
            str(served.second),
            "1" if served.scored else "0",
            ",".join(served.flags),
        )
    )


def decode(raw: str) -> Served | None:
    parts = raw.split("\t")
    if len(parts) != 6 or not parts[3].isdigit():
        return None
    route, cohort, backend, second, scored, flags = parts
    return Served(
        route, cohort, backend, int(second), scored == "1", tuple(filter(None, flags.split(",")))
    )


class SharedRequestIds:
    def __init__(self, redis: aioredis.Redis, prefix: str, quality: Quality) -> None:
        self._redis = redis
        self._prefix = prefix
        self._quality = quality
        quality.share_ids()

    def _key(self, request_id: str) -> str:
        return f"{self._prefix}:req:{request_id}"

    def write(self, pipe: Any) -> bool:
        """Queues the ids observed since the last flush on `pipe`; False when there are none."""
        taken = self._quality.take_unshared_ids()
        ttl = max(1, int(self._quality.remember_s))
        for request_id, served in taken:
            pipe.set(self._key(request_id), encode(served), ex=ttl)
        return bool(taken)

    async def lookup(self, request_id: str) -> Served | None:
        raw = await self._redis.get(self._key(request_id))
        return decode(raw) if isinstance(raw, str) else None

    async def claim(self, request_id: str, kinds: list[str]) -> set[str]:
        """The kinds this call is first to count for the request, fleet-wide: one SET NX
        per kind, kept as long as the request id is."""
        ttl = max(1, int(self._quality.remember_s))
        async with self._redis.pipeline(transaction=False) as pipe:
            for kind in kinds:
                pipe.set(f"{self._key(request_id)}:fb:{kind}", 1, nx=True, ex=ttl)
            results = await pipe.execute()
        return {kind for kind, won in zip(kinds, results, strict=True) if won}
