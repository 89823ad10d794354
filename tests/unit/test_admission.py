"""Large bodies take turns (extproc.request.admission), on a real event loop.

Only lower bounds are timed (asyncio.sleep never returns early); where a test needs an
upper bound it is orders of magnitude above what the code waits.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from extproc.config import parse_config
from extproc.request.admission import LARGE_BODY_BYTES, LargeBodyPacer
from extproc.request.metrics import RequestMetrics
from extproc.request.processor import RoutingStream
from extproc.request.runtime import build_runtime
from extproc.rollout.canary import Rollouts
from proto import ext_proc_pb2
from tests.unit.test_processor import headers


async def _hold(pacer: LargeBodyPacer, seconds: float, log: list[tuple[str, float]]) -> None:
    async with pacer.turn(max_wait_s=10) as waited:
        assert waited >= 0
        log.append(("start", time.monotonic()))
        await asyncio.sleep(seconds)
        log.append(("end", time.monotonic()))


def test_with_small_traffic_a_large_body_waits_pace_times_the_previous_ones_time() -> None:
    async def run() -> list[tuple[str, float]]:
        pacer, log = LargeBodyPacer(pace=3), []
        pacer.small_request()
        await asyncio.gather(_hold(pacer, 0.05, log), _hold(pacer, 0.0, log))
        return log

    (start1, t1), (end1, t2), (start2, t3), (end2, _) = asyncio.run(run())
    assert (start1, end1, start2, end2) == ("start", "end", "start", "end")  # one at a time
    assert t3 - t2 >= 3 * (t2 - t1) * 0.99  # the pause: 3 x the 50 ms the first one took


def test_without_small_traffic_large_bodies_do_not_pause() -> None:
    async def run() -> float:
        pacer, log = LargeBodyPacer(pace=1000), []
        await asyncio.gather(_hold(pacer, 0.05, log), _hold(pacer, 0.0, log))
        return log[2][1] - log[1][1]

    assert asyncio.run(run()) < 5  # a paced wait would be 50 s


def test_no_large_body_waits_longer_than_its_bound() -> None:
    async def run() -> tuple[float, float]:
        pacer = LargeBodyPacer(pace=1000)
        pacer.small_request()
        async with pacer.turn(max_wait_s=10):
            await asyncio.sleep(0.02)  # the next pause would be 20 s
        started = time.monotonic()
        async with pacer.turn(max_wait_s=0.1):
            waited = time.monotonic() - started
        # A turn held past the bound: the next body goes ahead without it.
        holder = asyncio.Event()

        async def hold() -> None:
            async with pacer.turn(max_wait_s=10):
                holder.set()
                await asyncio.sleep(30)

        task = asyncio.create_task(hold())
        await holder.wait()
        started = time.monotonic()
        async with pacer.turn(max_wait_s=0.1):
            overtaken = time.monotonic() - started
        task.cancel()
        return waited, overtaken

    waited, overtaken = asyncio.run(run())
    assert 0.1 * 0.99 <= waited < 5 and 0.1 * 0.99 <= overtaken < 5


def test_a_turn_that_raises_lets_the_next_body_in() -> None:
    async def run() -> None:
        pacer = LargeBodyPacer(pace=0)
        with pytest.raises(ValueError):
            async with pacer.turn(max_wait_s=10):
                raise ValueError("bad body")
        async with asyncio.timeout(5):
            async with pacer.turn(max_wait_s=10):
                pass

    asyncio.run(run())


def _body(size: int, prompt: str) -> bytes:
    padding = "x" * max(0, size - 100)
    content = f"{prompt} {padding}"
    return json.dumps({"messages": [{"role": "user", "content": content}]}).encode()


def test_a_paced_large_body_is_routed_as_an_unpaced_one_and_small_ones_count_as_traffic() -> None:
    config = parse_config(
        {
            "server": {"max_body_bytes": 4 * LARGE_BODY_BYTES},
            "backends": [{"name": "a", "address": "127.0.0.1:1"}],
            "routes": [
                {"name": "kw", "match": {"keywords": ["refund"]}, "backends": [{"backend": "a"}]},
                {"name": "d", "backends": [{"backend": "a"}]},
            ],
            "default_route": "d",
        },
        "test",
    )
    metrics = RequestMetrics()
    runtime = build_runtime(config, Rollouts(), metrics)
    large = _body(LARGE_BODY_BYTES + 1, "a refund please")

    async def route(body: bytes, pacer: LargeBodyPacer | None) -> str:
        s = RoutingStream(runtime, metrics, pacer=pacer)
        s.on_request_headers(headers())
        response = await s.on_request_body(ext_proc_pb2.HttpBody(body=body, end_of_stream=True))
        mutation = response.request_body.response.header_mutation
        return {o.header.key: o.header.raw_value.decode() for o in mutation.set_headers}[
            "x-switchyard-route"
        ]

    async def run() -> tuple[str, str, str, float]:
        pacer = LargeBodyPacer()
        paced = await route(large, pacer)
        small = await route(_body(200, "hello"), pacer)
        return paced, await route(large, None), small, pacer._small_seen_at

    paced, unpaced, small, small_seen_at = asyncio.run(run())
    assert paced == unpaced == "kw" and small == "d"
    assert small_seen_at > float("-inf")
