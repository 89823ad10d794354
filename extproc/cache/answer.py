"""A cached answer: taken from an observed response, served back as JSON or SSE.

Only a complete answer is kept: status 200, one choice whose finish_reason is
"stop", text content, usage, no tool or function call, and (for a stream) every
event up to `[DONE]`. Anything else (an error, a truncated answer, a refusal to
finish, a tool call) is never cached. extproc.response.reader reads the body.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

from extproc.response.reader import Completion

STREAM_PIECE_CHARS = 64
"""A replayed stream carries the answer in pieces of about this many characters."""


@dataclass(frozen=True)
class CachedAnswer:
    id: str
    model: str
    content: str
    prompt_tokens: int
    completion_tokens: int
    created: int

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> CachedAnswer:
        return cls(**json.loads(text))


def cacheable(status: int, completion: Completion | None) -> CachedAnswer | None:
    """The answer to keep, if this response is one complete answer."""
    if status != 200 or completion is None or not completion.ended:
        return None
    if completion.choices != 1 or completion.finish_reason != "stop" or completion.tool_calls:
        return None
    if not completion.content or completion.usage is None:
        return None
    return CachedAnswer(
        id=completion.id,
        model=completion.model,
        content=completion.content,
        prompt_tokens=completion.usage.prompt_tokens,
        completion_tokens=completion.usage.completion_tokens,
        created=completion.created or int(time.time()),
    )


def _usage_json(answer: CachedAnswer) -> dict[str, int]:
    return {
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": answer.completion_tokens,
        "total_tokens": answer.prompt_tokens + answer.completion_tokens,
    }


def render_json(answer: CachedAnswer) -> bytes:
    """The chat.completion a client gets on a hit: the cached answer, with its id."""
    body = {
        "id": answer.id,
        "object": "chat.completion",
        "created": answer.created,
        "model": answer.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer.content},
                "finish_reason": "stop",
            }
        ],
        "usage": _usage_json(answer),
    }
    return json.dumps(body, ensure_ascii=False).encode()


def render_sse(answer: CachedAnswer) -> bytes:
    """The cached answer replayed as chat.completion.chunk events, then a usage event
    (choices: []) and [DONE], the way OpenAI streams end with include_usage."""
    base = {
        "id": answer.id,
        "object": "chat.completion.chunk",
        "created": answer.created,
        "model": answer.model,
    }
    text = answer.content
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    deltas += [
        {"content": text[i : i + STREAM_PIECE_CHARS]}
        for i in range(0, len(text), STREAM_PIECE_CHARS)
    ]
    events = [
        {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        for delta in deltas
    ]
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    events.append({**base, "choices": [], "usage": _usage_json(answer)})
    out = b"".join(
        b"data: " + json.dumps(event, ensure_ascii=False).encode() + b"\n\n" for event in events
    )
    return out + b"data: [DONE]\n\n"
