"""Reading an OpenAI-style chat completion body into what routing needs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import msgspec

from classifier.text import guess_language
from extproc.errors import RequestError

MAX_JSON_DEPTH = 64
"""Deeper nesting is refused. json.loads itself stops at the interpreter's recursion
limit (RecursionError, refused the same way), so the check can run on its result."""
LANGUAGE_CHARS = 2_048
"""The language guess reads this much of a message: evidence enough, at a bounded cost."""
MAX_TEXT_CHARS = 16_384
"""Per message: the classifier reads at most a few hundred tokens anyway."""
_FAST_JSON = msgspec.json.Decoder()
"""About 5 x faster than json.loads on a large body, and what it accepts it reads the
same (integers of any size included, which orjson turns into floats)."""


@dataclass(frozen=True)
class ChatRequest:
    model: str | None
    user: str | None
    stream: bool
    user_messages: tuple[str, ...]
    """Text of each user message, oldest first."""
    system_prompt: str | None = None
    """Text of the first system (or developer) message, when there is one."""
    include_usage: bool = False
    """The client asked for usage in a stream (stream_options.include_usage)."""
    data: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """The parsed body, for a rewrite (extproc.request.adapt); never mutated."""

    @cached_property
    def text(self) -> str:
        # Joined once: every keyword and regex route searches it.
        return "\n".join(self.user_messages)

    @cached_property
    def ascii_lower_text(self) -> str | None:
        """The text lower-cased when it is all ASCII, else None. On ASCII text a keyword
        matched with re.IGNORECASE is exactly a substring of this (a str.find, ~20 x faster
        than the regex on a long prompt); other scripts fold in ways lower() does not."""
        text = self.text
        return text.lower() if text.isascii() else None

    @cached_property
    def language(self) -> str | None:
        """The language of the newest user message that gives enough evidence ("ok" gives
        none: a French conversation stays French), as the classifier guesses it."""
        for message in reversed(self.user_messages):
            language = guess_language(message[:LANGUAGE_CHARS])
            if language is not None:
                return language
        return None


def _bad(message: str) -> RequestError:
    return RequestError(400, "invalid_request_body", message)


def _nesting_depth_exceeds(data: object, limit: int, body: bytes | None = None) -> bool:
    """Walks the parsed containers level by level: the cost follows the JSON's values
    (which json.loads has built already), not the bytes of its strings.

    Every container in `data` opened with a `[` or `{` in `body`, the text it was parsed
    from: a body with at most `limit` of them cannot nest deeper, and the walk is skipped
    (two byte counts, ~0.2 us on a chat body, against ~5 us for the walk)."""
    if body is not None and body.count(b"[") + body.count(b"{") <= limit:
        return False
    level: list[dict[str, Any] | list[Any]] = [data] if isinstance(data, dict | list) else []
    for _ in range(limit):
        if not level:
            return False
        children: list[dict[str, Any] | list[Any]] = []
        for container in level:
            values = container.values() if isinstance(container, dict) else container
            for value in values:
                if isinstance(value, dict | list):
                    children.append(value)
        level = children
    return bool(level)


def _too_deep() -> RequestError:
    return _bad(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")


def _content_text(content: object, index: int) -> str:
    """A message's text: a string, or the text parts of a list of parts (images are skipped)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content[:MAX_TEXT_CHARS]
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                text = part.get("text")
                if isinstance(text, str):
                    texts.append(text)
        return " ".join(texts)[:MAX_TEXT_CHARS]
    raise _bad(f"messages[{index}].content: expected a string or a list of parts")


def _load_json(body: bytes) -> Any:
    """The body's JSON value, exactly as json.loads reads it.

    msgspec refuses some bodies json.loads accepts (NaN, lone surrogates, a BOM, numbers
    past a double's range, UTF-16) and words its errors differently: anything it refuses
    goes to json.loads, which gives the verdict and the error message.
    """
    try:
        return _FAST_JSON.decode(body)
    except (msgspec.MsgspecError, RecursionError):
        return json.loads(body)


def parse_chat(body: bytes) -> ChatRequest:
    """Parses a chat completion body; raises RequestError(400) with the reason."""
    try:
        data = _load_json(body)
    except UnicodeDecodeError:
        raise _bad("body is not valid UTF-8") from None
    except json.JSONDecodeError as exc:
        raise _bad(f"body is not valid JSON: {exc.msg} at position {exc.pos}") from None
    except RecursionError:  # json's C scanner counts its own depth against the limit
        raise _too_deep() from None
    if _nesting_depth_exceeds(data, MAX_JSON_DEPTH, body):
        raise _too_deep()
    if not isinstance(data, dict):
        raise _bad("expected a JSON object")
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("messages: expected a non-empty list")
    user_messages = []
    system_prompt: str | None = None
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _bad(f"messages[{index}]: expected an object")
        role = message.get("role")
        if role == "user":
            user_messages.append(_content_text(message.get("content"), index))
        elif role in ("system", "developer") and system_prompt is None:
            system_prompt = _content_text(message.get("content"), index)
    model = data.get("model")
    user = data.get("user")
    stream_options = data.get("stream_options")
    return ChatRequest(
        model=model if isinstance(model, str) else None,
        user=user if isinstance(user, str) and user else None,
        stream=data.get("stream") is True,
        user_messages=tuple(user_messages),
        system_prompt=system_prompt or None,
        include_usage=isinstance(stream_options, dict)
        and stream_options.get("include_usage") is True,
        data=data,
    )
