"""Answer-quality signals per request, joined to the route, cohort and backend that answered.

Signals come three ways:
- POST /feedback (extproc.http_api) with Envoy's x-request-id, a score 0..1 and/or a
  flag (unsafe, refusal, wrong): from the client's application or an evaluation job;
- a response header (quality.score_header) from the backend or a judge in front of it;
- switchyard's own reading of the answer (quality.auto_flags): an empty answer, a
  refusal (quality.refusal_patterns), an answer cut by length.

The observing filter sees each response with its x-request-id (Envoy's route adds it
to the response); RecentRequests remembers, for quality.remember_s and at most
quality.remember_max ids, where that request went, so a later signal joins it. A signal
for an id not remembered is counted (switchyard_feedback{result="unknown_id"}) and
answered 404: nothing else changes. With envoy.observe_sample below 1, most stable responses
are never observed: feedback for an id outside the sample (extproc.response.sampling) is
answered 202 and counted as "unsampled", so a client posting feedback for every answer sees
no error; the score is not counted, as the response it judges is not in the A/B totals.
Each request holds one score (the first) and each flag once, whatever the sources.

Signals go two places: totals per route/cohort/backend for the report and /metrics,
and the analysis window's per-second Summary of the second the request was answered in
(extproc.rollout.window), which the fleet shares like the rest of the window.
"""

from __future__ import annotations

import json
import math
import re
import sys
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from extproc.config import Config
from extproc.errors import SwitchyardError
from extproc.response.reader import ResponseReader
from extproc.response.sampling import in_sample, sampling
from extproc.rollout.metrics import RolloutMetrics
from extproc.rollout.window import Summary

REFUSAL_SCAN_CHARS = 400
POSTED_FLAGS = ("unsafe", "refusal", "wrong")
FLAGS = (*POSTED_FLAGS, "empty", "truncated")
MAX_FEEDBACK_BYTES = 16_384
MAX_REQUEST_ID_CHARS = 200

SignalSink = Callable[[str, str, int, Callable[[Summary], None]], None]
"""(route, cohort, second, change): applies a signal to that second's analysis bucket."""


# -- flagging the answer ----------------------------------------------------------------


def detect_flags(
    response: ResponseReader, auto_flags: frozenset[str], refusals: list[re.Pattern[str]]
) -> list[str]:
    """What switchyard flags itself in one 2xx response."""
    flags = []
    answer = response.answer_head
    if answer is not None:
        blank = answer.complete and not answer.text.strip() and not answer.tool_calls
        if "empty" in auto_flags and blank:
            flags.append("empty")
        opening = answer.text[:REFUSAL_SCAN_CHARS].lower()
        if "refusal" in auto_flags and any(p.search(opening) for p in refusals):
            flags.append("refusal")
    if "truncated" in auto_flags and response.cut_by_length:
        flags.append("truncated")
    return flags


# -- joining signals to requests ----------------------------------------------------------


@dataclass(slots=True)
class Served:
    route: str
    cohort: str
    backend: str
    second: int
    """The store clock's second the response ended in: its analysis bucket."""
    scored: bool = False
    flags: tuple[str, ...] = ()
    """A tuple, not a set: most requests get no flag, and an empty set costs 216 bytes."""


class RecentRequests:
    """Request id -> where it went, for `remember_s` and at most `limit` ids (not thread-safe:
    Quality holds the lock)."""

    def __init__(self, remember_s: float, limit: int) -> None:
        self.remember_s, self.limit = remember_s, limit
        self._served: OrderedDict[str, Served] = OrderedDict()

    def remember(self, request_id: str, served: Served, now: float) -> None:
        self._served[request_id] = served
        self._served.move_to_end(request_id)
        self._forget(now)

    def get(self, request_id: str, now: float) -> Served | None:
        self._forget(now)
        return self._served.get(request_id)

    def _forget(self, now: float) -> None:
        oldest = int(now - self.remember_s)
        served = self._served
        while served and (len(served) > self.limit or next(iter(served.values())).second < oldest):
            served.popitem(last=False)

    def __len__(self) -> int:
        return len(self._served)


@dataclass
class QualityTotals:
    judged: int = 0
    """2xx answers read for automatic flags."""
    scored: int = 0
    score_sum: float = 0.0
    flags: dict[str, int] = field(default_factory=dict)


class FeedbackError(SwitchyardError, ValueError):
    """A POST /feedback body that cannot be used; the message says why."""


@dataclass(frozen=True)
class Feedback:
    request_id: str
    score: float | None
    flag: str | None


def parse_feedback(body: bytes) -> Feedback:
    try:
        data = json.loads(body)
    except ValueError:
        raise FeedbackError("expected a JSON object") from None
    if not isinstance(data, dict):
        raise FeedbackError("expected a JSON object")
    unknown = sorted(set(data) - {"request_id", "score", "flag"})
    if unknown:
        raise FeedbackError(f"unknown key(s) {unknown}; expected request_id, score, flag")
    request_id = data.get("request_id")
    if not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_REQUEST_ID_CHARS:
        raise FeedbackError(
            "request_id: expected the response's x-request-id, a string of 1 to "
            f"{MAX_REQUEST_ID_CHARS} characters"
        )
    score, flag = data.get("score"), data.get("flag")
    if score is None and flag is None:
        raise FeedbackError("expected a score, a flag, or both")
    if score is not None and (
        isinstance(score, bool)
        or not isinstance(score, int | float)
        or not 0 <= score <= 1
        or math.isnan(score)
    ):
        raise FeedbackError("score: expected a number from 0 to 1")
    if flag is not None and flag not in POSTED_FLAGS:
        raise FeedbackError(f"flag: expected one of {', '.join(POSTED_FLAGS)}")
    return Feedback(request_id, None if score is None else float(score), flag)


def parse_score(value: str) -> float | None:
    try:
        score = float(value)
    except ValueError:
        return None
    return score if 0 <= score <= 1 else None


class Quality:
    """This process's quality signals; thread-safe (the gRPC loop writes, the HTTP thread
    posts feedback and reads)."""

    def __init__(
        self,
        config: Config,
        metrics: RolloutMetrics,
        sink: SignalSink,
        clock: Callable[[], float],
        lookup: Callable[[str], Served | None] | None = None,
        claim: Callable[[str, list[str]], set[str]] | None = None,
    ) -> None:
        self._metrics = metrics
        self._sink = sink
        self._clock = clock
        self._lock = threading.Lock()
        self._recent = RecentRequests(config.quality.remember_s, config.quality.remember_max)
        self._totals: dict[tuple[str, str, str], QualityTotals] = {}
        self._unshared_ids: deque[tuple[str, Served]] | None = None
        self.lookup = lookup
        """In a fleet: where another replica's request went (extproc.store.redis_requests)."""
        self.claim = claim
        """In a fleet: of these feedback kinds for a request ("score", flag names), the ones
        no replica has counted yet; each replica's own record only knows its own posts."""
        self.configure(config)

    def configure(self, config: Config) -> None:
        """Adopts a (re)loaded config's signal settings."""
        cfg = config.quality
        self.score_header = cfg.score_header
        self._sample = config.envoy.observe_sample if sampling(config.envoy) else None
        self._auto_flags = frozenset(cfg.auto_flags)
        self._refusals = [re.compile(p) for p in cfg.refusal_patterns]
        with self._lock:
            self._recent.remember_s, self._recent.limit = cfg.remember_s, cfg.remember_max

    @property
    def remember_s(self) -> float:
        return self._recent.remember_s

    def share_ids(self) -> None:
        """From now on, keep the ids take_unshared_ids() hands to the fleet's store."""
        with self._lock:
            self._unshared_ids = deque(maxlen=self._recent.limit)

    def take_unshared_ids(self) -> list[tuple[str, Served]]:
        with self._lock:
            if not self._unshared_ids:
                return []
            taken = list(self._unshared_ids)
            self._unshared_ids.clear()
        return taken

    # -- from the observing filter -------------------------------------------------

    def on_response(
        self,
        request_id: str,
        route: str,
        cohort: str,
        backend: str,
        status: int,
        score_header: str | None,
        response: ResponseReader,
    ) -> None:
        """One observed response: remembers its id, applies the header score and the flags."""
        now = self._clock()
        # Interned: every remembered request shares the few names instead of holding copies.
        route, cohort, backend = sys.intern(route), sys.intern(cohort), sys.intern(backend)
        served = Served(route, cohort, backend, int(now))
        flags: list[str] = []
        judged = 200 <= status < 300
        if judged and self._auto_flags:
            flags = detect_flags(response, self._auto_flags, self._refusals)
        score = None
        if score_header is not None:
            score = parse_score(score_header)
            result = "accepted" if score is not None else "invalid"
            self._metrics.feedback.labels("header", result).inc()
        with self._lock:
            if request_id:
                self._recent.remember(request_id, served, now)
            totals = self._totals.setdefault((route, cohort, backend), QualityTotals())
            totals.judged += judged
        if score is not None:
            self._apply(served, score, None)
        for flag in flags:
            self._apply(served, None, flag)
        if request_id and self._unshared_ids is not None:
            with self._lock:
                self._unshared_ids.append((request_id, served))

    # -- POST /feedback ------------------------------------------------------------

    def feedback(self, body: bytes) -> tuple[int, dict[str, object]]:
        """(HTTP status, JSON answer) for one POST /feedback body."""
        try:
            feedback = parse_feedback(body)
        except FeedbackError as exc:
            self._metrics.feedback.labels("post", "invalid").inc()
            return 400, {"error": str(exc)}
        now = self._clock()
        with self._lock:
            served = self._recent.get(feedback.request_id, now)
        if served is None and self.lookup is not None:
            served = self.lookup(feedback.request_id)
            if served is not None:
                with self._lock:
                    self._recent.remember(feedback.request_id, served, now)
        sampled_out = self._sample is not None and not in_sample(feedback.request_id, self._sample)
        if served is None and sampled_out:
            self._metrics.feedback.labels("post", "unsampled").inc()
            return 202, {
                "request_id": feedback.request_id,
                "result": "unsampled",
                "detail": "not counted: this id is outside envoy.observe_sample's share "
                "of stable responses, which are not observed or compared",
            }
        if served is None:
            self._metrics.feedback.labels("post", "unknown_id").inc()
            return 404, {
                "error": "unknown request id: not answered through this switchyard (or "
                "its fleet), or longer ago than quality.remember_s",
                "request_id": feedback.request_id,
            }
        score, flag = feedback.score, feedback.flag
        if self.claim is not None:
            # The same feedback posted to two replicas is counted once: the fleet decides.
            with self._lock:
                kinds = [
                    *(["score"] if score is not None and not served.scored else []),
                    *([flag] if flag is not None and flag not in served.flags else []),
                ]
            fresh = self.claim(feedback.request_id, kinds) if kinds else set()
            score = score if "score" in fresh else None
            flag = flag if flag in fresh else None
        accepted = self._apply(served, score, flag)
        result = "accepted" if accepted else "duplicate"
        self._metrics.feedback.labels("post", result).inc()
        return 200, {
            "request_id": feedback.request_id,
            "route": served.route,
            "cohort": served.cohort,
            "result": result,
        }

    # -- both ----------------------------------------------------------------------

    def _apply(self, served: Served, score: float | None, flag: str | None) -> bool:
        """Adds what the request does not have yet; False when it already had all of it."""
        with self._lock:
            take_score = score is not None and not served.scored
            take_flag = flag is not None and flag not in served.flags
            if not take_score and not take_flag:
                return False
            key = (served.route, served.cohort, served.backend)
            totals = self._totals.setdefault(key, QualityTotals())
            if take_score:
                assert score is not None
                served.scored = True
                totals.scored += 1
                totals.score_sum += score
            if take_flag:
                assert flag is not None
                served.flags += (flag,)
                totals.flags[flag] = totals.flags.get(flag, 0) + 1

        def change(summary: Summary) -> None:
            if take_score:
                assert score is not None
                summary.add_score(score)
            if take_flag:
                assert flag is not None
                summary.add_flag(flag)

        self._sink(served.route, served.cohort, served.second, change)
        if score is not None and take_score:
            self._metrics.quality_score.labels(*key).observe(score)
        if take_flag:
            self._metrics.quality_flags.labels(*key, flag).inc()
        return True

    def snapshot(self) -> list[dict[str, object]]:
        with self._lock:
            items = sorted(
                (
                    (key, t.judged, t.scored, t.score_sum, dict(t.flags))
                    for key, t in self._totals.items()
                ),
                key=lambda item: item[0],
            )
        return [
            {
                "route": route,
                "cohort": cohort,
                "backend": backend,
                "judged": judged,
                "scored": scored,
                "score_mean": round(score_sum / scored, 4) if scored else None,
                "flags": flags,
            }
            for (route, cohort, backend), judged, scored, score_sum, flags in items
        ]
