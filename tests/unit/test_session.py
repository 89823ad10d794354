"""Session keys without a session id: the fingerprint source and the share it gives a canary."""

from __future__ import annotations

import json
import random
import statistics
from collections import Counter

import pytest

from extproc import headers as h
from extproc.cache.key import partition
from extproc.config import CacheConfig, SessionConfig
from extproc.request.chat import ChatRequest, parse_chat
from extproc.request.session import COHORT_BUCKETS, cohort_bucket, session_key

DEFAULT = SessionConfig()


def body(*messages: tuple[str, str]) -> bytes:
    return json.dumps(
        {"model": "m", "messages": [{"role": r, "content": c} for r, c in messages]}
    ).encode()


def default_key(headers: dict[str, str], chat: ChatRequest) -> str | None:
    return session_key(DEFAULT.sources, headers, chat, fingerprint=DEFAULT.fingerprint)


CLIENT = {"authorization": "Bearer sk-client-1", h.CLIENT: "203.0.113.7"}


def test_defaults_end_with_the_fingerprint_of_credential_address_and_openers() -> None:
    assert DEFAULT.sources[-1] == "fingerprint"
    assert "first_message" not in DEFAULT.sources
    assert DEFAULT.fingerprint == [
        "header:authorization",
        "header:x-api-key",
        "client_address",
        "system_prompt",
        "first_message",
    ]


def test_system_prompt_is_the_first_system_or_developer_message() -> None:
    chat = parse_chat(body(("developer", "Be brief."), ("user", "Hi"), ("system", "later")))
    assert chat.system_prompt == "Be brief."
    assert parse_chat(body(("user", "Hi"))).system_prompt is None
    parts = {"role": "system", "content": [{"type": "text", "text": "Be kind."}]}
    with_parts = json.dumps({"messages": [parts, {"role": "user", "content": "Hi"}]}).encode()
    assert parse_chat(with_parts).system_prompt == "Be kind."


def test_fingerprint_stays_the_same_while_the_conversation_grows() -> None:
    first = parse_chat(body(("system", "You help with taxes."), ("user", "Hello")))
    later = parse_chat(
        body(
            ("system", "You help with taxes."),
            ("user", "Hello"),
            ("assistant", "Hi! How can I help?"),
            ("user", "What can I deduct?"),
            ("assistant", "Several things."),
            ("user", "Such as?"),
        )
    )
    key = default_key(CLIENT, first)
    assert key is not None and key.startswith("fp:")
    assert default_key(CLIENT, later) == key


@pytest.mark.parametrize(
    ("headers", "system"),
    [
        ({**CLIENT, "authorization": "Bearer sk-client-2"}, "S"),
        ({**CLIENT, "x-api-key": "other"}, "S"),
        ({**CLIENT, h.CLIENT: "198.51.100.1"}, "S"),
        (CLIENT, "Another app's prompt"),
    ],
)
def test_one_opener_from_different_clients_or_apps_gets_different_keys(
    headers: dict[str, str], system: str
) -> None:
    base = default_key(CLIENT, parse_chat(body(("system", "S"), ("user", "Hello"))))
    other = default_key(headers, parse_chat(body(("system", system), ("user", "Hello"))))
    assert other != base


def test_fingerprint_keeps_the_credential_out_of_the_key_and_needs_a_part() -> None:
    secret = "sk-very-secret-token"
    key = session_key(
        ["fingerprint"],
        {"x-api-key": secret},
        ChatRequest(None, None, False, ()),
        fingerprint=["header:x-api-key"],
    )
    assert key is not None and secret not in key
    empty = ChatRequest(None, None, False, ())
    assert session_key(["fingerprint"], {}, empty, fingerprint=DEFAULT.fingerprint) is None
    # Parts with no value are skipped over, so a later source still gets its turn.
    sources = ["fingerprint", "header:x-fallback"]
    assert session_key(sources, {"x-fallback": "f"}, empty, fingerprint=["client_address"]) == "f"


def test_first_message_keeps_its_meaning() -> None:
    one = session_key(
        ["first_message"], CLIENT, ChatRequest(None, None, False, ("Hello",)), fingerprint=[]
    )
    two = session_key(
        ["first_message"], {}, ChatRequest(None, None, False, (" Hello ", "more")), fingerprint=[]
    )
    assert one == two


GREETINGS = [
    "Hello", "Hi", "hello", "Hey", "Bonjour", "Help", "Hi there", "Good morning", "Hola", "hi",
]  # fmt: skip
SYSTEM_PROMPTS = [None, None, "You are a helpful assistant.", "You answer billing questions."]


def conversations(
    rng: random.Random, n: int, clients: int
) -> list[tuple[dict[str, str], ChatRequest]]:
    """n conversation openers: 30 % a common greeting (Zipf over ten), the rest unique,
    from `clients` clients, each with its own API key and address."""
    zipf = [1 / rank for rank in range(1, len(GREETINGS) + 1)]
    who = [
        {
            "authorization": f"Bearer sk-{rng.getrandbits(64):016x}",
            h.CLIENT: f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
        }
        for _ in range(clients)
    ]
    out = []
    for i in range(n):
        if rng.random() < 0.30:
            opener = rng.choices(GREETINGS, weights=zipf)[0]
        else:
            opener = f"question {i}: {rng.getrandbits(32):08x}"
        system = rng.choice(SYSTEM_PROMPTS)
        out.append((rng.choice(who), ChatRequest("m", None, False, (opener,), system)))
    return out


def canary_shares(keys: list[str | None], routes: list[str], percent: float) -> list[float]:
    counts = Counter(keys)
    threshold = percent * COHORT_BUCKETS / 100
    return [
        sum(n for key, n in counts.items() if key is not None and cohort_bucket(r, key) < threshold)
        / len(keys)
        for r in routes
    ]


def p95_deviation(shares: list[float], target: float) -> float:
    return statistics.quantiles([abs(s - target) for s in shares], n=20)[-1]


def test_five_percent_canary_stays_near_five_percent_without_session_ids() -> None:
    """10,000 conversations from 2,000 clients, 30 % opening with a common greeting, a 5 %
    canary on 200 routes: the realised share stays within 4-6 % on 95 % of the routes."""
    chats = conversations(random.Random(20), 10_000, clients=2_000)
    routes = [f"route-{i}" for i in range(200)]
    keys = [default_key(headers, chat) for headers, chat in chats]
    assert all(keys)
    shares = canary_shares(keys, routes, 5)
    assert p95_deviation(shares, 0.05) <= 0.01, sorted(shares)[-10:]

    # The old last source, the opening message alone: every "Hello" shares one cohort.
    old_sources = [*DEFAULT.sources[:-1], "first_message"]
    old_keys = [session_key(old_sources, hd, c, fingerprint=[]) for hd, c in chats]
    old = canary_shares(old_keys, routes, 5)
    assert p95_deviation(old, 0.05) > 0.03, sorted(old)[-10:]


def test_the_client_named_by_envoys_key_check_is_a_session_and_cache_source() -> None:
    chat = parse_chat(body(("user", "hello")))
    sources = ["header:x-session-id", "client", "fingerprint"]
    named = {h.CLIENT_NAME: "alice", **CLIENT}
    assert session_key(sources, named, chat, fingerprint=DEFAULT.fingerprint) == "alice"
    anonymous = session_key(sources, CLIENT, chat, fingerprint=DEFAULT.fingerprint)
    assert anonymous is not None and anonymous.startswith("fp:")
    assert SessionConfig(sources=["client"]).sources == ["client"]
    assert partition(["client"], named, chat) != partition(["client"], {h.CLIENT_NAME: "bob"}, chat)
    assert partition(["client"], CLIENT, chat) is None  # no name: not cached
    assert CacheConfig(partition_by=["client"]).partition_by == ["client"]
