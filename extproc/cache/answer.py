"""A cached answer: read from an observed response, served back as JSON or SSE.

Only a complete answer is kept: status 200, one choice whose finish_reason is
"stop", text content, no tool or function call, and (for a stream) every event up
to `[DONE]`. Anything else (an error, a truncated answer, a refusal to finish, a
tool call) reads as None and is never cached.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

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


def _complete_choice(choice: Any) -> str | None:
    """The text of a finished, tool-free choice, else None."""
    if not isinstance(choice, dict) or choice.get("finish_reason") != "stop":
        return None
    message = choice.get("message")
    if not isinstance(message, dict) or message.get("tool_calls") or message.get("function_call"):
        return None
    content = message.get("content")
    return content if isinstance(content, str) and content else None


def _usage(usage: Any) -> tuple[int, int] | None:
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if isinstance(prompt, int) and isinstance(completion, int):
        return prompt, completion
    return None


def from_json_body(body: bytes) -> CachedAnswer | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("object") != "chat.completion":
        return None
    choices = data.get("choices")
    if not isinstance(choices, list) or len(choices) != 1:
        return None
    content = _complete_choice(choices[0])
    usage = _usage(data.get("usage"))
    if content is None or usage is None:
        return None
    return _answer(data, content, usage)


def _answer(meta: dict[str, Any], content: str, usage: tuple[int, int]) -> CachedAnswer:
    """The answer, with the id, model and creation time of the response (or first chunk)."""
    return CachedAnswer(
        id=str(meta.get("id", "")),
        model=str(meta.get("model", "")),
        content=content,
        prompt_tokens=usage[0],
        completion_tokens=usage[1],
        created=int(meta.get("created") or time.time()),
    )


def from_sse_body(body: bytes) -> CachedAnswer | None:
    """A stream's events joined into one answer; None unless it ended with [DONE]
    after a "stop" and carried its usage."""
    pieces: list[str] = []
    finish: str | None = None
    usage: tuple[int, int] | None = None
    first: dict[str, Any] | None = None
    done = False
    for event in body.replace(b"\r\n", b"\n").split(b"\n\n"):
        for line in event.split(b"\n"):
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                done = True
                continue
            try:
                chunk = json.loads(data)
            except ValueError:
                return None
            if not isinstance(chunk, dict):
                return None
            first = first or chunk
            usage = _usage(chunk.get("usage")) or usage
            for choice in chunk.get("choices") or []:
                if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                    return None  # several choices: not one answer to replay
                delta = choice.get("delta") or {}
                if delta.get("tool_calls") or delta.get("function_call"):
                    return None
                if isinstance(delta.get("content"), str):
                    pieces.append(delta["content"])
                finish = choice.get("finish_reason") or finish
    content = "".join(pieces)
    if not done or finish != "stop" or usage is None or first is None or not content:
        return None
    return _answer(first, content, usage)


def read_answer(status: int, content_type: str, body: bytes) -> CachedAnswer | None:
    if status != 200:
        return None
    # Repeated content-type headers arrive joined ("text/plain; application/json").
    if "text/event-stream" in content_type:
        return from_sse_body(body)
    if "application/json" in content_type:
        return from_json_body(body)
    return None


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
