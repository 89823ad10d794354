"""What must match exactly for two requests to share an answer, and the partition.

A request's *scope* is everything but its last user message: the partition, the
route, the backend that would answer, the request's model and generation
parameters, the system prompt and every earlier turn. Two requests may share an
answer only within one scope; inside it the last user message matches exactly
(after folding case and spaces) or by meaning (extproc.cache.service).

Partition values (a tenant id, a user) are kept only as digests: a purge names
them (`--partition acme`) and is matched by digest.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from extproc import headers as h
from extproc.request.chat import ChatRequest

NOT_KEYED = frozenset({"messages", "stream", "stream_options", "user"})
"""Body fields outside the scope: the messages are keyed on their own, streaming only
changes the answer's framing (a cached answer is served either way), and `user` is an
identity, which partitions only when partition_by lists it."""


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def partition_digest(source: str, value: str) -> str:
    """One partition component as stored: "header:x-tenant-id" = "acme" -> a digest."""
    return _digest("partition", source, value)[:32]


def _source_value(source: str, headers: Mapping[str, str], chat: ChatRequest) -> str | None:
    if source == "user":
        return chat.user
    if source == "client":
        # The name Envoy's client key check found (auth.keys_file).
        return headers.get(h.CLIENT_NAME) or None
    if source.startswith("header:"):
        return headers.get(source.removeprefix("header:")) or None
    name = source.removeprefix("cookie:")
    for part in headers.get("cookie", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return value
    return None


def partition(
    sources: Sequence[str], headers: Mapping[str, str], chat: ChatRequest
) -> tuple[str, ...] | None:
    """The request's partition (one digest per source), or None when it has none of them."""
    values = [_source_value(source, headers, chat) for source in sources]
    if all(value is None for value in values):
        return None
    return tuple(
        partition_digest(source, value) if value is not None else ""
        for source, value in zip(sources, values, strict=True)
    )


_SPACES = re.compile(r"\s+")


def normalise(question: str) -> str:
    """Exact matching ignores case and runs of spaces, nothing else (punctuation stays:
    "not?" and "not!" may differ in meaning less than a comma can)."""
    return _SPACES.sub(" ", question).strip().casefold()


@dataclass(frozen=True)
class RequestKey:
    scope: str
    """Digest of everything that must match exactly."""
    exact: str
    """scope + the normalised last user message."""
    question: str
    """The last user message as sent (for the guard and the embedding)."""
    partition: tuple[str, ...]


def request_key(
    chat: ChatRequest,
    headers: Mapping[str, str],
    *,
    route: str,
    backend: str,
    partition_by: Sequence[str],
) -> RequestKey | None:
    """None for a request the cache cannot serve: no partition source present, or a
    conversation that does not end with a user's text message."""
    found = partition(partition_by, headers, chat)
    if found is None:
        return None
    messages: list[Any] = chat.data.get("messages", [])
    last = messages[-1] if messages else None
    if not isinstance(last, dict) or last.get("role") != "user":
        return None
    question = last.get("content")
    if not isinstance(question, str) or not question.strip():
        return None
    parameters = {k: v for k, v in chat.data.items() if k not in NOT_KEYED}
    context = json.dumps(
        {"parameters": parameters, "earlier": messages[:-1], "last_role": last.get("name")},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    scope = _digest("scope", route, backend, *found, context)
    return RequestKey(
        scope=scope,
        exact=_digest("exact", scope, normalise(question)),
        question=question,
        partition=found,
    )
