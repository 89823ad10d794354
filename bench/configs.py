"""The switchyard configs and the prompts the benchmark sends.

Every backend of a config points at the one fast backend: the scenarios differ
only in what decides the route, never in what answers. Apart from addresses,
each config keeps the product's defaults (timeouts, classifier settings), so
the numbers are those of a default deployment.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml

from bench.procs import REPO
from extproc.tools.devstack import free_ports
from tests.e2e.stack import free_port

MODEL_DIR = REPO / "build" / "model"
SYSTEM_PROMPT = "You are a helpful assistant. Answer briefly."

RULE_ROUTES: list[dict[str, Any]] = [
    {"name": "clinical", "match": {"keywords": ["dosage", "symptom"]},
     "backends": [{"backend": "med"}]},
    {"name": "code", "match": {"regex": r"(?i)\bpython\b|\bstack trace\b"},
     "backends": [{"backend": "coder"}]},
    {"name": "premium", "match": {"model": ["gpt-premium"]}, "backends": [{"backend": "big"}]},
    {"name": "beta", "match": {"header": {"name": "x-tenant", "value": "beta"}},
     "backends": [{"backend": "big"}]},
    {"name": "general", "backends": [{"backend": "cheap"}]},
]  # fmt: skip
RULES_PROMPT = (
    "My Python script prints a stack trace when it reads the config file at startup. "
    "How do I find which line fails?"
)
RULES_ROUTE = "code"
"""Where switchyard routes RULES_PROMPT: the trivial processor sets this route header."""

LABELS: list[dict[str, Any]] = [
    {"name": "medical", "examples": [
        "What dose of ibuprofen is safe for a child?",
        "I have had a fever and a sore throat for three days",
        "Can I take paracetamol with antibiotics?",
        "What are the symptoms of a migraine?",
        "How long does a sprained ankle take to heal?",
    ]},
    {"name": "coding", "examples": [
        "My Python script raises a KeyError when I read the JSON file",
        "How do I reverse a linked list in Java?",
        "Write a SQL query that counts orders per customer",
        "Why does my React component render twice?",
        "Explain this stack trace from my Go program",
    ]},
    {"name": "finance", "examples": [
        "How much tax do I pay on stock dividends?",
        "Should I pay off my loan early or invest?",
        "What is a good interest rate for a savings account?",
        "How do index funds work?",
        "Compare a fixed and a variable mortgage",
    ]},
    {"name": "travel", "examples": [
        "Plan a three day trip to Lisbon",
        "Which train goes from Paris to Geneva?",
        "Find a cheap hotel near the beach in Barcelona",
        "What should I pack for a week of hiking in Norway?",
        "Do I need a visa to visit Japan?",
    ]},
]  # fmt: skip
REPEATED_PROMPTS = [
    "What dose of ibuprofen is safe for a seven year old child with a fever of thirty nine?",
    "My Python script prints a stack trace when it reads the config file. How do I find it?",
    "Should I pay off my student loan early, or put the money into an index fund instead?",
    "Plan a relaxed three day trip to Lisbon in May with good food, a museum and a beach.",
    "I have had a headache and a sore throat for three days. When should I see a doctor?",
    "Write a SQL query that lists the ten customers with the most orders last year.",
    "How much tax do I pay on dividends from stocks I hold in a brokerage account?",
    "Write a short poem about the sea in winter, in the style of a folk song, four verses.",
]


HEAVY_BYTES = 900_000
_HEAVY_LINE = (
    "Here is the next part of the log and the code that produced it; what goes wrong? "
    'rows = [{"id": i, "tags": ["a", "b"]} for i in range(10)]  # see {x} and [y]\n'
)


def heavy_body(size: int = HEAVY_BYTES) -> bytes:
    """A ~900 KB prompt of prose and code (brackets, quotes and newlines inside one string)."""
    text = (_HEAVY_LINE * (size // len(_HEAVY_LINE) + 1))[:size]
    return chat_body(text)


def chat_body(prompt: str, user: str | None = None) -> bytes:
    """An OpenAI chat completion request as clients send it: a system and a user message
    (and the body's `user`, which the cache scenarios partition by)."""
    body: dict[str, Any] = {
        "model": "any",
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": prompt},
        ],
        "max_tokens": 256,
    }
    if user is not None:
        body["user"] = user
    return json.dumps(body).encode()


CACHE_USER = "bench-tenant"
CACHE_REWORDINGS = [
    RULES_PROMPT,
    "My Python script prints a stack trace when it reads the config file at startup. "
    "How can I find which line fails?",
    "My Python script prints a stack trace when it reads the config file at start-up. "
    "How do I find which line fails?",
    "My Python script shows a stack trace when it reads the config file at startup. "
    "How do I find which line fails?",
]
"""The cache's semantic scenario: the first fills, the others hit by meaning."""


def cache_config(addresses: Addresses, backend_address: str) -> dict[str, Any]:
    """The rules-only config with a cache on the route RULES_PROMPT takes (partitioned by
    the body's user); the encoder is loaded for the cache alone."""
    routes = [
        {**route, "cache": {"enabled": True, "partition_by": ["user"]}}
        if route["name"] == RULES_ROUTE
        else route
        for route in RULE_ROUTES
    ]
    return {
        **_base(addresses, backend_address, observe=True),
        "classifier": {"model": str(MODEL_DIR)},
        "routes": routes,
        "default_route": "general",
    }


@dataclass(frozen=True)
class Addresses:
    """The ports of one Envoy + processor pair."""

    listen: int
    admin: int
    grpc: int
    metrics: int

    @classmethod
    def pick(cls, workers: int = 1) -> Addresses:
        """With several workers, worker i serves on the gRPC and metrics ports + i."""
        return cls(free_port(), free_port(), free_ports(workers), free_ports(workers))


OBSERVE_ALL = 1.0
"""envoy.observe_sample of the stacks that show the cost of observing every response (the
product's default observes a tenth of stable's)."""


def _base(
    addresses: Addresses, backend_address: str, observe: bool, sample: float | None = None
) -> dict[str, Any]:
    sampled = {} if sample is None else {"observe_sample": sample}
    return {
        "server": {
            "listen": f"127.0.0.1:{addresses.grpc}",
            "metrics_listen": f"127.0.0.1:{addresses.metrics}",
        },
        "envoy": {
            "listen": f"127.0.0.1:{addresses.listen}",
            "admin": f"127.0.0.1:{addresses.admin}",
            "stats_listen": None,  # the benchmark reads the admin directly
            "observe": "all" if observe else "off",
            **sampled,
        },
        "backends": [
            {"name": name, "address": backend_address} for name in ("med", "coder", "big", "cheap")
        ],
    }


def rules_config(
    addresses: Addresses, backend_address: str, *, observe: bool, sample: float | None = None
) -> dict[str, Any]:
    """Keywords, regex, model and header routes: no label, so no model is loaded."""
    return {
        **_base(addresses, backend_address, observe, sample),
        "routes": RULE_ROUTES,
        "default_route": "general",
    }


def failover_config(addresses: Addresses, backend_address: str, *, kind: str) -> dict[str, Any]:
    """RULES_ROUTE's first choice is a backend nobody listens on (connection refused), so
    every request takes a second attempt: `retry` (the canary at 100 %, retried on stable)
    or `fallback` (the route's fallback)."""
    config = rules_config(addresses, backend_address, observe=True)
    down = f"127.0.0.1:{free_port()}"
    config["backends"] = [*config["backends"], {"name": "down", "address": down}]
    routes = []
    for route in RULE_ROUTES:
        if route["name"] == RULES_ROUTE and kind == "retry":
            route = {
                **route,
                "canary": {"backend": "down", "percent": 100, "steps": [100], "auto": False},
            }
        elif route["name"] == RULES_ROUTE:
            route = {**route, "backends": [{"backend": "down"}], "fallbacks": route["backends"]}
        routes.append(route)
    config["routes"] = routes
    return config


def product_labels() -> tuple[list[dict[str, Any]], dict[str, Any], str]:
    """The labels and classifier settings of the repo's switchyard.yaml, when it has labels.

    The benchmark then classifies against the label set users get. A label whose action
    is block is routed instead: a random-word prompt that looks like one would count as
    an error (403), not as routing work. Without labels there, LABELS is used.
    """
    path = REPO / "switchyard.yaml"
    data = yaml.safe_load(path.read_text()) if path.exists() else None
    if not isinstance(data, dict) or not data.get("labels"):
        return LABELS, {}, "bench/configs.py (switchyard.yaml has no labels)"
    labels = [{**label, "action": "route"} for label in data["labels"]]
    classifier = {k: v for k, v in (data.get("classifier") or {}).items() if k != "model"}
    blocked = [label["name"] for label in data["labels"] if label.get("action") == "block"]
    note = f"switchyard.yaml ({len(labels)} labels"
    note += f"; {', '.join(blocked)} routed, not blocked)" if blocked else ")"
    return labels, classifier, note


def semantic_config(
    addresses: Addresses, backend_address: str, sample: float | None = None
) -> dict[str, Any]:
    """Label routes: every chat request is classified by the ONNX encoder."""
    labels, classifier, _ = product_labels()
    backends = ("med", "coder", "big")
    routes: list[dict[str, Any]] = [
        {
            "name": f"label-{label['name']}",
            "match": {"label": label["name"]},
            "backends": [{"backend": backends[i % len(backends)]}],
        }
        for i, label in enumerate(labels)
    ]
    routes.append({"name": "general", "backends": [{"backend": "cheap"}]})
    return {
        **_base(addresses, backend_address, observe=True, sample=sample),
        "classifier": {**classifier, "model": str(MODEL_DIR)},
        "labels": labels,
        "routes": routes,
        "default_route": "general",
    }


def with_fleet_state(config: dict[str, Any], route: str, redis_url: str) -> dict[str, Any]:
    """`config` with its rollout state in Redis and a 5 % canary on `route`, so that the
    shared store has something to keep: the request path then also does the canary's
    bookkeeping (cohort hash, per-second buckets flushed to Redis)."""
    return {**with_canary(config, route), "state": {"store": "redis", "redis_url": redis_url}}


def with_workers(config: dict[str, Any], workers: int) -> dict[str, Any]:
    """`config` served by `workers` processes (server.workers; its addresses from
    Addresses.pick(workers))."""
    return {**config, "server": {**config["server"], "workers": workers}}


def with_envoy_analysis(config: dict[str, Any], route: str) -> dict[str, Any]:
    """`config` with a 5 % canary on `route` judged from Envoy's statistics, observe off."""
    config = with_canary(config, route)
    envoy = {**config["envoy"], "observe": "off"}
    return {**config, "envoy": envoy, "analysis": {"source": "envoy"}}


def with_canary(config: dict[str, Any], route: str) -> dict[str, Any]:
    routes = []
    for item in config["routes"]:
        if item["name"] == route:
            stable = {b["backend"] for b in item["backends"]}
            spare = next(b["name"] for b in config["backends"] if b["name"] not in stable)
            item = {**item, "canary": {"backend": spare, "percent": 5, "auto": False}}
        routes.append(item)
    return {**config, "routes": routes}
