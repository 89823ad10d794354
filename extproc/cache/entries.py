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


class ScopeIndex:
    """One scope's entries and their vectors as rows of one matrix, so that a semantic
    lookup is one matrix-vector product, and a fill or an eviction costs O(1) (the last
    row moves into a freed one)."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        self._rows: list[str] = []
        self._row_of: dict[str, int] = {}
        self._matrix: np.ndarray | None = None

    def add(self, entry: Entry) -> None:
        self.entries[entry.exact] = entry
        if entry.vector is None:
            return
        if self._matrix is None or self._matrix.shape[1] != entry.vector.shape[0]:
            self._matrix = np.zeros((4, entry.vector.shape[0]), dtype=np.float32)
            self._rows, self._row_of = [], {}
            for other in self.entries.values():
                if other.vector is not None and other is not entry:
                    self._append(other)
        self._append(entry)

    def _append(self, entry: Entry) -> None:
        assert self._matrix is not None and entry.vector is not None
        if len(self._rows) == self._matrix.shape[0]:
            grown = np.zeros((2 * len(self._rows), self._matrix.shape[1]), dtype=np.float32)
            grown[: len(self._rows)] = self._matrix
            self._matrix = grown
        if entry.vector.shape[0] != self._matrix.shape[1]:
            return  # written by another encoder: not comparable
        self._row_of[entry.exact] = len(self._rows)
        self._matrix[len(self._rows)] = entry.vector
        self._rows.append(entry.exact)

    def remove(self, exact: str) -> None:
        self.entries.pop(exact, None)
        row = self._row_of.pop(exact, None)
        if row is None or self._matrix is None:
            return
        last = self._rows.pop()
        if last != exact:
            self._matrix[row] = self._matrix[len(self._rows)]
            self._rows[row] = last
            self._row_of[last] = row

    def nearest(self, vector: np.ndarray, count: int) -> list[tuple[float, Entry]]:
        """The `count` closest entries with a vector, closest first, with their cosines."""
        if self._matrix is None or not self._rows or vector.shape[0] != self._matrix.shape[1]:
            return []
        similarities = self._matrix[: len(self._rows)] @ vector
        top = np.argsort(-similarities)[:count]
        return [(float(similarities[i]), self.entries[self._rows[int(i)]]) for i in top]


class CacheEntries:
    """Thread-safe: the gRPC loop reads and fills, the HTTP thread purges and counts."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._routes: dict[str, OrderedDict[str, Entry]] = {}
        self._scopes: dict[str, ScopeIndex] = {}

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

    def has_scope(self, scope: str) -> bool:
        with self._lock:
            return scope in self._scopes

    def nearest(self, scope: str, vector: np.ndarray, count: int) -> list[tuple[float, Entry]]:
        """The scope's live entries closest to `vector` (the semantic candidates), closest
        first, with their cosines."""
        now = self._clock()
        with self._lock:
            index = self._scopes.get(scope)
            found = index.nearest(vector, count) if index is not None else []
        return [(similarity, entry) for similarity, entry in found if entry.expires > now]

    def put(self, entry: Entry, max_entries: int) -> None:
        with self._lock:
            entries = self._routes.setdefault(entry.route, OrderedDict())
            old = entries.get(entry.exact)
            if old is not None:
                self._drop(old)
            entries[entry.exact] = entry
            self._scopes.setdefault(entry.scope, ScopeIndex()).add(entry)
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
            scope.remove(entry.exact)
            if not scope.entries:
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
