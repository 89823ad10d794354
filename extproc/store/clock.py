"""One clock for the fleet: Redis's own, as seen from this process.

Pods' clocks drift, and a rollout compares times across replicas (per-second
observation buckets, hold durations, when a step started). Every replica reads
Redis's TIME on each sync and keeps the offset to its own clock, so every time it
writes or compares is on the store's clock. Without a shared store the offset is 0.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class StoreClock:
    def __init__(self, local: Callable[[], float] = time.time) -> None:
        self._local = local
        self._offset = 0.0

    def __call__(self) -> float:
        return self._local() + self._offset

    def local(self) -> float:
        return self._local()

    def calibrate(self, store_time: float, sent_at: float, received_at: float) -> None:
        """Adopts the store's time read between two local readings (half the round trip)."""
        self._offset = store_time - (sent_at + received_at) / 2
