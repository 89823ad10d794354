"""Runs the classifier off the event loop: batches what queues up, caches repeats.

onnxruntime releases the GIL, so one worker thread keeps the event loop free
while it runs; requests that arrive during a run form the next batch, which
costs little more than a single one.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from classifier.labels import Prediction

Conversation = tuple[str, ...]
CONTEXT_MESSAGES = 4
"""The last user messages given to the classifier: enough to keep a topic."""


class ConversationClassifier(Protocol):
    def classify_conversations(
        self, conversations: Sequence[Sequence[str]]
    ) -> list[Prediction]: ...


class BatchingClassifier:
    def __init__(
        self,
        classifier: ConversationClassifier,
        *,
        max_batch: int,
        cache_size: int,
        observe_latency: Callable[[float, int], None] = lambda seconds, batch: None,
    ) -> None:
        self.classifier = classifier
        self._max_batch = max_batch
        self._cache_size = cache_size
        self._cache: OrderedDict[Conversation, Prediction] = OrderedDict()
        self._queue: list[tuple[Conversation, asyncio.Future[Prediction]]] = []
        self._running = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="classify")
        self._observe_latency = observe_latency

    async def classify(self, user_messages: Sequence[str]) -> Prediction:
        conversation = tuple(user_messages[-CONTEXT_MESSAGES:])
        cached = self._cache.get(conversation)
        if cached is not None:
            self._cache.move_to_end(conversation)
            return cached
        future: asyncio.Future[Prediction] = asyncio.get_running_loop().create_future()
        self._queue.append((conversation, future))
        if not self._running:
            self._running = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                conversations = [conversation for conversation, _ in batch]
                started = time.perf_counter()
                try:
                    predictions = await loop.run_in_executor(
                        self._executor, self.classifier.classify_conversations, conversations
                    )
                except Exception as exc:  # handed to every waiter; the server decides
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                self._observe_latency(time.perf_counter() - started, len(batch))
                for (conversation, future), prediction in zip(batch, predictions, strict=True):
                    self._remember(conversation, prediction)
                    if not future.done():
                        future.set_result(prediction)
        finally:
            self._running = False

    def _remember(self, conversation: Conversation, prediction: Prediction) -> None:
        if self._cache_size <= 0:
            return
        self._cache[conversation] = prediction
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
