"""Conversations without any session id, through real Envoy: the fingerprint keeps a 5 %
canary near 5 % and every conversation on one backend while it grows."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.stack import Reply, Stack, make_config, running_stack
from tests.e2e.test_canary import within_binomial

pytestmark = pytest.mark.e2e

STABLE = ["chat-a", "chat-b"]
CANARY = "chat-next"
ROUTES = [
    {
        "name": "chat",
        "backends": [{"backend": name} for name in STABLE],
        "canary": {"backend": CANARY, "percent": 5, "auto": False},
    }
]
GREETINGS = [
    "Hello", "Hi", "hello", "Hey", "Bonjour", "Help", "Hi there", "Good morning", "Hola", "hi",
]  # fmt: skip
SYSTEM_PROMPTS = [None, "You are a helpful assistant.", "You answer billing questions."]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # One trusted proxy (a load balancer) in front of Envoy writes x-forwarded-for.
    config = make_config([*STABLE, CANARY], ROUTES, "chat", envoy={"trusted_proxy_hops": 1})
    with running_stack(tmp_path_factory.mktemp("fingerprint"), config) as stack:
        yield stack


def client_headers(index: int) -> dict[str, str]:
    """400 clients: a third share one API key (told apart by address), a third share one
    address (told apart by key), the rest differ in both; none sends a session id."""
    address = f"10.20.{index // 256}.{index % 256}"
    if index % 3 == 0:
        return {"authorization": "Bearer team-key", "x-forwarded-for": address}
    if index % 3 == 1:
        return {"x-api-key": f"key-{index}", "x-forwarded-for": "192.0.2.10"}
    return {"authorization": f"Bearer key-{index}", "x-forwarded-for": address}


def send(stack: Stack, headers: dict[str, str], messages: list[dict[str, str]]) -> Reply:
    body = json.dumps({"model": "any", "messages": messages}).encode()
    reply = stack.client.request(body, headers)
    assert reply.status == 200, reply.body
    return reply


def converse(stack: Stack, headers: dict[str, str], system: str | None, opener: str) -> list[str]:
    """Two turns, each resending the whole history; the backend of each turn."""
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": opener})
    first = send(stack, headers, messages)
    messages += [
        {"role": "assistant", "content": "Hello! What can I do for you?"},
        {"role": "user", "content": "Tell me more about that."},
    ]
    return [first.backend, send(stack, headers, messages).backend]


def test_2000_conversations_without_session_ids_split_like_the_canary_share(
    stack: Stack,
) -> None:
    rng = random.Random(2000)
    zipf = [1 / rank for rank in range(1, len(GREETINGS) + 1)]
    plan = []
    for n in range(2000):
        greeting = rng.random() < 0.30
        opener = rng.choices(GREETINGS, weights=zipf)[0] if greeting else f"question {n}"
        plan.append((client_headers(n % 400), rng.choice(SYSTEM_PROMPTS), opener))

    with ThreadPoolExecutor(8) as pool:
        turns = list(pool.map(lambda p: converse(stack, *p), plan))

    assert all(len(set(backends)) == 1 for backends in turns), "a conversation moved"
    canary = sum(backends[0] == CANARY for backends in turns)
    assert within_binomial(canary, 2000, 0.05), canary
    # The greetings alone, which the opening message would have put in ~9 cohorts.
    greeted = [b[0] for b, (_, _, opener) in zip(turns, plan, strict=True) if opener in GREETINGS]
    assert within_binomial(greeted.count(CANARY), len(greeted), 0.05), greeted.count(CANARY)


def test_a_conversation_keeps_its_backend_as_its_history_grows(stack: Stack) -> None:
    headers = client_headers(2)
    history = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Hello"},
    ]
    backend = send(stack, headers, history).backend
    for turn in range(6):
        history += [
            {"role": "assistant", "content": f"answer {turn}"},
            {"role": "user", "content": f"follow-up {turn}"},
        ]
        assert send(stack, headers, history).backend == backend


@pytest.mark.parametrize("group", [0, 1], ids=["same-key-other-address", "same-address-other-key"])
def test_one_greeting_from_many_clients_spreads_over_backends(stack: Stack, group: int) -> None:
    hello = [{"role": "user", "content": "Hello"}]
    backends = {send(stack, client_headers(i), hello).backend for i in range(group, 240, 3)}
    # 80 clients on a 50/50 stable split: one backend for all would mean one key for all.
    assert set(STABLE) <= backends, backends


def test_the_client_address_cannot_be_forged_past_the_trusted_proxy(stack: Stack) -> None:
    hello = [{"role": "user", "content": "Hello"}]
    senders = [client_headers(i) for i in range(0, 120, 3)]  # told apart by address only
    honest = [send(stack, headers, hello).backend for headers in senders]
    forged = [
        send(
            stack,
            {
                **headers,
                # Entries left of the trusted proxy's and a direct header are ignored.
                "x-forwarded-for": f"203.0.113.9, {headers['x-forwarded-for']}",
                "x-switchyard-client": "203.0.113.9",
            },
            hello,
        ).backend
        for headers in senders
    ]
    assert forged == honest
    assert len(set(honest)) > 1
