"""The per-request handler without gRPC: what switchyard's own Python costs per request.

Times `RoutingStream.on_request_headers` + `on_request_body` (extproc.request.processor)
on the protobuf messages Envoy sends for a chat request, with a runtime built
by `extproc.request.runtime.build_runtime` exactly as the server builds it. Cases:

- rules: the rules-only config (keywords, regex, model, header routes);
- rules-heavy: the same with bench/heavy_clients.py's ~900 KB prompt: how long one large
  body holds the event loop (every other stream waits that long); its turn
  (extproc.request.admission) is taken, without a pause: no small request is in flight;
- semantic-hit: the label config, a prompt already in the classifier's cache;
- semantic-miss: the label config, a new ~32-token prompt every time (the ONNX
  encoder runs), next to `inference`, the classifier called directly.

Each case is timed as the handlers alone and with the protobuf decoding and
encoding a gRPC stream adds (ProcessingRequest in, ProcessingResponse out).

    .venv/bin/python bench/handler_bench.py [--json] [--quick] [--cases rules,semantic-hit]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import configs
from bench.load import WORDS
from extproc.config import parse_config
from extproc.request.admission import LargeBodyPacer
from extproc.request.metrics import RequestMetrics
from extproc.request.processor import RoutingStream
from extproc.request.runtime import Runtime, build_runtime
from extproc.rollout.canary import Rollouts
from proto import core_pb2, ext_proc_pb2

CASES = ("rules", "rules-heavy", "semantic-hit", "semantic-miss")
ADDRESSES = configs.Addresses(10000, 9901, 50051, 9464)


def envoy_messages(body: bytes) -> tuple[bytes, bytes]:
    """The two ProcessingRequests Envoy sends for a chat request, serialised as on the wire."""
    headers = {
        ":authority": "127.0.0.1:10000",
        ":path": "/v1/chat/completions",
        ":method": "POST",
        ":scheme": "http",
        "user-agent": "OpenAI/Python 1.54.0",
        "content-type": "application/json",
        "accept": "application/json",
        "authorization": "Bearer sk-proj-" + "x" * 48,
        "content-length": str(len(body)),
        "x-forwarded-proto": "http",
        "x-request-id": "6f1c2a57-1d8e-4c36-9f4b-3a0d2e7b9c11",
    }
    header_map = core_pb2.HeaderMap(
        headers=[core_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in headers.items()]
    )
    first = ext_proc_pb2.ProcessingRequest(
        request_headers=ext_proc_pb2.HttpHeaders(headers=header_map, end_of_stream=False)
    )
    second = ext_proc_pb2.ProcessingRequest(
        request_body=ext_proc_pb2.HttpBody(body=body, end_of_stream=True)
    )
    return first.SerializeToString(), second.SerializeToString()


def unique_prompts(count: int, words: int = 30, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [f"{i} " + " ".join(rng.choice(WORDS) for _ in range(words - 1)) for i in range(count)]


def runtime_for(case: str) -> Runtime:
    backend = "127.0.0.1:8000"
    if case.startswith("rules"):
        data = configs.rules_config(ADDRESSES, backend, observe=True)
    else:
        data = configs.semantic_config(ADDRESSES, backend)
    return build_runtime(parse_config(data, "bench"), Rollouts(), RequestMetrics())


async def time_handlers(
    runtime: Runtime, wire: list[tuple[bytes, bytes]], iterations: int
) -> tuple[list[float], list[float], list[float]]:
    """Microseconds per request: handlers alone, with protobuf decode/encode, and the
    latter's CPU time (the process's: inference threads included).

    The two are timed alternately, request by request, so a change in the machine's
    load touches both alike; `wire` (pre-encoded message pairs) is used in turn. CPU time
    does not count the time other processes take the core: on a busy machine it is the
    steadier number.
    """
    metrics = RequestMetrics()
    pacer = LargeBodyPacer()  # as the server gives each stream (large bodies take turns)
    parse = ext_proc_pb2.ProcessingRequest.FromString
    decoded = [(parse(h), parse(b)) for h, b in wire]
    samples: tuple[list[float], list[float], list[float]] = ([], [], [])
    clock, cpu_clock = time.perf_counter_ns, time.process_time_ns
    for i in range(2 * iterations):
        with_protobuf = i % 2 == 1
        started, cpu_started = clock(), cpu_clock()
        if with_protobuf:
            raw_headers, raw_body = wire[i % len(wire)]
            headers, body = parse(raw_headers), parse(raw_body)
        else:
            headers, body = decoded[i % len(decoded)]
        stream = RoutingStream(runtime, metrics, pacer=pacer)
        first = stream.on_request_headers(headers.request_headers)
        second = await stream.on_request_body(body.request_body)
        if with_protobuf:
            first.SerializeToString()
            second.SerializeToString()
            samples[2].append((cpu_clock() - cpu_started) / 1000)
        samples[with_protobuf].append((clock() - started) / 1000)
    return samples


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50": round(statistics.median(ordered), 2),
        "p99": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 2),
        "mean": round(statistics.fmean(ordered), 2),
    }


def run_case(case: str, quick: bool) -> dict[str, Any]:
    runtime = runtime_for(case)
    if case == "semantic-miss":
        iterations = 30 if quick else 200
        prompts = unique_prompts(2 * iterations + 20)
        wire = [envoy_messages(configs.chat_body(p)) for p in prompts]
        # Warm-up (onnxruntime allocations) on prompts the timed runs never see.
        asyncio.run(time_handlers(runtime, wire[-20:], 10))
        handler, proto, cpu = asyncio.run(time_handlers(runtime, wire[:-20], iterations))
        assert runtime.classifier is not None
        model = runtime.classifier.classifier
        inference = _time(
            lambda p: model.classify_conversations([[p]]), unique_prompts(iterations, seed=8)
        )
    elif case == "rules-heavy":
        iterations = 30 if quick else 300
        wire = [envoy_messages(configs.heavy_body())]
        asyncio.run(time_handlers(runtime, wire, 5))
        handler, proto, cpu = asyncio.run(time_handlers(runtime, wire, iterations))
        inference = None
    else:
        iterations = 2_000 if quick else 20_000
        prompt = configs.RULES_PROMPT if case == "rules" else configs.REPEATED_PROMPTS[1]
        wire = [envoy_messages(configs.chat_body(prompt))]
        asyncio.run(time_handlers(runtime, wire, 100))  # fills the cache, warms up
        handler, proto, cpu = asyncio.run(time_handlers(runtime, wire, iterations))
        inference = None
    out: dict[str, Any] = {
        "iterations": iterations,
        "handler_us": _summary(handler),
        "with_protobuf_us": _summary(proto),
        "with_protobuf_cpu_us": _summary(cpu),
    }
    if inference is not None:
        out["inference_us"] = _summary(inference)
    return out


def _time(call: Callable[[str], object], inputs: list[str]) -> list[float]:
    samples = []
    for item in inputs:
        started = time.perf_counter_ns()
        call(item)
        samples.append((time.perf_counter_ns() - started) / 1000)
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cases", default=",".join(CASES), help=f"comma-separated: {', '.join(CASES)}"
    )
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    cases = args.cases.split(",")
    unknown = [case for case in cases if case not in CASES]
    if unknown:
        parser.error(f"unknown cases {unknown}; expected some of {list(CASES)}")
    results = {case: run_case(case, args.quick) for case in cases}
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    print(f"{'case':14} {'part':20} {'p50 us':>9} {'p99 us':>9} {'mean us':>9}")
    for case, result in results.items():
        for part in ("handler_us", "with_protobuf_us", "with_protobuf_cpu_us", "inference_us"):
            if part in result:
                s = result[part]
                print(f"{case:14} {part:20} {s['p50']:>9} {s['p99']:>9} {s['mean']:>9}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
