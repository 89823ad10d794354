"""The fleet's rollout state against a real redis-server, replicas in one process.

Each "replica" has its own Rollouts, TrafficStats and clock, as separate pods would;
only Redis is shared. The classic mistakes of a shared state are each pinned here.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from extproc.admin import LoopBridge
from extproc.config import Config, parse_config
from extproc.response.reader import ResponseReader
from extproc.rollout.canary import Phase, RolloutError, Rollouts, hold_met
from extproc.rollout.metrics import RolloutMetrics
from extproc.rollout.quality import Quality
from extproc.rollout.traffic import TrafficStats
from extproc.store.clock import StoreClock
from extproc.store.metrics import StoreMetrics
from extproc.store.redis_store import RedisStore
from extproc.tools.devstack import RedisServer


def fleet_config(url: str, **state: Any) -> Config:
    return parse_config(
        {
            "backends": [
                {"name": "stable", "address": "127.0.0.1:1"},
                {"name": "canary", "address": "127.0.0.1:2"},
            ],
            "routes": [
                {
                    "name": "r",
                    "backends": [{"backend": "stable"}],
                    "canary": {
                        "backend": "canary",
                        "percent": 5,
                        "steps": [5, 10, 50, 100],
                        "hold": {"seconds": 30, "requests": 4},
                    },
                }
            ],
            "default_route": "r",
            # Every response observed: feedback for an unknown id is then "unknown" (404),
            # never "unsampled".
            "envoy": {"observe_sample": 1},
            "state": {
                "store": "redis",
                "redis_url": url,
                "sync_interval_s": 0.2,
                "flush_interval_s": 0.1,
                "lease_ttl_s": 1.0,
                # Generous for a busy machine: a test that wants Redis unreachable at
                # start passes start_timeout_s itself.
                "start_timeout_s": 5.0,
                "timeout_ms": 1000,
                **state,
            },
        },
        "test",
    )


class Replica:
    def __init__(self, config: Config, skew_s: float = 0.0) -> None:
        self.clock = StoreClock(lambda: time.time() + skew_s)
        self.metrics = RolloutMetrics()
        self.rollouts = Rollouts()
        self.traffic = TrafficStats(self.metrics, clock=self.clock)
        self.store = RedisStore(
            config.state, config.analysis, self.rollouts, self.traffic, StoreMetrics(), self.clock
        )
        self.store.rollouts_changed(self.rollouts.apply_config(config, self.store.starting_state))
        self.traffic.analyse_routes(frozenset({"r"}), keep_s=120)

    @property
    def state(self) -> Any:
        return self.rollouts.state("r")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def replicas(redis_server: RedisServer) -> AsyncIterator[list[Replica]]:
    started: list[Replica] = []

    async def close() -> None:
        for replica in started:
            await replica.store.close()

    config = fleet_config(redis_server.url)
    for _ in range(2):
        replica = Replica(config)
        await replica.store.start()
        started.append(replica)
    yield started
    await close()


async def eventually(check: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def test_replicas_start_from_one_record(replicas: list[Replica]) -> None:
    a, b = replicas
    assert a.state == b.state
    assert (a.state.phase, a.state.percent, a.state.version) == (Phase.PROGRESSING, 5, 1)


async def test_two_replicas_deciding_at_once_make_one_transition(replicas: list[Replica]) -> None:
    a, b = replicas
    version = a.state.version
    results = await asyncio.gather(
        a.store.act("r", "promote", "healthy", based_on=version),
        b.store.act("r", "promote", "healthy", based_on=version),
    )
    # One step up (5 -> 10), not two, whichever replica won.
    assert {r.percent for r in results} == {10}
    assert {r.version for r in results} == {version + 1}
    await eventually(lambda: a.state == b.state)
    assert a.state.percent == 10


async def test_an_action_on_one_replica_reaches_the_other_within_a_second(
    replicas: list[Replica],
) -> None:
    a, b = replicas
    await a.store.act("r", "pause", "operator")
    started = time.monotonic()
    await eventually(lambda: b.state.phase is Phase.PAUSED, timeout=1.0)
    assert time.monotonic() - started < 1.0


async def test_a_new_replica_keeps_the_fleets_rollback(
    replicas: list[Replica], redis_server: RedisServer
) -> None:
    a, _ = replicas
    await a.store.act("r", "rollback", "error_rate: test")
    late = Replica(fleet_config(redis_server.url))
    assert late.state.phase is Phase.WAITING and late.state.serving_percent == 0
    await late.store.start()
    try:
        assert late.state.phase is Phase.ROLLED_BACK and late.state.serving_percent == 0
    finally:
        await late.store.close()


async def test_one_leader_and_a_takeover_within_the_lease(replicas: list[Replica]) -> None:
    a, b = replicas
    await eventually(lambda: a.store.decides() != b.store.decides())
    leader, follower = (a, b) if a.store.decides() else (b, a)
    assert follower.store.leader() == leader.store.replica
    # The leader dies without handing over: its tasks stop, its lease runs out.
    for task in leader.store._tasks:
        task.cancel()
    started = time.monotonic()
    await eventually(follower.store.decides, timeout=4.0)
    # lease_ttl_s + a sync interval, and a margin for a busy machine
    assert time.monotonic() - started <= 1.0 + 0.2 + 1.5


async def test_a_shifted_clock_agrees_on_buckets_and_holds(redis_server: RedisServer) -> None:
    config = fleet_config(redis_server.url)
    fast, slow = Replica(config, skew_s=+300.0), Replica(config, skew_s=-240.0)
    await fast.store.start()
    await slow.store.start()
    try:
        assert abs(fast.clock() - slow.clock()) < 0.1
        # Both replicas observe the canary; the fleet's window holds both.
        for replica in (fast, slow):
            for _ in range(10):
                replica.traffic.record("r", "canary", "canary", 200, 0.05, None, None, 0.0)
                replica.rollouts.record_canary_request("r")
        await eventually(
            lambda: not fast.store._unflushed and not slow.store._unflushed, timeout=2.0
        )
        await asyncio.sleep(0.3)
        since = fast.clock() - 5
        for replica in (fast, slow):
            window = await replica.store.window("r", "canary", since)
            assert window.requests == 20
            assert await replica.store.step_requests("r", replica.state) == 20
        # The hold is judged the same by both, whatever their own clocks say.
        state, canary = fast.rollouts.get("r")
        assert hold_met(canary, state, fast.clock() + 31, 20)
        assert hold_met(canary, state, slow.clock() + 31, 20)
        assert not hold_met(canary, state, slow.clock() + 25, 20)
    finally:
        await fast.store.close()
        await slow.store.close()


async def test_rollback_without_redis_is_written_when_it_returns(
    replicas: list[Replica], redis_server: RedisServer
) -> None:
    a, b = replicas
    client = aioredis.Redis.from_url(redis_server.url)
    await client.config_set("save", "")
    await client.aclose()
    port = redis_server.port
    redis_server.stop()
    await eventually(lambda: not a.store.available and not b.store.available)
    with pytest.raises(RolloutError, match="only a rollback"):
        await a.store.act("r", "promote", "operator")
    rolled = await a.store.act("r", "rollback", "error_rate: alone")
    assert rolled.phase is Phase.ROLLED_BACK and a.state.serving_percent == 0
    assert b.state.phase is Phase.PROGRESSING  # b has not seen it: no Redis
    # Redis comes back empty (no persistence) on the same port.
    redis_server.port = port
    redis_server.start()
    await eventually(lambda: b.state.phase is Phase.ROLLED_BACK, timeout=5.0)
    assert a.state.version == b.state.version and a.state.reason == "error_rate: alone"


async def test_the_store_moving_on_beats_a_pending_rollback(
    replicas: list[Replica], redis_server: RedisServer
) -> None:
    a, b = replicas
    a.store._available = False  # a alone believes Redis is away
    await a.store.act("r", "rollback", "error_rate: alone")
    await b.store.act("r", "promote", "operator")  # the fleet moved on meanwhile
    await a.store.sync()
    assert a.state == b.state and a.state.percent == 10
    assert a.state.phase is Phase.PROGRESSING


async def test_an_emptied_store_gets_the_fleets_state_back(
    replicas: list[Replica], redis_server: RedisServer
) -> None:
    a, b = replicas
    await a.store.act("r", "rollback", "operator")
    await eventually(lambda: b.state.phase is Phase.ROLLED_BACK)
    before = a.state.version
    client = aioredis.Redis.from_url(redis_server.url)
    await client.flushall()
    deadline = time.monotonic() + 3
    while not (record := await client.hgetall("switchyard:rollout:r")):
        assert time.monotonic() < deadline, "nobody restored the record"
        await asyncio.sleep(0.05)
    await client.aclose()
    # Restored at the version the fleet held: nothing changes for the replicas.
    assert (record[b"phase"], int(record[b"version"])) == (b"rolled_back", before)
    assert a.state == b.state and a.state.phase is Phase.ROLLED_BACK


async def test_unreachable_at_start_holds_canaries_at_zero(tmp_path: Path) -> None:
    nobody = RedisServer(tmp_path)  # a free port, never started
    replica = Replica(fleet_config(nobody.url, start_timeout_s=0.5))
    await replica.store.start()
    try:
        assert not replica.store.available
        assert replica.state.phase is Phase.WAITING and replica.state.serving_percent == 0
        with pytest.raises(RolloutError, match="not known yet"):
            await replica.store.act("r", "rollback", "operator")
    finally:
        await replica.store.close()


async def test_password_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = RedisServer(tmp_path, password="s3cret-for-test")
    server.start()
    try:
        monkeypatch.setenv("TEST_REDIS_PASSWORD", "s3cret-for-test")
        good = Replica(fleet_config(server.url, password_env="TEST_REDIS_PASSWORD"))
        await good.store.start()
        monkeypatch.setenv("TEST_REDIS_PASSWORD", "wrong")
        bad = Replica(
            fleet_config(server.url, password_env="TEST_REDIS_PASSWORD", start_timeout_s=0.5)
        )
        await bad.store.start()
        try:
            assert good.store.available and good.state.phase is Phase.PROGRESSING
            assert not bad.store.available and bad.state.phase is Phase.WAITING
        finally:
            await good.store.close()
            await bad.store.close()
    finally:
        server.stop()


def _certificates(tmp_path: Path, name: str) -> tuple[Path, Path, Path]:
    """A CA and a certificate for 127.0.0.1 signed by it: (ca, cert, key)."""
    ca, ca_key = tmp_path / f"{name}-ca.crt", tmp_path / f"{name}-ca.key"
    cert, key, csr = tmp_path / f"{name}.crt", tmp_path / f"{name}.key", tmp_path / f"{name}.csr"
    ext = tmp_path / f"{name}.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out",
            str(ca), "-days", "2", "-subj", f"/CN={name} test CA")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
            "-subj", "/CN=127.0.0.1")  # fmt: skip
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
            "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))  # fmt: skip
    return ca, cert, key


async def test_rediss_verifies_the_servers_certificate(tmp_path: Path) -> None:
    ca, cert, key = _certificates(tmp_path, "redis")
    other_ca, _, _ = _certificates(tmp_path, "other")
    server = RedisServer(tmp_path, tls=(cert, key))
    server.start()
    try:
        # A TLS handshake can take longer than the other tests' 200 ms on a busy machine.
        trusted = Replica(fleet_config(server.url, tls_ca_file=str(ca), timeout_ms=3000))
        untrusted = Replica(
            fleet_config(server.url, tls_ca_file=str(other_ca), start_timeout_s=0.5)
        )
        for replica in (trusted, untrusted):
            await replica.store.start()
        try:
            assert trusted.store.available and trusted.state.phase is Phase.PROGRESSING
            assert not untrusted.store.available  # a certificate it cannot verify
        finally:
            for replica in (trusted, untrusted):
                await replica.store.close()
    finally:
        server.stop()


async def test_quality_signals_reach_the_fleets_window(replicas: list[Replica]) -> None:
    first, second = replicas
    quality = Quality(fleet_config("redis://127.0.0.1:1/0"), first.metrics,
                      first.traffic.record_signal, first.clock)  # fmt: skip
    refusal = b'{"choices": [{"message": {"content": "I am sorry, but I cannot help."}}]}'
    for n in range(4):
        first.traffic.record("r", "canary", "canary", 200, 0.05, None, None, 0.0)
        quality.on_response(
            f"id{n}", "r", "canary", "canary", 200, "0.5", ResponseReader.of(refusal)
        )
    assert quality.feedback(b'{"request_id": "id0", "flag": "unsafe"}')[0] == 200
    since = first.clock() - 5

    async def seen_by_the_other() -> bool:
        window = await second.store.window("r", "canary", since)
        return window.flags == {"refusal": 4, "unsafe": 1}

    deadline = time.monotonic() + 3
    while not await seen_by_the_other():
        assert time.monotonic() < deadline, "the fleet's window never got the signals"
        await asyncio.sleep(0.05)
    window = await second.store.window("r", "canary", since)
    assert (window.requests, window.scored, window.score_sum) == (4, 4, 2.0)


async def _fleet_window_with(replica: Replica, flags: dict[str, int]) -> Any:
    """The fleet's last seconds of route r's canary, once they carry these flags."""
    since = replica.clock() - 5
    deadline = time.monotonic() + 3
    while (window := await replica.store.window("r", "canary", since)).flags != flags:
        assert time.monotonic() < deadline, window
        await asyncio.sleep(0.05)
    return window


def _wired(replicas: list[Replica], loop: asyncio.AbstractEventLoop) -> list[Quality]:
    """One Quality per replica, sharing its ids through its store, with lookup and claim
    wired as the app wires them (called from the HTTP thread, run on the loop)."""
    config = fleet_config("redis://127.0.0.1:1/0")
    wired = []
    for replica in replicas:
        bridge = LoopBridge(replica.store)
        bridge.attach(loop)
        quality = Quality(
            config,
            replica.metrics,
            replica.traffic.record_signal,
            replica.clock,
            lookup=bridge.lookup_request,
            claim=bridge.claim_feedback,
        )
        replica.store.share_requests(quality)
        wired.append(quality)
    return wired


def _answered(replicas: list[Replica], request_id: str) -> list[Quality]:
    """The wired pair, after the first replica served (and observed) one canary answer."""
    wired = _wired(replicas, asyncio.get_running_loop())
    replicas[0].traffic.record("r", "canary", "canary", 200, 0.05, None, None, 0.0)
    wired[0].on_response(request_id, "r", "canary", "canary", 200, None, ResponseReader.of(b"{}"))
    return wired


async def test_feedback_on_another_replica_finds_the_request(replicas: list[Replica]) -> None:
    first, second = replicas
    served_here, asked_there = _wired(replicas, asyncio.get_running_loop())
    refusal = b'{"choices": [{"message": {"content": "I am sorry, but I cannot help."}}]}'
    first.traffic.record("r", "canary", "canary", 200, 0.05, None, None, 0.0)
    served_here.on_response("fid-1", "r", "canary", "canary", 200, None, ResponseReader.of(refusal))
    deadline = time.monotonic() + 3
    while await second.store.lookup_request("fid-1") is None:
        assert time.monotonic() < deadline, "the request id never reached Redis"
        await asyncio.sleep(0.05)

    async def post(body: bytes) -> tuple[int, dict[str, object]]:
        return await asyncio.to_thread(asked_there.feedback, body)

    status, answer = await post(b'{"request_id": "fid-1", "flag": "unsafe", "score": 0.2}')
    assert (status, answer["cohort"], answer["result"]) == (200, "canary", "accepted")
    # The refusal the serving replica saw travelled with the id: not counted twice.
    status, answer = await post(b'{"request_id": "fid-1", "flag": "refusal"}')
    assert (status, answer["result"]) == (200, "duplicate")
    assert (await post(b'{"request_id": "fid-2", "flag": "wrong"}'))[0] == 404
    window = await _fleet_window_with(first, {"refusal": 1, "unsafe": 1})
    assert window.score_sum == 0.2


async def test_the_same_feedback_posted_to_two_replicas_counts_once(
    replicas: list[Replica],
) -> None:
    served_here, asked_there = _answered(replicas, "twice")
    await asyncio.sleep(0.3)  # flushed: the second post finds the id in Redis at once

    async def post(quality: Quality, body: bytes) -> object:
        status, answer = await asyncio.to_thread(quality.feedback, body)
        assert status == 200
        return answer["result"]

    body = b'{"request_id": "twice", "score": 0.3, "flag": "unsafe"}'
    assert await post(served_here, body) == "accepted"
    assert await post(asked_there, body) == "duplicate"
    # A new kind of feedback on the other replica still counts, once.
    assert await post(asked_there, b'{"request_id": "twice", "flag": "wrong"}') == "accepted"
    assert await post(served_here, b'{"request_id": "twice", "flag": "wrong"}') == "duplicate"
    window = await _fleet_window_with(replicas[0], {"unsafe": 1, "wrong": 1})
    assert (window.scored, window.score_sum) == (1, 0.3)


async def test_feedback_right_after_the_answer_finds_it_on_another_replica(
    replicas: list[Replica],
) -> None:
    _, asked_there = _answered(replicas, "soon")
    # No wait for the serving replica's flush: the lookup reads again after one.
    status, answer = await asyncio.to_thread(
        asked_there.feedback, b'{"request_id": "soon", "score": 0.9}'
    )
    assert (status, answer["result"]) == (200, "accepted")
    started = time.monotonic()
    status, _ = await asyncio.to_thread(
        asked_there.feedback, b'{"request_id": "never-served", "score": 0.9}'
    )
    assert status == 404 and time.monotonic() - started < 3
