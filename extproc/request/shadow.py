"""The copy of a shadowed request, rewritten for the route's shadow backend.

Envoy's router copies a shadowed session's request (request_mirror_policies) to an
internal listener whose routing filter sends it here: the copy carries the body
rewritten for the primary backend and, in the shadow header, the client's path.
No classification and no decision: the route is already known. The copy is rewritten
for the shadow backend and marked cohort `shadow`, which the observing filter on that
listener then records.
"""

from __future__ import annotations

from collections.abc import Mapping

from extproc import headers as h
from extproc.request.adapt import rewrite
from extproc.request.chat import ChatRequest
from extproc.request.runtime import Runtime


def is_shadow_copy(headers: Mapping[str, str]) -> bool:
    """Only Envoy's copy carries the header: the ingress strips it from every client request."""
    return h.SHADOW in headers


def shadow_rewrite(
    runtime: Runtime, chat: ChatRequest, headers: Mapping[str, str]
) -> tuple[dict[str, str], bytes | None]:
    """The headers to set on the copy, and its new body (None: the copy's bytes stand)."""
    changes = {h.COHORT: h.SHADOW_COHORT}
    route = next((r for r in runtime.config.routes if r.name == headers.get(h.ROUTE)), None)
    if route is None or route.shadow is None:
        return changes, None  # a config changed meanwhile: the shadow listener drops it
    path = headers[h.SHADOW] or headers.get(":path", "")
    rewritten = rewrite(runtime.adapters.get(route.shadow.backend), chat, path)
    changes[":path"] = rewritten.path or path
    if rewritten.body is not None and "content-length" in headers:
        changes["content-length"] = str(len(rewritten.body))
    return changes, rewritten.body
