"""Adapting a routed chat request to the backend that will answer it.

The backend is known before Envoy forwards (extproc.upstream.backend_for), so
switchyard rewrites what only the body or the path can carry: the model name
the backend serves, a path prefix and query parameters it needs. Headers that
belong to a backend (its credential, its Host) are set by Envoy per cluster.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
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
    if adapter is None:
        return NO_REWRITE
    body = None
    if adapter.model is not None and chat.model != adapter.model:
        data = {**chat.data, "model": adapter.model}
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    new_path = None
    if adapter.path_prefix or adapter.query:
        new_path = adapter.path_prefix + path
        if adapter.query:
            new_path += ("&" if "?" in path else "?") + adapter.query
    if body is None and new_path is None:
        return NO_REWRITE
    return Rewrite(body=body, path=new_path)
