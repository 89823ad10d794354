"""Session keys and the hashes that keep a session on one cohort and one backend.

Everything here is a pure function of the request, so every replica with the
same config makes the same choice without sharing state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from http.cookies import CookieError, SimpleCookie

from extproc import headers as h
from extproc.request.chat import ChatRequest

COHORT_BUCKETS = 10_000
"""Cohort resolution: 0.01 % of sessions."""


def _cookie(header: str, name: str) -> str | None:
    cookies: SimpleCookie = SimpleCookie()
    try:
        cookies.load(header)
    except CookieError:
        return None
    morsel = cookies.get(name)
    return morsel.value if morsel and morsel.value else None


def _fingerprint(parts: Sequence[str], headers: Mapping[str, str], chat: ChatRequest) -> str | None:
    """SHA-256 over the configured parts, or None when none of them has a value."""
    hashed: list[bytes] = []  # hashed at once: the digest of their concatenation
    found = False
    for part in parts:
        kind, _, name = part.partition(":")
        value: str | None = None
        if kind == "header":
            # A credential (authorization, x-api-key) only ever enters the hash.
            value = headers.get(name)
        elif kind == "client_address":
            value = headers.get(h.CLIENT)
        elif kind == "system_prompt":
            value = chat.system_prompt.strip() if chat.system_prompt else None
        elif kind == "first_message" and chat.user_messages:
            value = chat.user_messages[0].strip()
        encoded = (value or "").encode()
        found = found or bool(encoded)
        # Length-prefixed, so that different lists of values never hash alike.
        hashed += (b"%d:" % len(encoded), encoded)
    return "fp:" + hashlib.sha256(b"".join(hashed)).hexdigest() if found else None


def session_key(
    sources: Sequence[str],
    headers: Mapping[str, str],
    chat: ChatRequest,
    *,
    fingerprint: Sequence[str],
) -> str | None:
    """The value of the first configured source the request carries, or None.

    `fingerprint` lists the parts of the `fingerprint` source (session.fingerprint).
    """
    for source in sources:
        kind, _, name = source.partition(":")
        value: str | None = None
        if kind == "header":
            value = headers.get(name) or None
        elif kind == "cookie":
            cookie_header = headers.get("cookie")
            value = _cookie(cookie_header, name) if cookie_header else None
        elif kind == "user":
            value = chat.user
        elif kind == "client":
            # The name Envoy's client key check found (auth.keys_file).
            value = headers.get(h.CLIENT_NAME) or None
        elif kind == "first_message" and chat.user_messages:
            # The opening message identifies a conversation that carries no id:
            # it is resent, unchanged, with every later turn.
            value = hashlib.sha256(chat.user_messages[0].strip().encode()).hexdigest()
        elif kind == "fingerprint":
            # The opening message alone puts every "Hello" in one cohort: mixed with
            # who is asking, conversations spread like the clients do.
            value = _fingerprint(fingerprint, headers, chat)
        if value:
            return value
    return None


def _hash64(salt: str, key: str) -> int:
    digest = hashlib.blake2b(f"{salt}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def sticky_value(key: str) -> int:
    """For Envoy's weighted_clusters header_name, which picks by this value modulo the weights."""
    # 2**53 keeps the value exact for any consumer that parses it as a double.
    return _hash64("sticky", key) % (1 << 53)


def cohort_bucket(route: str, key: str) -> int:
    """0..COHORT_BUCKETS-1; a session is canary when bucket < percent * 100.

    Raising the percentage only adds buckets, so a canary session stays canary.
    """
    return _hash64(f"cohort:{route}", key) % COHORT_BUCKETS
