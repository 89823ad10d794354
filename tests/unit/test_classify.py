"""The batching classifier wrapper, with a fake (slow) classifier."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from classifier.labels import Prediction
from extproc.request.classify import PRESSURE_CHARS, BatchingClassifier


class SlowClassifier:
    def __init__(self, seconds_per_item: float) -> None:
        self.seconds_per_item = seconds_per_item
        self.batches: list[list[tuple[str, ...]]] = []

    def classify_conversations(self, conversations: Sequence[Sequence[str]]) -> list[Prediction]:
        self.batches.append([tuple(c) for c in conversations])
        time.sleep(self.seconds_per_item * len(conversations))
        return [Prediction(f"label-{len(c[-1])}", 0.9, None, 0.0) for c in conversations]


def test_queued_requests_are_batched_and_repeats_hit_the_cache() -> None:
    fake = SlowClassifier(0.002)
    batching = BatchingClassifier(fake, max_batch=8, cache_size=100, max_wait_s=5)

    async def run() -> list[Prediction | None]:
        return await asyncio.gather(*(batching.classify([f"text {i}"]) for i in range(10)))

    results = asyncio.run(run())
    assert all(r is not None for r in results)
    assert len(fake.batches) < 10  # requests that queued meanwhile shared a batch
    asyncio.run(batching.classify(["text 3"]))
    assert sum(len(b) for b in fake.batches) == 10  # the repeat came from the cache


def test_overload_truncates_then_sheds_and_never_waits_past_the_budget() -> None:
    fake = SlowClassifier(0.03)
    degraded: list[tuple[str, int]] = []
    batching = BatchingClassifier(
        fake,
        max_batch=16,
        cache_size=0,
        # Room for a busy machine to schedule the first batch before anybody is late.
        max_wait_s=0.3,
        observe_degraded=lambda mode, n: degraded.append((mode, n)),
    )
    long_text = "word " * 200

    async def one(i: int) -> tuple[Prediction | None, float]:
        started = time.perf_counter()
        result = await batching.classify([f"{i} {long_text}"])
        return result, time.perf_counter() - started

    async def run() -> list[tuple[Prediction | None, float]]:
        return await asyncio.gather(*(one(i) for i in range(60)))

    results = asyncio.run(run())
    shed = [r for r, _ in results if r is None]
    assert shed, "an overloaded classifier must shed"
    assert {mode for mode, _ in degraded} == {"truncated", "shed"}
    truncated = [c for batch in fake.batches for c in batch if len(c[-1]) <= PRESSURE_CHARS]
    assert truncated
    # Nobody waits long past the budget (the first batch, sized on a 6x too low estimate of
    # the time per item, takes 0.48 s); without shedding the last would wait 1.8 s.
    assert max(waited for _, waited in results) < 1.0


class SecondGuessingClassifier:
    """Says it took a second opinion on conversations whose last message ends with '?'."""

    def classify_conversations(self, conversations: Sequence[Sequence[str]]) -> list[Prediction]:
        return [
            Prediction("label", 0.9, None, 0.0, second_opinion=c[-1].endswith("?"))
            for c in conversations
        ]


def test_second_opinions_are_counted_once_per_classification() -> None:
    counted: list[int] = []
    batching = BatchingClassifier(
        SecondGuessingClassifier(),
        max_batch=8,
        cache_size=100,
        max_wait_s=5,
        observe_second_opinions=counted.append,
    )

    async def run() -> None:
        await asyncio.gather(*(batching.classify([f"text {i}?"]) for i in range(3)))
        await batching.classify(["plain text"])
        await batching.classify(["text 1?"])  # from the cache: no inference, nothing counted

    asyncio.run(run())
    assert sum(counted) == 3
