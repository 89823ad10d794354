"""Adapting a routed chat request to the backend that will answer it.

The backend is known before Envoy forwards (extproc.upstream.backend_for), so
switchyard rewrites what only the body or the path can carry: the model name
the backend serves, a path prefix and query parameters it needs. Headers that
belong to a backend (its credential, its Host) are set by Envoy per cluster.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from extproc.config import BackendConfig, Config
from extproc.request.chat import ChatRequest


@dataclass(frozen=True)
class BackendAdapter:
    model: str | None
    path_prefix: str
    query: str
    """URL-encoded extra parameters, empty when there are none."""

    @classmethod
    def from_config(cls, backend: BackendConfig) -> BackendAdapter:
        return cls(
            model=backend.model,
            path_prefix=backend.path_prefix or "",
            query=urlencode(backend.query),
        )


@dataclass(frozen=True)
class Rewrite:
    body: bytes | None = None
    """The new body, or None to leave the client's bytes untouched."""
    path: str | None = None
    strip_usage: bool = False
    """Usage was asked for on the client's behalf: remove it from the stream."""


NO_REWRITE = Rewrite()


def compile_adapters(config: Config) -> dict[str, BackendAdapter]:
    """Only the backends that need a rewrite are in the result."""
    adapters = {b.name: BackendAdapter.from_config(b) for b in config.backends}
    return {
        name: adapter
        for name, adapter in adapters.items()
        if adapter.model or adapter.path_prefix or adapter.query
    }


def rewrite(adapter: BackendAdapter | None, chat: ChatRequest, path: str) -> Rewrite:
    changes: dict[str, Any] = {}
    if adapter is not None and adapter.model is not None and chat.model != adapter.model:
        changes["model"] = adapter.model
    ask_usage = chat.stream and not chat.include_usage
    if ask_usage:
        # Backends send a stream's token usage only when asked; Envoy's response
        # filter removes that extra event before the client sees it (envoy_config).
        options = chat.data.get("stream_options")
        changes["stream_options"] = {
            **(options if isinstance(options, dict) else {}),
            "include_usage": True,
        }
    body = None
    if changes:
        body = json.dumps({**chat.data, **changes}, ensure_ascii=False, separators=(",", ":"))
    new_path = None
    if adapter is not None and (adapter.path_prefix or adapter.query):
        new_path = adapter.path_prefix + path
        if adapter.query:
            new_path += ("&" if "?" in path else "?") + adapter.query
    if body is None and new_path is None:
        return NO_REWRITE
    return Rewrite(
        body=body.encode() if body is not None else None, path=new_path, strip_usage=ask_usage
    )
