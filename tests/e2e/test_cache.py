"""The response cache through a real Envoy, fake backends, the real encoder and Redis.

One fleet for the whole file: two replicas (Envoy + switchyard each) sharing a real
redis-server, a `support` route with a cache (partitioned by tenant) and a canary that
only the force header reaches. Most tests talk to the first replica; the last ones
check the other replica sees its fills and purges, and that a restart keeps the cache.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.e2e.cache_workload import questions, workload
from tests.e2e.fleet import Fleet, running_fleet
from tests.e2e.stack import (
    MODEL_DIR,
    OBSERVE_ALL,
    Reply,
    Stack,
    http_post,
    make_config,
    wait_until,
)

pytestmark = pytest.mark.e2e

TOKEN = "force-token-for-tests"
CANARY = {"x-switchyard-force-cohort": "canary", "x-switchyard-token": TOKEN}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    routes = [
        {
            "name": "support",
            "backends": [{"backend": "llm"}],
            "canary": {"backend": "llm-v2", "percent": 0, "auto": False},
            "cache": {"enabled": True, "partition_by": ["header:x-tenant-id"]},
        }
    ]
    # Every answer in the A/B totals: they are compared with what the backend served.
    config = make_config(["llm", "llm-v2"], routes, "support", envoy=OBSERVE_ALL)
    config["classifier"] = {"model": str(MODEL_DIR)}  # the cache's encoder; no labels
    config["backends"][0]["price"] = {"prompt_per_1m": 1.0, "completion_per_1m": 2.0}
    workdir = tmp_path_factory.mktemp("cache")
    with running_fleet(workdir, config, 2, env={"SWITCHYARD_FORCE_TOKEN": TOKEN}) as fleet:
        yield fleet


@pytest.fixture(scope="module")
def stack(fleet: Fleet) -> Stack:
    """The replica most tests talk to."""
    return fleet.replicas[0]


def ask(stack: Stack, text: str, tenant: str = "acme", **extra: Any) -> Reply:
    headers = {"x-tenant-id": tenant, **extra.pop("headers", {})}
    body = {"model": "any", "messages": [{"role": "user", "content": text}], **extra}
    return stack.client.request(json.dumps(body).encode(), headers)


def filled(stack: Stack, text: str, tenant: str = "acme") -> Reply:
    """Asks once (a miss) and waits until the answer is in the cache."""
    first = ask(stack, text, tenant)
    assert first.status == 200 and first.headers["x-switchyard-cache"] == "miss", first.headers
    wait_until(
        lambda: (
            ask(stack, text, tenant, headers={"cache-control": "no-cache"}).status == 200
            and ask(stack, text, tenant).headers.get("x-switchyard-cache") == "hit"
        ),
        10,
        "the answer to be cached",
    )
    return first


def test_a_replayed_support_workload_is_mostly_served_from_the_cache(stack: Stack) -> None:
    before = stack.backends["llm"].stats()["requests"]
    answers_of: dict[int, set[str]] = {}
    hits = wrong = 0
    sent = workload()
    for index, text in sent:
        reply = ask(stack, text, tenant="workload")
        assert reply.status == 200, reply.body
        answer_id = reply.json["id"]
        if reply.headers["x-switchyard-cache"] == "hit":
            hits += 1
            wrong += answer_id not in answers_of.get(index, set())
        else:
            answers_of.setdefault(index, set()).add(answer_id)
    rate = hits / len(sent)
    print(f"cache workload: {len(sent)} requests, {len(questions())} distinct, hit rate {rate:.1%}")
    assert rate >= 0.6
    assert wrong == 0  # every hit served an answer the backend gave to its own question
    assert stack.backends["llm"].stats()["requests"] - before == len(sent) - hits
    row = next(r for r in stack.switchyard_stats()["cache"] if r["route"] == "support")
    assert row["hits"] >= hits and row["saved_cost"] > 0
    metrics = stack.metrics_text()
    assert 'switchyard_cache_requests_total{result="hit",route="support"}' in metrics
    # Hits never reached a model: the A/B numbers count only the backend's answers.
    traffic = stack.switchyard_stats()["traffic"]
    assert sum(r["requests"] for r in traffic) == stack.backends["llm"].stats()["requests"]


def test_a_hit_never_crosses_tenants(stack: Stack) -> None:
    filled(stack, "How do I rotate the signing keys?", tenant="acme")
    before = stack.backends["llm"].stats()["requests"]
    other = ask(stack, "How do I rotate the signing keys?", tenant="globex")
    assert other.headers["x-switchyard-cache"] == "miss"
    assert stack.backends["llm"].stats()["requests"] == before + 1
    nobody = ask(stack, "How do I rotate the signing keys?", tenant="")
    assert nobody.headers["x-switchyard-cache"] == "bypass"


def test_the_opposite_question_is_not_served(stack: Stack) -> None:
    filled(stack, "How do I turn on automatic backups?")
    assert (
        ask(stack, "How do I turn off automatic backups?").headers["x-switchyard-cache"] == "miss"
    )
    assert ask(stack, "How can I turn on automatic backups?").headers["x-switchyard-cache"] == "hit"


def test_the_reversed_direction_is_a_miss_and_a_typo_is_a_hit(stack: Stack) -> None:
    """The twin that swaps the currencies reaches the backend; the same question with two
    typos and a greeting around it is served the first answer (issue #31)."""
    filled(stack, "How do I convert USD to EUR in my wallet?", tenant="fx")
    first = ask(stack, "How do I convert USD to EUR in my wallet?", tenant="fx")
    assert first.headers["x-switchyard-cache"] == "hit"  # the answer cached
    before = stack.backends["llm"].stats()["requests"]
    twin = ask(stack, "How do I convert EUR to USD in my wallet?", tenant="fx")
    assert twin.status == 200 and twin.headers["x-switchyard-cache"] == "miss"
    assert stack.backends["llm"].stats()["requests"] == before + 1
    assert twin.json["id"] != first.json["id"]
    typo = ask(stack, "Hi, how do I convrt USD to EUR in my walet? Thanks", tenant="fx")
    assert typo.status == 200 and typo.headers["x-switchyard-cache"] == "hit"
    assert typo.json["id"] == first.json["id"]
    assert stack.backends["llm"].stats()["requests"] == before + 1
    refusals = [
        line
        for line in stack.metrics_text().splitlines()
        if line.startswith("switchyard_cache_guard_refusals_total") and 'reason="direction"' in line
    ]
    assert refusals and float(refusals[0].split()[-1]) >= 1


def test_the_canary_is_never_served_from_the_cache(stack: Stack) -> None:
    filled(stack, "Where do I download my tax forms?")
    reply = ask(stack, "Where do I download my tax forms?", headers=CANARY)
    assert reply.backend == "llm-v2" and reply.headers["x-switchyard-cache"] == "bypass"
    again = ask(stack, "Where do I download my tax forms?", headers=CANARY)
    assert again.backend == "llm-v2"  # and the canary's answer filled nothing either
    wait_until(
        lambda: stack.observed_requests(cohort="canary") == 2,
        10,
        "both canary answers in the A/B numbers",
    )


def test_hits_read_right_in_the_openai_client(stack: Stack) -> None:
    client = openai.OpenAI(
        base_url=f"http://127.0.0.1:{stack.port}/v1",
        api_key="unused",
        default_headers={"x-tenant-id": "openai"},
        max_retries=0,
    )
    messages: Any = [{"role": "user", "content": "How do I merge two accounts?"}]
    first = client.chat.completions.create(model="any", messages=messages)
    wait_until(
        lambda: (
            ask(stack, "How do I merge two accounts?", "openai").headers["x-switchyard-cache"]
            == "hit"
        ),
        10,
        "the answer to be cached",
    )
    raw = client.chat.completions.with_raw_response.create(model="any", messages=messages)
    assert raw.headers["x-switchyard-cache"] == "hit"
    hit = raw.parse()
    assert hit.id == first.id and hit.choices[0].message.content == first.choices[0].message.content
    assert hit.usage is not None and hit.usage.prompt_tokens == first.usage.prompt_tokens  # type: ignore[union-attr]
    chunks = list(
        client.chat.completions.create(
            model="any", messages=messages, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == first.choices[0].message.content
    assert chunks[-1].usage is not None and chunks[-1].choices == []
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


def test_a_stream_fills_and_the_fill_token_stays_inside(stack: Stack) -> None:
    text = "Can I pause my membership for a month?"
    streamed = ask(stack, text, stream=True)
    assert streamed.headers["x-switchyard-cache"] == "miss"
    assert "x-switchyard-cache-fill" not in streamed.headers
    wait_until(
        lambda: ask(stack, text).headers["x-switchyard-cache"] == "hit", 10, "a stream's answer"
    )
    assert ask(stack, text).json["choices"][0]["message"]["content"].strip() == "[llm] answered"


def test_a_backend_error_is_never_cached(stack: Stack) -> None:
    stack.backends["llm"].control(error_rate=1.0, status=503)
    try:
        for _ in range(3):
            reply = ask(stack, "Why is the export stuck at 99 percent?")
            assert reply.status == 503 and reply.headers["x-switchyard-cache"] == "miss"
    finally:
        stack.backends["llm"].control(error_rate=0.0)
    assert ask(stack, "Why is the export stuck at 99 percent?").status == 200


def test_no_cache_skips_the_read_but_fills_and_purge_removes(stack: Stack) -> None:
    text, tenant = "How do I print a receipt?", "purge-me"
    no_cache = {"cache-control": "no-cache"}
    assert ask(stack, text, tenant, headers=no_cache).headers["x-switchyard-cache"] == "bypass"
    wait_until(
        lambda: ask(stack, text, tenant).headers["x-switchyard-cache"] == "hit",
        10,
        "the no-cache request's answer to fill the cache",
    )
    assert ask(stack, text, tenant, headers=no_cache).headers["x-switchyard-cache"] == "bypass"
    time.sleep(0.5)  # that bypass's fill lands after its response
    status, body = http_post(stack.metrics_port, "/cache/purge?partition=purge-me")
    assert status == 200 and json.loads(body)["purged"] >= 1  # loopback, no token configured
    assert ask(stack, text, tenant).headers["x-switchyard-cache"] == "miss"


def test_every_replica_serves_one_cache_and_a_purge_reaches_them_all(fleet: Fleet) -> None:
    here, there = fleet.replicas
    text, tenant = "How do I transfer my licence to a new laptop?", "fleet"
    filled(here, text, tenant)
    wait_until(
        lambda: ask(there, text, tenant).headers["x-switchyard-cache"] == "hit",
        10,
        "the other replica to get the fill",
    )
    status, body = http_post(there.metrics_port, "/cache/purge?route=support&partition=fleet")
    assert status == 200, body
    wait_until(
        lambda: ask(here, text, tenant).headers["x-switchyard-cache"] == "miss",
        10,
        "the purge to reach the first replica",
    )


def test_a_restarted_switchyard_keeps_the_cache(stack: Stack) -> None:
    filled(stack, "How do I close my account permanently?", tenant="durable")
    stack.stop_switchyard()
    stack.start_switchyard()
    wait_until(
        lambda: (
            ask(stack, "How do I close my account permanently?", "durable").headers.get(
                "x-switchyard-cache"
            )
            == "hit"
        ),
        20,
        "the cache loaded from Redis",
    )


def test_an_answer_cut_by_max_tokens_is_never_cached(stack: Stack) -> None:
    text = "What does error code E42 on the terminal mean?"
    for _ in range(3):
        reply = ask(stack, text, max_tokens=1)
        assert reply.status == 200 and reply.headers["x-switchyard-cache"] == "miss"
        assert reply.json["choices"][0]["finish_reason"] == "length"
        time.sleep(0.3)  # a fill, had there been one, lands after the response
    fills = [
        line
        for line in stack.metrics_text().splitlines()
        if line.startswith("switchyard_cache_fills_total") and 'result="not_complete"' in line
    ]
    assert fills and float(fills[0].split()[-1]) >= 3
    # Without the limit the same question is answered whole, and cached.
    assert filled(stack, text).json["choices"][0]["finish_reason"] == "stop"
