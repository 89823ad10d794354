"""The response cache as the request path and the observer use it.

Reading (routing filter, extproc.request.processor): after the routing decision,
`lookup` answers hit (with the answer to serve), miss or bypass. An exact repeat
is a dictionary read; a semantic candidate costs one embedding of the last user
message, and only when the request's scope already holds entries.

Filling (observing filter, extproc.response.observe): a miss or bypass that may be
filled leaves a pending fill under a random token; the routing filter sends the
token as a request header that Envoy's route copies into the response headers,
where the observer finds it and hands the finished response to `offer`. Both
filters reach this same process (Envoy's two clusters point at one processor);
a token this process does not know (another replica behind a shared Service, or
one expired) fills nothing.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from prometheus_client import CollectorRegistry

from extproc import headers as h
from extproc.cache.answer import CachedAnswer, cacheable, render_json, render_sse
from extproc.cache.entries import CacheEntries, Entry
from extproc.cache.guard import disagreement, same_words
from extproc.cache.key import RequestKey, partition_digest, request_key
from extproc.cache.metrics import CacheMetrics
from extproc.cache.wording import canonical
from extproc.config import CacheConfig, Config
from extproc.config.issues import did_you_mean, unknown
from extproc.errors import PurgeRefused
from extproc.request.cache_lookup import BYPASS, HIT, MISS, Lookup
from extproc.request.chat import ChatRequest
from extproc.response.cost import cost, price_of
from extproc.response.reader import ResponseReader, Usage

log = logging.getLogger("switchyard.cache")

PENDING_KEPT = 10_000
"""Fills waiting for their response; the oldest are forgotten first, and any older than
the upstream timeout (its response will never be observed)."""
SEMANTIC_CANDIDATES = 5
"""The closest entries above min_similarity that the guard is asked about, best first."""
TYPO_MIN_SIMILARITY = 0.6
"""Below min_similarity, a candidate with the same content words up to typos
(guard.same_words) may still be a hit down to this cosine: encoders place "How do I
rest my pasword?" at 0.68 of "How do I reset my password?"."""


class Embedder(Protocol):
    def encode(self, texts: list[str]) -> np.ndarray: ...


class Replication(Protocol):
    """Carries this replica's fills and purges to the rest of the fleet
    (extproc.cache.shared with `state.store: redis`)."""

    async def publish(self, entry: Entry) -> bool:
        """False when the fill could not be shared."""
        ...

    async def purge(self, route: str | None, digests: list[str] | None) -> int: ...


@dataclass
class PendingFill:
    key: RequestKey
    route: str
    settings: CacheConfig
    vector: np.ndarray | None
    created: float = field(default_factory=time.monotonic)

    @property
    def max_answer_bytes(self) -> int:
        return self.settings.max_answer_bytes


def _no_cache(headers: Mapping[str, str]) -> tuple[bool, bool]:
    """(skip the read, skip the fill) from the client's cache-control."""
    directives = {d.strip().lower() for d in headers.get("cache-control", "").split(",")}
    no_store = "no-store" in directives
    return no_store or "no-cache" in directives, no_store


class ResponseCache:
    def __init__(
        self,
        registry: CollectorRegistry,
        clock: Callable[[], float] = time.time,
        replication: Replication | None = None,
    ) -> None:
        self.store = CacheEntries(clock)
        self._replication = replication
        self._clock = clock
        self._config: Config | None = None
        self._embedder: Embedder | None = None
        self._known_words: frozenset[str] = frozenset()
        """Words the encoder's vocabulary spells: two of them are never one word mistyped."""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cache-embed")
        self._pending: OrderedDict[str, PendingFill] = OrderedDict()
        self._pending_max_age_s = float("inf")  # until configure()
        self._tasks: set[asyncio.Task[None]] = set()
        self.metrics = CacheMetrics(registry)
        self._totals: dict[str, dict[str, float]] = {}

    # -- configuration -----------------------------------------------------------------

    def configure(self, config: Config) -> None:
        """Adopts a (re)loaded config; loads the encoder when a route matches by meaning.
        Raises when the encoder cannot load, so a reload that needs it is refused."""
        semantic = any(r.cache.enabled and r.cache.min_similarity < 1 for r in config.routes)
        if semantic and self._embedder is None:
            self._embedder = load_embedder(config)
            tokenizer = getattr(self._embedder, "tokenizer", None)
            self._known_words = tokenizer.words() if tokenizer is not None else frozenset()
        self._config = config
        self._pending_max_age_s = config.envoy.upstream_timeout_s + 10

    def settings(self, route: str) -> CacheConfig | None:
        config = self._config
        if config is None:
            return None
        for candidate in config.routes:
            if candidate.name == route:
                return candidate.cache if candidate.cache.enabled else None
        return None

    # -- reading -----------------------------------------------------------------------

    async def lookup(
        self,
        chat: ChatRequest,
        headers: Mapping[str, str],
        *,
        route: str,
        backend: str,
        cohort: str,
    ) -> Lookup | None:
        """None for a route without a cache."""
        settings = self.settings(route)
        if settings is None:
            return None
        if cohort == h.CANARY:
            # The canary's answers are what the A/B comparison is about.
            return self._count(route, Lookup(BYPASS))
        key = request_key(
            chat, headers, route=route, backend=backend, partition_by=settings.partition_by
        )
        if key is None:
            return self._count(route, Lookup(BYPASS))
        skip_read, skip_fill = _no_cache(headers)
        vector: np.ndarray | None = None
        if not skip_read:
            entry = self.store.get(route, key.exact)
            if entry is None and settings.min_similarity < 1 and self.store.has_scope(key.scope):
                vector = await self._embed(key.question)
                if vector is not None:
                    entry = self._closest(route, key, vector, settings.min_similarity)
            if entry is not None:
                return self._hit(route, backend, entry, chat.stream)
        token = None
        if not skip_fill:
            token = self._remember(PendingFill(key, route, settings, vector))
        return self._count(route, Lookup(BYPASS if skip_read else MISS, fill_token=token))

    def _closest(
        self, route: str, key: RequestKey, vector: np.ndarray, min_similarity: float
    ) -> Entry | None:
        """The closest entry of the scope that is close enough and that the guard passes."""
        for similarity, entry in self.store.nearest(key.scope, vector, SEMANTIC_CANDIDATES):
            if similarity < TYPO_MIN_SIMILARITY:
                break
            if similarity < min_similarity and not same_words(
                entry.question, key.question, self._known_words
            ):
                continue
            reason = disagreement(entry.question, key.question)
            if reason is None:
                self.store.touch(route, entry.exact)
                return entry
            self.metrics.refused.labels(route, reason).inc()
        return None

    def _hit(self, route: str, backend: str, entry: Entry, stream: bool) -> Lookup:
        answer = entry.answer
        self.metrics.saved_tokens.labels(route, "prompt").inc(answer.prompt_tokens)
        self.metrics.saved_tokens.labels(route, "completion").inc(answer.completion_tokens)
        usage = Usage(answer.prompt_tokens, answer.completion_tokens)
        saved = cost(price_of(self._config, backend), usage)
        self.metrics.saved_cost.labels(route).inc(saved)
        totals = self._route_totals(route)
        totals["saved_prompt_tokens"] += answer.prompt_tokens
        totals["saved_completion_tokens"] += answer.completion_tokens
        totals["saved_cost"] += saved
        if stream:
            return self._count(route, Lookup(HIT, render_sse(answer), "text/event-stream"))
        return self._count(route, Lookup(HIT, render_json(answer), "application/json"))

    def _route_totals(self, route: str) -> dict[str, float]:
        return self._totals.setdefault(
            route,
            dict.fromkeys(
                [HIT, MISS, BYPASS, "saved_prompt_tokens", "saved_completion_tokens", "saved_cost"],
                0.0,
            ),
        )

    def _count(self, route: str, lookup: Lookup) -> Lookup:
        self.metrics.requests.labels(route, lookup.result).inc()
        self._route_totals(route)[lookup.result] += 1
        return lookup

    async def _embed(self, question: str) -> np.ndarray | None:
        """The embedding of the question as the guard reads it (wording.canonical):
        greetings, politeness, number words and spellings do not move it."""
        embedder = self._embedder
        if embedder is None:
            return None
        loop = asyncio.get_running_loop()
        text = canonical(question)
        vectors = await loop.run_in_executor(self._executor, embedder.encode, [text])
        return np.asarray(vectors[0], dtype=np.float32)

    # -- filling -----------------------------------------------------------------------

    def _remember(self, pending: PendingFill) -> str:
        token = secrets.token_hex(12)
        self._pending[token] = pending
        while len(self._pending) > PENDING_KEPT:
            self._pending.popitem(last=False)
        stale = pending.created - self._pending_max_age_s
        while next(iter(self._pending.values())).created < stale:
            self._pending.popitem(last=False)
        return token

    def take_pending(self, token: str) -> PendingFill | None:
        pending = self._pending.pop(token, None)
        if pending is None:
            self.metrics.fills.labels("", "unknown_token").inc()
        return pending

    def offer(self, pending: PendingFill, status: int, response: ResponseReader) -> None:
        """A finished response for a pending fill (from the observer, on the event loop)."""
        if response.size > pending.max_answer_bytes:
            self.metrics.fills.labels(pending.route, "too_large").inc()
            return
        answer = cacheable(status, response.completion)
        if answer is None:
            self.metrics.fills.labels(pending.route, "not_complete").inc()
            return
        task = asyncio.get_running_loop().create_task(self._fill(pending, answer))
        self._tasks.add(task)  # the loop keeps tasks only weakly
        task.add_done_callback(self._tasks.discard)

    async def _fill(self, pending: PendingFill, answer: CachedAnswer) -> None:
        settings = pending.settings
        vector = pending.vector
        if vector is None and settings.min_similarity < 1:
            vector = await self._embed(pending.key.question)
        entry = Entry(
            exact=pending.key.exact,
            scope=pending.key.scope,
            route=pending.route,
            partition=pending.key.partition,
            question=pending.key.question,
            answer=answer,
            expires=self._clock() + settings.ttl_s,
            vector=vector,
        )
        self.store.put(entry, settings.max_entries)
        self.metrics.fills.labels(pending.route, "stored").inc()
        self.metrics.entries.labels(pending.route).set(self.store.counts().get(pending.route, 0))
        if self._replication is not None and not await self._replication.publish(entry):
            self.metrics.fills.labels(pending.route, "shared_store_error").inc()

    def adopt(self, entry: Entry) -> None:
        """An entry another replica filled (or Redis held at start)."""
        settings = self.settings(entry.route)
        if settings is None or entry.expires <= self._clock():
            return
        self.store.put(entry, settings.max_entries)
        self.metrics.entries.labels(entry.route).set(self.store.counts().get(entry.route, 0))

    # -- operators ---------------------------------------------------------------------

    def partition_digests(self, partition: str) -> list[str]:
        """`--partition` as "source=value" or a bare value (then: under every source
        any route partitions by)."""
        source, sep, value = partition.partition("=")
        if sep and (source in ("user",) or source.startswith(("header:", "cookie:"))):
            return [partition_digest(source, value)]
        config = self._config
        sources = {s for r in (config.routes if config else []) for s in r.cache.partition_by}
        return [partition_digest(source, partition) for source in sorted(sources)]

    def purge_local(self, route: str | None, digests: list[str] | None) -> int:
        removed = self.store.purge(route, digests)
        for name, count in self.store.counts().items():
            self.metrics.entries.labels(name).set(count)
        if route is not None and route not in self.store.counts():
            self.metrics.entries.labels(route).set(0)
        return removed

    def check_purge(self, route: str | None, partition: str | None) -> None:
        """Raises PurgeRefused for a route the config does not have, or a `source=value`
        partition whose source no route partitions by."""
        routes = self._config.routes if self._config else []
        names = [r.name for r in routes]
        if route is not None and route not in names:
            raise PurgeRefused(unknown("route", route, names))
        sources = sorted({s for r in routes for s in r.cache.partition_by if r.cache.enabled})
        source, sep, _ = (partition or "").partition("=")
        if sep and source not in sources:
            raise PurgeRefused(
                f"partition {partition!r}: {source!r} is not a partition source"
                f"{did_you_mean(source, sources)}; expected SOURCE=VALUE or a bare value"
            )

    async def purge(self, route: str | None, partition: str | None) -> int:
        self.check_purge(route, partition)
        digests = self.partition_digests(partition) if partition is not None else None
        removed = self.purge_local(route, digests)
        if self._replication is not None:
            removed = max(removed, await self._replication.purge(route, digests))
        return removed

    def snapshot(self) -> list[dict[str, object]]:
        counts = self.store.counts()
        rows: list[dict[str, object]] = []
        for route, totals in sorted(self._totals.items()):
            requests = totals[HIT] + totals[MISS] + totals[BYPASS]
            looked_up = totals[HIT] + totals[MISS]
            rows.append(
                {
                    "route": route,
                    "requests": int(requests),
                    "hits": int(totals[HIT]),
                    "misses": int(totals[MISS]),
                    "bypasses": int(totals[BYPASS]),
                    # Of the requests the cache could serve (bypasses never can).
                    "hit_rate": round(totals[HIT] / looked_up, 4) if looked_up else 0.0,
                    "entries": counts.get(route, 0),
                    "saved_prompt_tokens": int(totals["saved_prompt_tokens"]),
                    "saved_completion_tokens": int(totals["saved_completion_tokens"]),
                    "saved_cost": round(totals["saved_cost"], 8),
                }
            )
        return rows


def load_embedder(config: Config) -> Embedder:
    """The sentence encoder the classifier uses (shared with it, loaded once per process);
    the multilingual one when the model has both."""
    from classifier.labels import USE_SUBDIR, shared_encoder

    spec = config.classifier
    directory = spec.model / USE_SUBDIR if "use" in spec.encoder else spec.model
    return shared_encoder(
        directory, max_tokens=spec.max_tokens, threads=config.server.classify_threads
    )
