"""What the routing stream asks a response cache, and what it answers.

The routing stream (extproc.request.processor) needs only `lookup`; the cache
(extproc.cache.service) answers it. Named here so the request path does not
import the cache, which reads requests (extproc.request.chat) itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from extproc.request.chat import ChatRequest

HIT, MISS, BYPASS = "hit", "miss", "bypass"


@dataclass(frozen=True)
class Lookup:
    result: str
    """hit, miss or bypass."""
    body: bytes = b""
    """On a hit: the response to send."""
    content_type: str = ""
    fill_token: str | None = None


class CacheLookup(Protocol):
    async def lookup(
        self,
        chat: ChatRequest,
        headers: Mapping[str, str],
        *,
        route: str,
        backend: str,
        cohort: str,
    ) -> Lookup | None:
        """None for a route without a cache."""
        ...
