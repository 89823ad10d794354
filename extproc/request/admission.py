"""Large bodies take turns, so that they cost their own requests rather than everyone's.

A ~900 KB prompt costs the core several milliseconds (Envoy buffering it, gRPC framing
it, the parse and the routes), a millisecond of it holding the event loop. Clients
sending such bodies back to back kept the core busy and every small request waited at
each of its hops (6-8 x its p50 in `make bench-heavy`). Here large bodies are parsed one
at a time, and while small requests are arriving each parse is followed by a pause PACE
times as long, so the large bodies' whole cost takes a bounded share of the core and
their own latency pays for the rest. Without small traffic there is no pause (a
deployment of long prompts alone keeps its throughput), and no large body waits longer
than the bound the caller gives (a share of Envoy's message timeout): past it the body
goes ahead unpaced rather than let Envoy time out and fail open.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

LARGE_BODY_BYTES = 65_536
"""A body above this takes a turn; one below counts as small traffic."""
PACE = 40.0
"""Pause after a large body, in multiples of the time its turn took (the parse: about a
tenth of what the body costs the core, Envoy's buffering and gRPC's framing included)."""
SMALL_TRAFFIC_WINDOW_S = 1.0
"""Small requests seen within this long ago make large bodies pause."""


class LargeBodyPacer:
    """One per process: shared by every routing stream."""

    def __init__(self, pace: float = PACE) -> None:
        self._pace = pace
        self._clock = time.monotonic
        self._lock = asyncio.Lock()
        self._open_at = 0.0
        self._small_seen_at = float("-inf")

    def small_request(self) -> None:
        self._small_seen_at = self._clock()

    @asynccontextmanager
    async def turn(self, max_wait_s: float) -> AsyncIterator[float]:
        """Waits for the large bodies ahead and the pause after them, at most max_wait_s;
        gives the seconds waited."""
        clock = self._clock
        arrived = clock()
        deadline = arrived + max_wait_s
        try:
            await asyncio.wait_for(self._lock.acquire(), max_wait_s)
        except TimeoutError:
            acquired = False  # overloaded with large bodies: go now, unpaced
        else:
            acquired = True
        try:
            # At least one turn of the loop: the streams already waiting go first.
            wait = min(self._open_at, deadline) - clock() if acquired else 0.0
            await asyncio.sleep(max(0.0, wait))
            started = clock()
            try:
                yield started - arrived
            finally:
                if acquired:
                    ended = clock()
                    small_traffic = ended - self._small_seen_at < SMALL_TRAFFIC_WINDOW_S
                    pause = (ended - started) * self._pace if small_traffic else 0.0
                    self._open_at = ended + pause
        finally:
            if acquired:
                self._lock.release()
