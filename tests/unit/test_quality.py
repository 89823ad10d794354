"""Answer-quality signals: reading answers, joining signals to requests, the quality checks."""

from __future__ import annotations

import http.client
import json
import random
import re

import pytest

from extproc.config import AnalysisConfig, Config, QualityAnalysisConfig, parse_config
from extproc.errors import ConfigError
from extproc.http_api import HttpApi
from extproc.metrics import Metrics
from extproc.response.reader import HEAD_BYTES, ResponseReader
from extproc.response.sampling import in_sample
from extproc.rollout.analysis import analyze
from extproc.rollout.canary import CanaryState
from extproc.rollout.metrics import RolloutMetrics
from extproc.rollout.outcome import Outcome
from extproc.rollout.quality import (
    MAX_FEEDBACK_BYTES,
    FeedbackError,
    Quality,
    RecentRequests,
    Served,
    detect_flags,
    parse_feedback,
)
from extproc.rollout.traffic import TrafficStats
from extproc.rollout.window import Summary
from extproc.tools.devstack import free_port

PATTERNS = Config().quality.refusal_patterns


def flags_of(body: bytes, complete: bool = True) -> list[str]:
    refusals = [re.compile(p) for p in PATTERNS]
    auto = frozenset({"empty", "refusal", "truncated"})
    response = ResponseReader.of(body)
    if not complete:  # more followed, beyond the head
        response.feed(b" " * HEAD_BYTES)
    return detect_flags(response, auto, refusals)


def completion(content: str | None, finish: str = "stop", **message: object) -> bytes:
    choice = {"message": {"role": "assistant", "content": content, **message}}
    return json.dumps({"choices": [{**choice, "finish_reason": finish}]}).encode()


def sse(*words: str, finish: str = "stop") -> bytes:
    events = [
        json.dumps({"choices": [{"delta": {"content": word}, "finish_reason": None}]})
        for word in words
    ]
    events.append(json.dumps({"choices": [{"delta": {}, "finish_reason": finish}]}))
    return b"".join(f"data: {e}\n\n".encode() for e in [*events, "[DONE]"])


@pytest.mark.parametrize(
    "text",
    [
        "I'm sorry, but I can't help with that.",
        "I am sorry, I cannot assist with this request.",
        "I can\u2019t help with that.",
        "I must decline to answer.",
        "Je suis désolé, mais je ne peux pas vous aider.",
        "Désolée, je ne peux pas répondre à cette question.",
        "Je ne peux pas vous aider avec cela.",
        "Je ne suis pas en mesure de répondre.",
    ],
)
def test_refusals_are_flagged_in_english_and_french(text: str) -> None:
    assert flags_of(completion(text)) == ["refusal"]
    assert flags_of(sse(*(word + " " for word in text.split(" ")))) == ["refusal"]


@pytest.mark.parametrize(
    "text",
    [
        "Paris is the capital of France.",
        "Sorry to hear that! Rest and fluids help; see a doctor if it lasts.",
        "You can't go wrong with pasta, and I can help you choose a sauce.",
        "Je peux vous aider : voici la recette.",
    ],
)
def test_ordinary_answers_are_not_flagged(text: str) -> None:
    assert flags_of(completion(text)) == []


def test_empty_and_truncated_answers() -> None:
    assert flags_of(completion("")) == ["empty"]
    assert flags_of(completion("  \n")) == ["empty"]
    assert flags_of(sse()) == ["empty"]
    tool_call = [{"id": "1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    assert flags_of(completion(None, tool_calls=tool_call)) == []  # a tool call is an answer
    assert flags_of(completion("A long story", finish="length")) == ["truncated"]
    assert flags_of(sse("A", "long", "story", finish="length")) == ["truncated"]
    # Only the start was kept: nothing is called empty without the whole answer.
    assert flags_of(sse()[:30], complete=False) == []
    assert flags_of(b'{"error": {"message": "bad"}}') == []


def test_a_long_answer_is_read_from_its_start() -> None:
    body = completion("I'm sorry, but I can't help with that. " + "x" * 20_000)
    answer = ResponseReader.of(body).answer_head
    assert answer is not None and answer.text.startswith("I'm sorry") and not answer.complete
    assert flags_of(body) == ["refusal"]


def test_recent_requests_are_forgotten_after_the_window_or_beyond_the_limit() -> None:
    recent = RecentRequests(remember_s=10, limit=3)
    for i in range(5):
        recent.remember(f"id{i}", Served("r", "canary", "b", second=100 + i), now=100 + i)
    assert len(recent) == 3 and recent.get("id1", 104) is None
    assert recent.get("id4", 110) is not None
    assert recent.get("id2", 113) is None  # answered at 102: older than 10 s at 113
    assert recent.get("id4", 113) is not None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "expected a JSON object"),
        (b"[1]", "expected a JSON object"),
        (b'{"request_id": "a"}', "expected a score, a flag, or both"),
        (b'{"request_id": "", "score": 1}', "request_id"),
        (b'{"request_id": 5, "score": 1}', "request_id"),
        (b'{"request_id": "a", "score": 1.5}', "score: expected a number from 0 to 1"),
        (b'{"request_id": "a", "score": true}', "score: expected a number from 0 to 1"),
        (b'{"request_id": "a", "score": "0.5"}', "score: expected a number from 0 to 1"),
        (b'{"request_id": "a", "flag": "rude"}', "flag: expected one of unsafe, refusal, wrong"),
        (b'{"request_id": "a", "score": 1, "user": "x"}', "unknown key(s) ['user']"),
    ],
)
def test_malformed_feedback_is_refused_with_the_reason(body: bytes, message: str) -> None:
    with pytest.raises(FeedbackError, match=re.escape(message)):
        parse_feedback(body)


def make_quality(
    routes: frozenset[str] = frozenset({"clinical"}), observe_sample: float = 1.0
) -> tuple[Quality, TrafficStats, RolloutMetrics, list[float]]:
    clock = [1000.0]
    metrics = RolloutMetrics()
    traffic = TrafficStats(metrics, clock=lambda: clock[0])
    traffic.analyse_routes(routes, keep_s=120)
    config = Config.model_validate({"envoy": {"observe_sample": observe_sample}})
    quality = Quality(config, metrics, traffic.record_signal, lambda: clock[0])
    return quality, traffic, metrics, clock


def test_feedback_outside_the_stable_sample_is_accepted_and_not_counted() -> None:
    quality, traffic, metrics, _ = make_quality(observe_sample=0.1)
    ids = [f"req-{i}" for i in range(200)]
    outside = next(i for i in ids if not in_sample(i, 0.1))
    inside = next(i for i in ids if in_sample(i, 0.1))
    status, answer = quality.feedback(json.dumps({"request_id": outside, "score": 0.2}).encode())
    assert (status, answer["result"]) == (202, "unsampled")
    # An id the sample should have shown, but nobody remembers, is still unknown.
    assert quality.feedback(json.dumps({"request_id": inside, "score": 0.2}).encode())[0] == 404
    assert traffic.window("clinical", "stable", 1000).scored == 0
    sample = metrics.registry.get_sample_value
    assert sample("switchyard_feedback_total", {"source": "post", "result": "unsampled"}) == 1
    assert sample("switchyard_feedback_total", {"source": "post", "result": "unknown_id"}) == 1


def test_signals_join_the_request_and_count_once_per_request() -> None:
    quality, traffic, metrics, clock = make_quality()
    refusal = completion("I'm sorry, but I can't help with that.")
    quality.on_response(
        "id-1", "clinical", "canary", "med-v2", 200, "0.25", ResponseReader.of(refusal)
    )
    quality.on_response("id-2", "clinical", "stable", "med-v1", 200, None, ResponseReader.of(b"{}"))
    clock[0] += 5
    assert quality.feedback(b'{"request_id": "id-2", "score": 0.9, "flag": "unsafe"}')[0] == 200
    # The header's score came first and the refusal was seen: nothing new.
    status, answer = quality.feedback(b'{"request_id": "id-1", "score": 1, "flag": "refusal"}')
    assert (status, answer["result"]) == (200, "duplicate")
    status, answer = quality.feedback(b'{"request_id": "nobody", "score": 1}')
    assert status == 404 and "unknown request id" in str(answer["error"])
    assert quality.feedback(b'{"request_id": "id-1"}')[0] == 400

    canary, stable = (
        traffic.window("clinical", "canary", 0),
        traffic.window("clinical", "stable", 0),
    )
    assert (canary.scored, canary.score_sum, canary.flags) == (1, 0.25, {"refusal": 1})
    assert (stable.scored, stable.score_sum, stable.flags) == (1, 0.9, {"unsafe": 1})
    rows = {r["cohort"]: r for r in quality.snapshot()}
    assert rows["canary"]["score_mean"] == 0.25 and rows["canary"]["judged"] == 1
    assert rows["stable"]["flags"] == {"unsafe": 1}
    sample = metrics.registry.get_sample_value
    assert sample("switchyard_feedback_total", {"source": "post", "result": "unknown_id"}) == 1
    assert sample("switchyard_feedback_total", {"source": "post", "result": "duplicate"}) == 1
    assert sample("switchyard_feedback_total", {"source": "post", "result": "invalid"}) == 1
    labels = {"route": "clinical", "cohort": "canary", "backend": "med-v2"}
    assert sample("switchyard_quality_flags_total", {**labels, "flag": "refusal"}) == 1
    assert sample("switchyard_quality_score_sum", labels) == 0.25


def test_late_feedback_is_unknown_and_signals_land_in_the_answers_second() -> None:
    quality, traffic, _, clock = make_quality()
    quality.on_response("old", "clinical", "canary", "b", 200, None, ResponseReader.of(b""))
    clock[0] += 60
    assert quality.feedback(b'{"request_id": "old", "flag": "wrong"}')[0] == 200
    assert traffic.window("clinical", "canary", 1000).flags == {"wrong": 1}
    assert traffic.window("clinical", "canary", 1001).flags == {}  # filed at second 1000
    clock[0] += 900
    assert quality.feedback(b'{"request_id": "old", "flag": "unsafe"}')[0] == 404


def test_quality_counts_survive_the_fleet_store_encoding() -> None:
    summary = Summary()
    summary.add(False, 0.1)
    summary.add_score(0.5)
    summary.add_score(1.0)
    summary.add_flag("refusal")
    raw = {key: str(value) for key, value in summary.fields().items()}
    decoded = Summary.from_fields(raw)
    assert (decoded.scored, decoded.score_sum, decoded.flags) == (2, 1.5, {"refusal": 1})
    decoded.merge(summary)
    assert decoded.scored == 4 and decoded.flags == {"refusal": 2}
    assert decoded.score_mean == pytest.approx(0.75)


def cohort(n: int, refusal_rate: float, scores: list[float], rng: random.Random) -> Summary:
    summary = Summary()
    for _ in range(n):
        summary.add(False, 0.1)
        if rng.random() < refusal_rate:
            summary.add_flag("refusal")
    for score in scores:
        summary.add_score(score)
    return summary


def test_a_refusing_canary_is_degraded_on_the_refusal_rate_alone() -> None:
    rng = random.Random(1)
    cfg = AnalysisConfig()
    verdict = analyze(cohort(60, 0.5, [], rng), cohort(600, 0.0, [], rng), cfg)
    assert verdict.status is Outcome.DEGRADED and verdict.metric == "quality.refusal"
    assert "refusal rate" in verdict.describe()


def test_low_scores_degrade_and_too_few_scores_are_not_enough_data() -> None:
    rng = random.Random(2)
    cfg = AnalysisConfig()
    low = [rng.uniform(0.1, 0.4) for _ in range(40)]
    high = [rng.uniform(0.7, 1.0) for _ in range(40)]
    verdict = analyze(cohort(100, 0, low, rng), cohort(100, 0, high, rng), cfg)
    assert verdict.status is Outcome.DEGRADED and verdict.metric == "quality.score"
    verdict = analyze(cohort(100, 0, low[:10], rng), cohort(100, 0, high, rng), cfg)
    assert verdict.status is Outcome.HEALTHY
    score = next(c for c in verdict.quality if c.name == "score")
    assert score.status is Outcome.NOT_ENOUGH_DATA and "not enough data" in verdict.describe()
    # A route that checks only refusals ignores the scores.
    only_refusals = QualityAnalysisConfig(checks=["refusal"])
    verdict = analyze(cohort(100, 0, low, rng), cohort(100, 0, high, rng), cfg, only_refusals)
    assert verdict.status is Outcome.HEALTHY


def test_a_healthy_verdict_names_only_the_checks_that_saw_signals() -> None:
    rng = random.Random(4)
    verdict = analyze(cohort(50, 0, [], rng), cohort(50, 0, [], rng), AnalysisConfig())
    assert verdict.describe() == "healthy (n=50 canary / 50 stable)"
    verdict = analyze(cohort(50, 0.04, [0.5], rng), cohort(50, 0.02, [], rng), AnalysisConfig())
    text = verdict.describe()
    assert "score: not enough data, mean score 0.500 vs 0.000 (1/0 scored)" in text
    assert "refusal rate" in text and "unsafe" not in text


def test_the_same_scores_on_both_sides_are_healthy() -> None:
    rng = random.Random(3)
    scores = [rng.uniform(0.4, 0.9) for _ in range(200)]
    verdict = analyze(
        cohort(200, 0.05, scores, rng), cohort(200, 0.05, scores, rng), AnalysisConfig()
    )
    assert verdict.status is Outcome.HEALTHY
    assert all(c.status is Outcome.HEALTHY for c in verdict.quality)


def test_quality_config_errors_name_the_key() -> None:
    base = {
        "backends": [{"name": "a", "address": "127.0.0.1:1"}],
        "routes": [{"name": "r", "backends": [{"backend": "a"}]}],
        "default_route": "r",
    }
    with pytest.raises(ConfigError, match=r"quality\.refusal_patterns"):
        parse_config({**base, "quality": {"refusal_patterns": ["(unclosed"]}}, "f.yaml")
    with pytest.raises(ConfigError, match=r"refusal_patterns.*expected lower case"):
        parse_config({**base, "quality": {"refusal_patterns": ["I refuse"]}}, "f.yaml")
    parse_config({**base, "quality": {"refusal_patterns": [r"^\W*nope\b"]}}, "f.yaml")
    bad_route = {**base["routes"][0], "analysis": {"quality": {"checks": ["politeness"]}}}
    with pytest.raises(ConfigError, match=r'routes "r"\.analysis\.quality\.checks'):
        parse_config({**base, "routes": [bad_route]}, "f.yaml")


def test_feedback_over_http_needs_authorization_and_a_bounded_body() -> None:
    quality, *_ = make_quality()
    quality.on_response("id-1", "clinical", "canary", "b", 200, None, ResponseReader.of(b""))
    port = free_port()
    api = HttpApi(
        f"127.0.0.1:{port}",
        Metrics(),
        lambda route, action: CanaryState("b", *([None] * 3)),  # type: ignore[arg-type]
        lambda: {},
        lambda: {},
        lambda: True,
        "token",
        quality.feedback,
    )
    api.start()

    def post(body: bytes, token: str | None = "token") -> int:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        headers = {"authorization": f"Bearer {token}"} if token else {}
        try:
            conn.request("POST", "/feedback", body=body, headers=headers)
            return conn.getresponse().status
        finally:
            conn.close()

    try:
        good = b'{"request_id": "id-1", "score": 0.5}'
        assert post(good, token=None) == 401
        assert post(b"x" * (MAX_FEEDBACK_BYTES + 1)) == 413
        assert post(b"{") == 400
        assert post(good) == 200
    finally:
        api.stop()
