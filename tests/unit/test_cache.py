"""The response cache without Envoy: guard, keys, answers, store, lookup and fill."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from prometheus_client import CollectorRegistry

from extproc.cache.answer import CachedAnswer, cacheable, render_json, render_sse
from extproc.cache.entries import CacheEntries, Entry
from extproc.cache.guard import disagreement
from extproc.cache.key import request_key
from extproc.cache.service import Replication, ResponseCache
from extproc.config import parse_config
from extproc.errors import ConfigError
from extproc.request.chat import parse_chat
from extproc.response.reader import ResponseReader, completion, sse_completion

PAIRS = yaml.safe_load((Path(__file__).parent / "data" / "cache_pairs.yaml").read_text())


# -- the guard -------------------------------------------------------------------------


def test_the_set_is_big_enough_and_bilingual() -> None:
    assert len(PAIRS["opposite"]) >= 40 and len(PAIRS["reworded"]) >= 40
    kinds = {kind for kind, _, _ in PAIRS["opposite"]}
    assert {"negation", "antonym", "number", "unit", "entity"} <= kinds
    french = [p for p in PAIRS["opposite"] if "?" in p[1] and " ?" in p[1]]
    assert len(french) >= 10


@pytest.mark.parametrize(("kind", "cached", "new"), PAIRS["opposite"])
def test_guard_refuses_every_opposite_question(kind: str, cached: str, new: str) -> None:
    assert disagreement(cached, new) is not None
    assert disagreement(new, cached) is not None  # whichever was cached first


def test_guard_lets_rewordings_through() -> None:
    agreed = [a for a, b in PAIRS["reworded"] if disagreement(a, b) is None]
    assert len(agreed) / len(PAIRS["reworded"]) >= 0.9


@pytest.mark.parametrize(
    ("cached", "new", "reason"),
    [
        ("How do I turn on wifi?", "How do I turn on wifi on my phone?", None),  # "on" preposition
        ("Je ne peux pas payer", "Je peux pas payer", None),  # spoken French drops "ne"
        ("Price for 1,000 seats?", "Price for 1000 seats?", None),
        ("Is 1,5 Go enough?", "Is 1.5 Go enough?", None),
        ("Is Python 3.10 supported?", "Is Python 3.1 supported?", "number"),
        ("Does it work on macOS?", "does it work on macos?", None),  # typed in lower case
        ("Does it work with Zoom?", "Does it work with Webex?", "entity"),
    ],
)
def test_guard_details(cached: str, new: str, reason: str | None) -> None:
    assert disagreement(cached, new) == reason


# -- keys --------------------------------------------------------------------------------


def _chat(*messages: Any, **extra: Any) -> Any:
    msgs = [m if isinstance(m, dict) else {"role": "user", "content": m} for m in messages]
    return parse_chat(json.dumps({"model": "m", "messages": msgs, **extra}).encode())


def _key(chat: Any, headers: dict[str, str] | None = None, **kw: Any) -> Any:
    args = {"route": "r", "backend": "b", "partition_by": ["header:x-tenant-id", "user"], **kw}
    return request_key(chat, {"x-tenant-id": "acme"} if headers is None else headers, **args)


def test_no_partition_source_means_no_caching() -> None:
    assert _key(_chat("hi"), headers={}) is None
    assert _key(_chat("hi", user="bob"), headers={}) is not None


def test_scope_holds_everything_but_the_last_question() -> None:
    base = _key(_chat("How do I reset my password?"))
    assert base.exact == _key(_chat("how do I  reset my password?")).exact
    assert base.exact == _key(_chat("How do I reset my password?", stream=True)).exact
    different = [
        _key(_chat("How do I reset my password?"), headers={"x-tenant-id": "other"}),
        _key(_chat("How do I reset my password?", temperature=0.2)),
        _key(_chat({"role": "system", "content": "Be brief"}, "How do I reset my password?")),
        _key(_chat("earlier", "How do I reset my password?")),
        _key(_chat("How do I reset my password?"), route="other"),
        _key(_chat("How do I reset my password?"), backend="other"),
    ]
    assert all(k.scope != base.scope for k in different)


def test_a_conversation_ending_with_an_assistant_message_is_not_cached() -> None:
    chat = _chat("q", {"role": "assistant", "content": "a"})
    assert _key(chat) is None


# -- answers -----------------------------------------------------------------------------

COMPLETE = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "m1",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
}


def _with_choice(**changes: Any) -> bytes:
    choice = {**COMPLETE["choices"][0], **changes}  # type: ignore[index]
    return json.dumps({**COMPLETE, "choices": [choice]}).encode()


def read_answer(status: int, content_type: str, body: bytes) -> CachedAnswer | None:
    return cacheable(status, completion(content_type, body))


def from_sse_body(body: bytes) -> CachedAnswer | None:
    return cacheable(200, sse_completion(body))


def test_only_complete_answers_are_cached() -> None:
    assert read_answer(200, "application/json", json.dumps(COMPLETE).encode()) is not None
    joined = "text/plain; application/json"  # two content-type headers, as Envoy hands them
    assert read_answer(200, joined, json.dumps(COMPLETE).encode()) is not None
    assert read_answer(500, "application/json", json.dumps(COMPLETE).encode()) is None
    assert read_answer(200, "application/json", _with_choice(finish_reason="length")) is None
    tool = {"role": "assistant", "content": None, "tool_calls": [{"id": "t"}]}
    assert read_answer(200, "application/json", _with_choice(message=tool)) is None
    assert read_answer(200, "application/json", b'{"error": {"message": "x"}}') is None
    assert read_answer(200, "text/plain", json.dumps(COMPLETE).encode()) is None


def test_a_replayed_stream_reads_back_as_the_same_answer() -> None:
    answer = read_answer(200, "application/json", json.dumps(COMPLETE).encode())
    assert answer is not None
    assert from_sse_body(render_sse(answer)) == answer
    assert json.loads(render_json(answer))["choices"][0]["message"]["content"] == "Hi"


def test_a_stream_cut_short_is_not_cached() -> None:
    answer = read_answer(200, "application/json", json.dumps(COMPLETE).encode())
    assert answer is not None
    body = render_sse(answer)
    assert from_sse_body(body.replace(b"data: [DONE]\n\n", b"")) is None
    without_usage = b"".join(e + b"\n\n" for e in body.split(b"\n\n") if b'"usage"' not in e)
    assert from_sse_body(without_usage) is None


# -- the store ---------------------------------------------------------------------------


def _entry(exact: str, route: str = "r", partition: str = "p", expires: float = 100.0) -> Entry:
    answer = read_answer(200, "application/json", json.dumps(COMPLETE).encode())
    assert answer is not None
    return Entry(exact, "scope", route, (partition,), "q", answer, expires)


def test_store_is_bounded_lru_with_ttl() -> None:
    now = [0.0]
    store = CacheEntries(lambda: now[0])
    for name in "abc":
        store.put(_entry(name), max_entries=2)
    assert store.get("r", "a") is None and store.get("r", "b") is not None
    store.put(_entry("d"), max_entries=2)  # b was used last: c goes
    assert store.get("r", "c") is None and store.get("r", "b") is not None
    now[0] = 100.0
    assert store.get("r", "b") is None
    assert store.nearest("scope", np.ones(4, dtype=np.float32), 5) == []


def test_the_scope_index_finds_the_nearest_after_evictions() -> None:
    store = CacheEntries(lambda: 0.0)
    axes = np.eye(4, dtype=np.float32)
    for i in range(4):
        store.put(Entry(**{**_entry(f"e{i}").__dict__, "vector": axes[i]}), max_entries=3)
    assert store.get("r", "e0") is None  # evicted: the least recently used
    found = store.nearest("scope", axes[2] + 0.1 * axes[3], 2)
    assert [(e.exact, round(s, 2)) for s, e in found] == [("e2", 1.0), ("e3", 0.1)]
    assert store.nearest("scope", axes[0], 1)[0][0] == 0.0  # e0's row went with it


def test_store_purges_by_route_and_partition() -> None:
    store = CacheEntries(lambda: 0.0)
    store.put(_entry("a", route="r1", partition="t1"), 10)
    store.put(_entry("b", route="r1", partition="t2"), 10)
    store.put(_entry("c", route="r2", partition="t1"), 10)
    assert store.purge("r1", ["t1"]) == 1
    assert store.counts() == {"r1": 1, "r2": 1}
    assert store.purge(None, None) == 2


def test_entries_survive_a_trip_through_json() -> None:
    entry = _entry("a")
    vector = np.arange(4, dtype=np.float32)
    with_vector = Entry(**{**entry.__dict__, "vector": vector})
    back = Entry.from_json(with_vector.to_json())
    assert back.answer == entry.answer and back.partition == entry.partition
    assert back.vector is not None and np.array_equal(back.vector, vector)


# -- lookup and fill ---------------------------------------------------------------------


class FakeEmbedder:
    """Every question lands on one point: only the guard tells them apart."""

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.ones((len(texts), 4), dtype=np.float32) / 2


CONFIG = {
    "backends": [
        {
            "name": "b",
            "address": "127.0.0.1:9",
            "price": {"prompt_per_1m": 1e6, "completion_per_1m": 0},
        }
    ],
    "routes": [
        {"name": "r", "backends": [{"backend": "b"}], "cache": {"enabled": True}},
        {"name": "plain", "match": {"keywords": ["x"]}, "backends": [{"backend": "b"}]},
    ],
    "default_route": "r",
}


def _cache(replication: Replication | None = None) -> ResponseCache:
    cache = ResponseCache(CollectorRegistry(), replication=replication)
    cache._embedder = FakeEmbedder()  # configure() would load the real model
    cache.configure(parse_config(CONFIG, "test.yaml"))
    return cache


async def _ask(
    cache: ResponseCache,
    question: str,
    headers: dict[str, str] | None = None,
    stream: bool = False,
    **kw: Any,
) -> Any:
    args = {"route": "r", "backend": "b", "cohort": "stable", **kw}
    chat = _chat(question, stream=stream)
    return await cache.lookup(chat, {"x-tenant-id": "acme"} if headers is None else headers, **args)


async def _fill(cache: ResponseCache, token: str) -> None:
    pending = cache.take_pending(token)
    assert pending is not None
    body = json.dumps(COMPLETE).encode()
    cache.offer(pending, 200, ResponseReader.of(body, "application/json"))
    await asyncio.sleep(0)  # the fill runs as a task
    await asyncio.gather(*cache._tasks)


async def test_miss_fill_then_exact_and_semantic_hits() -> None:
    cache = _cache()
    first = await _ask(cache, "How do I turn on dark mode?")
    assert first.result == "miss" and first.fill_token
    await _fill(cache, first.fill_token)
    exact = await _ask(cache, "how do I turn on dark mode?")
    assert exact.result == "hit" and json.loads(exact.body)["id"] == "chatcmpl-1"
    reworded = await _ask(cache, "How can I turn on dark mode?", stream=True)
    assert reworded.result == "hit" and reworded.content_type == "text/event-stream"
    opposite = await _ask(cache, "How do I turn off dark mode?")
    assert opposite.result == "miss"
    other_tenant = await _ask(cache, "How do I turn on dark mode?", {"x-tenant-id": "globex"})
    assert other_tenant.result == "miss"
    rows = {row["route"]: row for row in cache.snapshot()}
    assert rows["r"]["hits"] == 2 and rows["r"]["saved_prompt_tokens"] == 10
    assert rows["r"]["saved_cost"] == pytest.approx(10.0)


async def test_canary_no_cache_and_other_routes() -> None:
    cache = _cache()
    assert await _ask(cache, "q?", route="plain") is None
    canary = await _ask(cache, "q?", cohort="canary")
    assert canary.result == "bypass" and canary.fill_token is None
    no_cache = await _ask(cache, "q?", {"x-tenant-id": "a", "cache-control": "no-cache"})
    assert no_cache.result == "bypass" and no_cache.fill_token is not None
    no_store = await _ask(cache, "q?", {"x-tenant-id": "a", "cache-control": "no-store"})
    assert no_store.result == "bypass" and no_store.fill_token is None
    assert (await _ask(cache, "q?", {})).result == "bypass"  # no partition


class FlakyFleet:
    """A Replication whose store takes no fill and purges 7 entries."""

    def __init__(self) -> None:
        self.published: list[Entry] = []
        self.purged: list[tuple[str | None, list[str] | None]] = []

    async def publish(self, entry: Entry) -> bool:
        self.published.append(entry)
        return False

    async def purge(self, route: str | None, digests: list[str] | None) -> int:
        self.purged.append((route, digests))
        return 7


async def test_fills_and_purges_go_to_the_fleet_and_a_lost_fill_is_counted() -> None:
    fleet = FlakyFleet()
    cache = _cache(fleet)
    first = await _ask(cache, "How do I turn on dark mode?")
    await _fill(cache, first.fill_token)
    assert [e.route for e in fleet.published] == ["r"]
    assert cache.store.counts() == {"r": 1}  # this replica still answers from its copy
    results = {
        s.labels["result"]: s.value
        for s in cache.metrics.fills.collect()[0].samples
        if "_total" in s.name
    }
    assert results == {"stored": 1.0, "shared_store_error": 1.0}
    assert await cache.purge("r", None) == 7
    assert fleet.purged == [("r", None)] and not any(cache.store.counts().values())


async def test_errors_and_oversized_answers_are_not_filled() -> None:
    cache = _cache()
    first = await _ask(cache, "q?")
    pending = cache.take_pending(first.fill_token)
    assert pending is not None
    complete = json.dumps(COMPLETE).encode()
    cache.offer(pending, 503, ResponseReader.of(complete, "application/json"))
    limit = pending.max_answer_bytes
    large = _with_choice(message={"role": "assistant", "content": "x" * limit})
    cache.offer(pending, 200, ResponseReader.of(large, "application/json", keep_bytes=limit))
    assert cache.store.counts() == {}
    fills = cache.metrics.fills.collect()[0].samples
    assert {s.labels["result"]: s.value for s in fills if s.name.endswith("_total")} == {
        "not_complete": 1.0,
        "too_large": 1.0,
    }
    assert cache.take_pending("unknown") is None


async def test_a_pending_fill_older_than_the_upstream_timeout_is_forgotten() -> None:
    cache = _cache()
    first = await _ask(cache, "q?")
    cache._pending[first.fill_token].created -= 10_000  # its response never came
    await _ask(cache, "another question?")
    assert cache.take_pending(first.fill_token) is None


async def test_purge_by_partition_value() -> None:
    cache = _cache()
    for tenant in ("acme", "globex"):
        lookup = await _ask(cache, "q?", {"x-tenant-id": tenant})
        await _fill(cache, lookup.fill_token)
    assert await cache.purge(None, "acme") == 1
    assert (await _ask(cache, "q?", {"x-tenant-id": "globex"})).result == "hit"
    assert (await _ask(cache, "q?", {"x-tenant-id": "acme"})).result == "miss"
    assert await cache.purge("r", "header:x-tenant-id=globex") == 1


def test_cache_config_errors_name_the_key() -> None:
    bad = {**CONFIG, "routes": [{**CONFIG["routes"][0], "cache": {"enabled": True, "ttl_s": 0}}]}
    with pytest.raises(ConfigError, match=r'routes "r"\.cache\.ttl_s'):
        parse_config(bad, "test.yaml")
    bad["routes"] = [{**CONFIG["routes"][0], "cache": {"partition_by": ["tenant"]}}]
    with pytest.raises(ConfigError, match=r'routes "r"\.cache\.partition_by\[0\]'):
        parse_config(bad, "test.yaml")
    unobserved = {**CONFIG, "envoy": {"observe": "off"}}
    with pytest.raises(ConfigError, match=r'routes "r"\.cache\.enabled: the cache fills'):
        parse_config(unobserved, "test.yaml")


def test_envoy_carries_the_cache_headers_only_for_configs_with_a_cache() -> None:
    from extproc.envoy_config import render

    def rendered(config: dict[str, Any]) -> tuple[set[str], str]:
        hcm = render(parse_config(config, "t.yaml"))["static_resources"]["listeners"][0]
        manager = hcm["filter_chains"][0]["filters"][0]["typed_config"]
        host = manager["route_config"]["virtual_hosts"][0]
        lua = manager["http_filters"][0]["typed_config"]["default_source_code"]["inline_string"]
        return {a["header"]["key"] for a in host["response_headers_to_add"]}, lua

    names, lua = rendered(CONFIG)
    assert {"x-switchyard-cache", "x-switchyard-cache-fill"} <= names
    assert 'remove("x-switchyard-cache-fill")' in lua  # the client never sees the token
    plain = {**CONFIG, "routes": [{"name": "r", "backends": [{"backend": "b"}]}]}
    names, lua = rendered(plain)
    assert "x-switchyard-cache" not in names and "envoy_on_response" not in lua


def test_observing_only_canaries_still_observes_a_cached_route() -> None:
    from extproc.envoy_config import OBSERVE_FILTER, render

    def routes(envoy: dict[str, object]) -> dict[str, dict]:  # type: ignore[type-arg]
        config = parse_config({**CONFIG, "envoy": envoy}, "t.yaml")
        listener = render(config)["static_resources"]["listeners"][0]
        manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
        return {r["name"]: r for r in manager["route_config"]["virtual_hosts"][0]["routes"]}

    every = routes({"observe": "canaries", "observe_sample": 1})
    assert OBSERVE_FILTER not in every["r.stable.b"].get("typed_per_filter_config", {})
    assert OBSERVE_FILTER in every["plain.stable.b"]["typed_per_filter_config"]
    # Sampled (the default): a fill marks its request, which takes the observed variant.
    sampled = routes({"observe": "canaries"})
    assert OBSERVE_FILTER not in sampled["r.stable.b.observed"].get("typed_per_filter_config", {})
    assert OBSERVE_FILTER in sampled["plain.stable.b"]["typed_per_filter_config"]


def _response_headers(values: dict[str, str]) -> Any:
    from proto import core_pb2, ext_proc_pb2

    headers = core_pb2.HeaderMap(
        headers=[core_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in values.items()]
    )
    return ext_proc_pb2.ProcessingRequest(
        response_headers=ext_proc_pb2.HttpHeaders(headers=headers), observability_mode=True
    )


def _response_body(chunk: bytes, end: bool) -> Any:
    from proto import ext_proc_pb2

    return ext_proc_pb2.ProcessingRequest(
        response_body=ext_proc_pb2.HttpBody(body=chunk, end_of_stream=end),
        observability_mode=True,
    )


async def test_the_observer_fills_from_a_streamed_response_and_skips_hits() -> None:
    from extproc.response.observe import ObserveStream
    from extproc.rollout.metrics import RolloutMetrics
    from extproc.rollout.traffic import TrafficStats

    cache = _cache()
    traffic = TrafficStats(RolloutMetrics())
    # Every stable response in the A/B totals, so that the count below is exact.
    config = parse_config({**CONFIG, "envoy": {"observe_sample": 1}}, "t.yaml")
    lookup = await _ask(cache, "How do I export my data?")
    answer = read_answer(200, "application/json", json.dumps(COMPLETE).encode())
    assert answer is not None
    stream = render_sse(answer)
    observer = ObserveStream(config, traffic, cache=cache)
    routed = {":status": "200", "content-type": "text/event-stream", "x-switchyard-route": "r"}
    observer.on_message(_response_headers({**routed, "x-switchyard-cache-fill": lookup.fill_token}))
    half = len(stream) // 2
    observer.on_message(_response_body(stream[:half], False))
    observer.on_message(_response_body(stream[half:], True))
    await asyncio.gather(*cache._tasks)
    assert (await _ask(cache, "How do I export my data?")).result == "hit"
    assert traffic.snapshot()[0]["requests"] == 1
    hit = ObserveStream(config, traffic, cache=cache)
    hit.on_message(_response_headers({**routed, "x-switchyard-cache": "hit"}))
    hit.on_message(_response_body(b"{}", True))
    assert traffic.snapshot()[0]["requests"] == 1  # a hit is no backend's answer
