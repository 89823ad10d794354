"""The one reader of an OpenAI chat-completion response, JSON or a server-sent stream.

The observing filter feeds a ResponseReader each body chunk as it arrives. It keeps
the first HEAD_BYTES, the last TAIL_BYTES and, when a cache fill asks for it, the
whole body up to a limit; each reading is made once, on demand:

- usage: the last "usage" object in the tail (it comes last in a JSON answer and in
  the final event of a stream);
- cut_by_length: a finish_reason "length" in the tail;
- head: the answer's opening text (for refusals and empty answers), read from the
  head with regular expressions: a 200-event stream costs one scan, not 200 parses;
- completion: the kept body parsed in full, every event of a stream joined.

A reading of something that is not a chat completion (an error body, plain text,
a stream cut mid-event) is None: the reader says what the response holds, its
users (extproc.cache.answer, extproc.rollout.quality) judge it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NamedTuple

HEAD_BYTES = 8192
"""The start of each response kept to read the answer's text (refusals open an answer)."""
TAIL_BYTES = 16_384
"""The end of each response kept: usage and the last finish_reason are there."""
_USAGE = re.compile(rb'"usage"\s*:\s*(\{[^{}]*\})')
_LENGTH = re.compile(rb'"finish_reason"\s*:\s*"length"')
_CONTENT = re.compile(r'"content"\s*:\s*"([^"\\]*(?:\\.[^"\\]*)*)')
_TOOL_CALL = re.compile(r'"tool_calls"\s*:\s*\[\s*\{')


class Usage(NamedTuple):
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class AnswerHead:
    """The answer as far as the head shows it."""

    text: str
    """Every choice's content (deltas joined) in the head."""
    complete: bool
    """The whole response was in the head: an empty text means an empty answer."""
    tool_calls: bool


@dataclass(frozen=True)
class Completion:
    """A whole chat completion: a JSON body, or a stream's events joined."""

    id: str
    model: str
    created: int | None
    content: str
    """The first choice's text ("" when it has none)."""
    choices: int
    """How many choices the answer has (n > 1 gives several)."""
    finish_reason: str | None
    """The first choice's."""
    tool_calls: bool
    """Some choice calls a tool or a function."""
    usage: Usage | None
    ended: bool
    """A JSON body always; a stream only when it ended with `data: [DONE]`."""


def usage_in(tail: bytes) -> Usage | None:
    """The last well-formed usage object in a response's tail."""
    for raw in reversed(_USAGE.findall(tail)):
        try:
            usage = json.loads(raw)
        except ValueError:
            continue
        found = _usage(usage)
        if found is not None:
            return found
    return None


def _usage(usage: Any) -> Usage | None:
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if isinstance(prompt, int) and isinstance(completion, int):
        return Usage(prompt, completion)
    return None


def _decode(raw: str) -> str:
    try:
        return str(json.loads(f'"{raw}"'))
    except ValueError:  # cut inside an escape at the end of the head
        return raw


def answer_head(head: bytes, complete: bool) -> AnswerHead | None:
    """The answer in a chat completion's first bytes (JSON or SSE); None if it is none.

    Every "content" string in order: the message's in JSON, the deltas' in SSE (a quote
    inside a JSON string is escaped, so the key cannot be faked by an answer's text).
    """
    text = head.decode("utf-8", "ignore")
    if '"choices"' not in text:
        return None  # an error body, not an answer
    content = _decode("".join(_CONTENT.findall(text)).rstrip("\\"))
    return AnswerHead(content, complete, _TOOL_CALL.search(text) is not None)


def _calls_tool(message: Any) -> bool:
    return isinstance(message, dict) and bool(
        message.get("tool_calls") or message.get("function_call")
    )


def json_completion(body: bytes) -> Completion | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("object") != "chat.completion":
        return None
    choices = data.get("choices")
    if not isinstance(choices, list):
        return None
    first = choices[0] if choices and isinstance(choices[0], dict) else {}
    message = first.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    return Completion(
        id=str(data.get("id", "")),
        model=str(data.get("model", "")),
        created=_created(data),
        content=content if isinstance(content, str) else "",
        choices=len(choices),
        finish_reason=first.get("finish_reason"),
        tool_calls=any(isinstance(c, dict) and _calls_tool(c.get("message")) for c in choices),
        usage=_usage(data.get("usage")),
        ended=True,
    )


def _created(data: dict[str, Any]) -> int | None:
    created = data.get("created")
    return created if isinstance(created, int) and not isinstance(created, bool) else None


def sse_completion(body: bytes) -> Completion | None:
    """A stream's chat.completion.chunk events joined; None when an event is not JSON."""
    pieces: list[str] = []
    indexes: set[int] = set()
    finish: str | None = None
    usage: Usage | None = None
    first: dict[str, Any] | None = None
    tool_calls = ended = False
    for line in body.replace(b"\r\n", b"\n").split(b"\n"):
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            ended = True
            continue
        try:
            chunk = json.loads(data)
        except ValueError:
            return None
        if not isinstance(chunk, dict):
            return None
        first = first or chunk
        usage = _usage(chunk.get("usage")) or usage
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            if not isinstance(choice, dict):
                return None
            index = choice.get("index", 0)
            indexes.add(index if isinstance(index, int) else -1)
            tool_calls = tool_calls or _calls_tool(choice.get("delta"))
            if index != 0:
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                pieces.append(delta["content"])
            finish = choice.get("finish_reason") or finish
    if first is None:
        return None
    return Completion(
        id=str(first.get("id", "")),
        model=str(first.get("model", "")),
        created=_created(first),
        content="".join(pieces),
        choices=len(indexes),
        finish_reason=finish,
        tool_calls=tool_calls,
        usage=usage,
        ended=ended,
    )


def is_stream(content_type: str) -> bool:
    # Repeated content-type headers arrive joined ("text/plain; application/json").
    return "text/event-stream" in content_type


def completion(content_type: str, body: bytes) -> Completion | None:
    """A whole body read by its content type: JSON, SSE, anything else None."""
    if is_stream(content_type):
        return sse_completion(body)
    if "application/json" in content_type:
        return json_completion(body)
    return None


class ResponseReader:
    """One response's body as the observing filter receives it, read on demand."""

    def __init__(self, content_type: str = "", keep_bytes: int = 0) -> None:
        self.content_type = content_type
        self._keep_bytes = keep_bytes
        """Keep the whole body while it is at most this long (0: never)."""
        self._kept: list[bytes] = []
        self.head = b""
        self.tail = b""
        self.size = 0

    @classmethod
    def of(
        cls, body: bytes, content_type: str = "", keep_bytes: int | None = None
    ) -> ResponseReader:
        """A reader fed a whole body at once (keeping it all unless told a limit)."""
        reader = cls(content_type, len(body) if keep_bytes is None else keep_bytes)
        reader.feed(body)
        return reader

    def feed(self, chunk: bytes) -> None:
        if len(self.head) < HEAD_BYTES:
            self.head += chunk[: HEAD_BYTES - len(self.head)]
        self.tail = (self.tail + chunk)[-TAIL_BYTES:]
        self.size += len(chunk)
        if self._keep_bytes:
            if self.size > self._keep_bytes:
                self._kept.clear()  # too large: only the size is kept, to say so
                self._keep_bytes = 0
            else:
                self._kept.append(chunk)

    @property
    def whole_in_head(self) -> bool:
        return self.size <= len(self.head)

    @cached_property
    def usage(self) -> Usage | None:
        return usage_in(self.tail) if self.tail else None

    @cached_property
    def cut_by_length(self) -> bool:
        return _LENGTH.search(self.tail) is not None

    @cached_property
    def answer_head(self) -> AnswerHead | None:
        return answer_head(self.head, self.whole_in_head)

    @cached_property
    def completion(self) -> Completion | None:
        """None unless the whole body was kept and reads as a chat completion."""
        if not self._kept:
            return None
        return completion(self.content_type, b"".join(self._kept))
