"""Runs the classifier off the event loop: batches what queues up, caches repeats, sheds load.

onnxruntime releases the GIL, so one worker thread keeps the event loop free
while it runs; requests that arrive during a run form the next batch.

Under overload the queue must not outgrow Envoy's message timeout, or Envoy
fails the request open without switchyard having a say. Two steps, both
counted in switchyard_classifier_degraded_total:

- when the queue would wait more than half of `max_wait_s`, conversations are
  classified on their first PRESSURE_CHARS characters per message (several
  times cheaper on long prompts; not cached);
- a conversation that has already waited `max_wait_s` is not classified at all
  (`None`: routed by its other rules, else to the default route).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from classifier.labels import Prediction

Conversation = tuple[str, ...]
CONTEXT_MESSAGES = 4
"""The last user messages given to the classifier: enough to keep a topic."""
PRESSURE_CHARS = 200
"""Per message under pressure: roughly 40 tokens, the start of the prompt."""


class ConversationClassifier(Protocol):
    def classify_conversations(
        self, conversations: Sequence[Sequence[str]]
    ) -> list[Prediction]: ...


@dataclass
class _Waiting:
    conversation: Conversation
    future: asyncio.Future[Prediction | None]
    since: float


class BatchingClassifier:
    def __init__(
        self,
        classifier: ConversationClassifier,
        *,
        max_batch: int,
        cache_size: int,
        max_wait_s: float,
        observe_latency: Callable[[float, int], None] = lambda seconds, batch: None,
        observe_degraded: Callable[[str, int], None] = lambda mode, count: None,
        observe_second_opinions: Callable[[int], None] = lambda count: None,
    ) -> None:
        self.classifier = classifier
        self._max_batch = max_batch
        self._cache_size = cache_size
        self._max_wait_s = max_wait_s
        self._cache: OrderedDict[Conversation, Prediction] = OrderedDict()
        self._queue: list[_Waiting] = []
        self._running = False
        self._drainer: asyncio.Task[None] | None = None
        self._seconds_per_item = 0.005  # learnt from every batch (moving average)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="classify")
        self._observe_latency = observe_latency
        self._observe_degraded = observe_degraded
        self._observe_second_opinions = observe_second_opinions

    async def classify(self, user_messages: Sequence[str]) -> Prediction | None:
        """The conversation's prediction, or None when the classifier is too far behind."""
        conversation = tuple(user_messages[-CONTEXT_MESSAGES:])
        cached = self._cache.get(conversation)
        if cached is not None:
            self._cache.move_to_end(conversation)
            return cached
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Prediction | None] = loop.create_future()
        self._queue.append(_Waiting(conversation, future, time.perf_counter()))
        if not self._running:
            self._running = True
            # Kept: the event loop holds tasks only weakly.
            self._drainer = loop.create_task(self._drain())
        return await future

    def _shed_late(self) -> None:
        now = time.perf_counter()
        late = [w for w in self._queue if now - w.since >= self._max_wait_s]
        if not late:
            return
        self._queue = [w for w in self._queue if now - w.since < self._max_wait_s]
        for waiting in late:
            if not waiting.future.done():
                waiting.future.set_result(None)
        self._observe_degraded("shed", len(late))

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                self._shed_late()
                if not self._queue:
                    break
                # A batch never takes longer than the time a request may wait.
                fits = max(1, int(self._max_wait_s / 2 / self._seconds_per_item))
                size = min(self._max_batch, fits)
                batch, self._queue = self._queue[:size], self._queue[size:]
                pressure = len(self._queue) * self._seconds_per_item > self._max_wait_s / 2
                conversations = [
                    tuple(m[:PRESSURE_CHARS] for m in w.conversation)
                    if pressure
                    else w.conversation
                    for w in batch
                ]
                if pressure:
                    self._observe_degraded("truncated", len(batch))
                started = time.perf_counter()
                try:
                    predictions = await loop.run_in_executor(
                        self._executor, self.classifier.classify_conversations, conversations
                    )
                except Exception as exc:  # handed to every waiter; the server decides
                    for waiting in batch:
                        if not waiting.future.done():
                            waiting.future.set_exception(exc)
                    continue
                elapsed = time.perf_counter() - started
                self._seconds_per_item = 0.8 * self._seconds_per_item + 0.2 * elapsed / len(batch)
                self._observe_latency(elapsed, len(batch))
                second_opinions = sum(p.second_opinion for p in predictions)
                if second_opinions:
                    self._observe_second_opinions(second_opinions)
                for waiting, prediction in zip(batch, predictions, strict=True):
                    if not pressure:
                        self._remember(waiting.conversation, prediction)
                    if not waiting.future.done():
                        waiting.future.set_result(prediction)
        finally:
            self._running = False

    def _remember(self, conversation: Conversation, prediction: Prediction) -> None:
        if self._cache_size <= 0:
            return
        self._cache[conversation] = prediction
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
