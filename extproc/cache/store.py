"""The cache's entries in this process: bounded per route (least recently used goes
first), each with its own expiry, indexed by exact key and by scope.

Every read on the request path is answered from here. With `state.store: redis`
(extproc.cache.shared) this is a replica's copy of the fleet's cache, kept in step
by Redis pub/sub and loaded from Redis at start.
"""

from __future__ import annotations

import base64
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from extproc.cache.answer import CachedAnswer


@dataclass(frozen=True)
class Entry:
    exact: str
    scope: str
    route: str
    partition: tuple[str, ...]
    question: str
    answer: CachedAnswer
    expires: float
    """On the store's clock (Unix seconds)."""
    vector: np.ndarray | None = None
    """The question's embedding (L2-normalised), None for an exact-only route."""

    def to_json(self) -> str:
        vector = (
            base64.b64encode(self.vector.astype(np.float32).tobytes()).decode()
            if self.vector is not None
            else None
        )
        return json.dumps(
            {
                "exact": self.exact,
                "scope": self.scope,
                "route": self.route,
                "partition": list(self.partition),
                "question": self.question,
                "answer": self.answer.to_json(),
                "expires": self.expires,
                "vector": vector,
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, text: str) -> Entry:
        data = json.loads(text)
        vector = data.get("vector")
        return cls(
            exact=data["exact"],
            scope=data["scope"],
            route=data["route"],
            partition=tuple(data["partition"]),
            question=data["question"],
            answer=CachedAnswer.from_json(data["answer"]),
            expires=float(data["expires"]),
            vector=np.frombuffer(base64.b64decode(vector), dtype=np.float32) if vector else None,
        )


class MemoryStore:
    """Thread-safe: the gRPC loop reads and fills, the HTTP thread purges and counts."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._routes: dict[str, OrderedDict[str, Entry]] = {}
        self._scopes: dict[str, dict[str, Entry]] = {}

    def get(self, route: str, exact: str) -> Entry | None:
        with self._lock:
            entries = self._routes.get(route)
            entry = entries.get(exact) if entries else None
            if entry is None:
                return None
            if entry.expires <= self._clock():
                self._drop(entry)
                return None
            entries.move_to_end(exact)  # type: ignore[union-attr]
            return entry

    def in_scope(self, scope: str) -> list[Entry]:
        """The live entries sharing this scope (the semantic candidates)."""
        now = self._clock()
        with self._lock:
            entries = self._scopes.get(scope)
            return [e for e in entries.values() if e.expires > now] if entries else []

    def put(self, entry: Entry, max_entries: int) -> None:
        with self._lock:
            entries = self._routes.setdefault(entry.route, OrderedDict())
            old = entries.get(entry.exact)
            if old is not None:
                self._drop(old)
            entries[entry.exact] = entry
            self._scopes.setdefault(entry.scope, {})[entry.exact] = entry
            while len(entries) > max_entries:
                self._drop(next(iter(entries.values())))

    def touch(self, route: str, exact: str) -> None:
        """A hit found by meaning counts as a use of the entry it served."""
        with self._lock:
            entries = self._routes.get(route)
            if entries and exact in entries:
                entries.move_to_end(exact)

    def _drop(self, entry: Entry) -> None:
        entries = self._routes.get(entry.route)
        if entries is not None:
            entries.pop(entry.exact, None)
        scope = self._scopes.get(entry.scope)
        if scope is not None:
            scope.pop(entry.exact, None)
            if not scope:
                del self._scopes[entry.scope]

    def purge(self, route: str | None, partitions: Iterable[str] | None) -> int:
        """Removes the entries of a route and/or partition (any of the given digests);
        both None: everything. Returns how many went."""
        wanted = frozenset(partitions) if partitions is not None else None
        with self._lock:
            doomed = [
                entry
                for name, entries in self._routes.items()
                if route is None or name == route
                for entry in entries.values()
                if wanted is None or wanted & set(entry.partition)
            ]
            for entry in doomed:
                self._drop(entry)
        return len(doomed)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {route: len(entries) for route, entries in self._routes.items()}
