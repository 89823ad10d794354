from __future__ import annotations

import json

from extproc.rollout.metrics import RolloutMetrics
from extproc.rollout.traffic import TrafficStats


def test_only_canary_routes_keep_an_analysis_window() -> None:
    clock = [0.0]
    traffic = TrafficStats(RolloutMetrics(), clock=lambda: clock[0])
    traffic.analyse_routes(frozenset({"clinical"}), keep_s=1000)
    for i in range(100):
        clock[0] = float(i)
        traffic.record("clinical", "canary", "b", 200, 0.01, 0.005, (1, 1), 0.0)
        traffic.record("general", "stable", "c", 500, 0.01, None, None, 0.0)
    assert traffic.window("clinical", "canary", 89.5).requests == 10
    assert traffic.window("general", "stable", 0).requests == 0  # no window kept: no canary
    rows = {(r["route"], r["cohort"]): r for r in traffic.snapshot()}
    assert rows[("general", "stable")]["errors"] == 100  # totals are kept for every route
    assert rows[("clinical", "canary")]["prompt_tokens"] == 100
    traffic.analyse_routes(frozenset(), keep_s=1000)
    assert traffic.window("clinical", "canary", 0).requests == 0


def test_old_buckets_are_dropped_and_unshared_ones_handed_over_once() -> None:
    clock = [0.0]
    traffic = TrafficStats(RolloutMetrics(), clock=lambda: clock[0])
    traffic.analyse_routes(frozenset({"r"}), keep_s=10)
    traffic.share()
    for i in range(30):
        clock[0] = i + 0.5
        traffic.record("r", "canary", "b", 503 if i % 2 else 200, 0.02, None, None, 0.0)
    assert traffic.window("r", "canary", 0).requests == 11  # seconds 19..29 kept
    unshared = traffic.take_unshared()
    assert sum(s.requests for s in unshared.values()) == 30
    assert sum(s.errors for s in unshared.values()) == 15
    assert traffic.take_unshared() == {}


def test_time_to_first_byte_is_a_histogram_when_envoy_reports_it() -> None:
    metrics = RolloutMetrics()
    traffic = TrafficStats(metrics)
    traffic.record("clinical", "canary", "b", 200, 0.3, 0.02, None, 0.0)
    traffic.record("clinical", "canary", "b", 200, 0.3, None, None, 0.0)  # no header: not counted
    labels = {"route": "clinical", "cohort": "canary", "backend": "b"}
    registry = metrics.registry
    assert registry.get_sample_value("switchyard_upstream_ttfb_seconds_count", labels) == 1
    assert registry.get_sample_value("switchyard_upstream_ttfb_seconds_sum", labels) == 0.02
    assert registry.get_sample_value("switchyard_upstream_latency_seconds_count", labels) == 2


def _observe(traffic: TrafficStats, headers: dict[str, str]) -> None:
    from extproc.config import parse_config
    from extproc.response.observe import ObserveStream
    from proto import core_pb2, ext_proc_pb2

    config = parse_config(
        {
            "backends": [
                {"name": "v1", "address": "127.0.0.1:1"},
                {"name": "v2", "address": "127.0.0.1:2"},
                {"name": "spare", "address": "127.0.0.1:3"},
            ],
            "routes": [
                {
                    "name": "chat",
                    "backends": [{"backend": "v1"}],
                    "canary": {"backend": "v2", "percent": 10},
                    "fallbacks": [{"backend": "spare"}],
                }
            ],
            "default_route": "chat",
            "envoy": {"observe_sample": 1},  # exact totals: every stable response counts
        },
        "t.yaml",
    )
    header_map = core_pb2.HeaderMap(
        headers=[core_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in headers.items()]
    )
    stream = ObserveStream(config, traffic)
    stream.on_message(
        ext_proc_pb2.ProcessingRequest(
            response_headers=ext_proc_pb2.HttpHeaders(headers=header_map), observability_mode=True
        )
    )
    stream.on_message(
        ext_proc_pb2.ProcessingRequest(
            response_body=ext_proc_pb2.HttpBody(body=b"{}", end_of_stream=True),
            observability_mode=True,
        )
    )


def test_a_retried_canary_counts_as_the_canarys_failure_and_its_answer_apart() -> None:
    traffic = TrafficStats(RolloutMetrics())
    traffic.analyse_routes(frozenset({"chat"}), keep_s=1000)
    routed = {":status": "200", "x-switchyard-route": "chat"}
    _observe(traffic, {**routed, "x-switchyard-cohort": "canary", "x-switchyard-backend": "v2"})
    retried = {**routed, "x-switchyard-cohort": "canary", "x-envoy-attempt-count": "2"}
    _observe(traffic, {**retried, "x-switchyard-backend": "v1"})
    fallback = {**routed, "x-switchyard-cohort": "stable", "x-envoy-attempt-count": "2"}
    _observe(traffic, {**fallback, "x-switchyard-backend": "spare"})
    rows = {(r["cohort"], r["backend"]): r for r in traffic.snapshot()}
    assert (rows[("canary", "v2")]["requests"], rows[("canary", "v2")]["errors"]) == (2, 1)
    assert (rows[("retried", "v1")]["requests"], rows[("retried", "v1")]["errors"]) == (1, 0)
    assert rows[("fallback", "spare")]["requests"] == 1
    # The analysis sees the canary's two answers, one failed; neither stand-in answer.
    canary = traffic.window("chat", "canary", 0)
    assert (canary.requests, canary.errors) == (2, 1)
    assert traffic.window("chat", "stable", 0).requests == 0


def test_a_streamed_answer_is_read_once_for_traffic_cost_and_quality() -> None:
    from extproc.config import parse_config
    from extproc.response.observe import ObserveStream
    from extproc.rollout.quality import Quality
    from proto import core_pb2, ext_proc_pb2

    config = parse_config(
        {
            "backends": [
                {
                    "name": "v1",
                    "address": "127.0.0.1:1",
                    "price": {"prompt_per_1m": 1_000_000, "completion_per_1m": 2_000_000},
                }
            ],
            "routes": [{"name": "chat", "backends": [{"backend": "v1"}]}],
            "default_route": "chat",
            "envoy": {"observe_sample": 1},  # exact totals: every stable response counts
        },
        "t.yaml",
    )
    metrics = RolloutMetrics()
    traffic = TrafficStats(metrics)
    quality = Quality(config, metrics, traffic.record_signal, lambda: 100.0)
    headers = {
        ":status": "200",
        "content-type": "text/event-stream",
        "x-switchyard-route": "chat",
        "x-switchyard-cohort": "stable",
        "x-switchyard-backend": "v1",
        "x-request-id": "rid-1",
    }
    events = [
        {"choices": [{"index": 0, "delta": {"content": "I'm sorry, "}}]},
        {"choices": [{"index": 0, "delta": {"content": "I can't help with that."}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 5}},
    ]
    chunks = [f"data: {json.dumps(e)}\n\n".encode() for e in events] + [b"data: [DONE]\n\n"]
    stream = ObserveStream(config, traffic, quality)
    header_map = core_pb2.HeaderMap(
        headers=[core_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in headers.items()]
    )
    stream.on_message(
        ext_proc_pb2.ProcessingRequest(
            response_headers=ext_proc_pb2.HttpHeaders(headers=header_map), observability_mode=True
        )
    )
    for i, chunk in enumerate(chunks):
        body = ext_proc_pb2.HttpBody(body=chunk, end_of_stream=i == len(chunks) - 1)
        stream.on_message(
            ext_proc_pb2.ProcessingRequest(response_body=body, observability_mode=True)
        )
    [row] = traffic.snapshot()
    assert (row["prompt_tokens"], row["completion_tokens"], row["cost"]) == (3, 5, 13.0)
    [signals] = quality.snapshot()
    assert signals["judged"] == 1 and signals["flags"] == {"refusal": 1}
