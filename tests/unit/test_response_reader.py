"""The one OpenAI response reader, on every shape of response switchyard sees."""

from __future__ import annotations

import json
from typing import Any

import pytest

from extproc.config import PriceConfig, parse_config
from extproc.response.cost import cost, price_of
from extproc.response.reader import (
    HEAD_BYTES,
    TAIL_BYTES,
    AnswerHead,
    ResponseReader,
    Usage,
    completion,
)

JSON = "application/json"
SSE = "text/event-stream"
USAGE = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}


def chat_json(content: Any = "Paris.", finish: str | None = "stop", **extra: Any) -> bytes:
    message = {"role": "assistant", "content": content, **extra.pop("message", {})}
    body = {
        "id": "chatcmpl-9",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "m1",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": USAGE,
        **extra,
    }
    return json.dumps(body).encode()


def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
    chunk = {"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1700000001}
    return b"data: " + json.dumps({**chunk, "model": "m2", "choices": choices, **extra}).encode()


def stream(*words: str, finish: str = "stop", usage: bool = True, done: bool = True) -> bytes:
    events = [event([{"index": 0, "delta": {"role": "assistant", "content": ""}}])]
    events += [event([{"index": 0, "delta": {"content": w}, "finish_reason": None}]) for w in words]
    events.append(event([{"index": 0, "delta": {}, "finish_reason": finish}]))
    if usage:
        events.append(event([], usage=USAGE))
    if done:
        events.append(b"data: [DONE]")
    return b"".join(e + b"\n\n" for e in events)


def read(body: bytes, content_type: str = JSON) -> ResponseReader:
    return ResponseReader.of(body, content_type)


# -- plain JSON --------------------------------------------------------------------------


def test_a_json_answer_reads_whole() -> None:
    response = read(chat_json())
    assert response.usage == Usage(12, 3)
    assert response.answer_head == AnswerHead("Paris.", complete=True, tool_calls=False)
    assert not response.cut_by_length
    whole = response.completion
    assert whole is not None
    assert (whole.id, whole.model, whole.created) == ("chatcmpl-9", "m1", 1700000000)
    assert (whole.content, whole.choices, whole.finish_reason) == ("Paris.", 1, "stop")
    assert whole.usage == Usage(12, 3) and whole.ended and not whole.tool_calls


def test_a_json_answer_cut_by_length_with_a_tool_call_or_several_choices() -> None:
    assert read(chat_json(finish="length")).cut_by_length
    call = {"tool_calls": [{"id": "t", "type": "function", "function": {"name": "f"}}]}
    called = read(chat_json(None, finish="tool_calls", message=call))
    assert called.answer_head is not None and called.answer_head.tool_calls
    assert called.completion is not None and called.completion.tool_calls
    assert called.completion.content == ""
    legacy = read(chat_json(None, message={"function_call": {"name": "f"}}))
    assert legacy.completion is not None and legacy.completion.tool_calls
    two = json.loads(chat_json())
    two["choices"].append({**two["choices"][0], "index": 1})
    assert (c := read(json.dumps(two).encode()).completion) is not None and c.choices == 2


def test_empty_choices_and_escaped_content() -> None:
    empty = json.loads(chat_json())
    empty["choices"] = []
    response = read(json.dumps(empty).encode())
    assert response.answer_head == AnswerHead("", complete=True, tool_calls=False)
    assert response.completion is not None
    assert (response.completion.choices, response.completion.content) == (0, "")
    quoted = read(chat_json('She said "non" \\ \u00e9t\u00e9\n'))
    assert quoted.answer_head is not None
    assert quoted.answer_head.text == 'She said "non" \\ \u00e9t\u00e9\n'


def test_usage_is_the_last_well_formed_one_in_the_tail() -> None:
    assert read(b'{"usage": {"prompt_tokens": "x"}}').usage is None
    assert read(b"no usage here").usage is None
    assert read(b"").usage is None
    assert read(chat_json(usage={"prompt_tokens": 1, "completion_tokens": 2})).usage == (1, 2)
    long = chat_json("x" * (3 * TAIL_BYTES))
    assert read(long).usage == Usage(12, 3)  # usage comes last: the tail holds it


# -- streams -----------------------------------------------------------------------------


def test_a_stream_with_usage_in_its_last_chunk() -> None:
    response = read(stream("Par", "is."), SSE)
    assert response.usage == Usage(12, 3)
    assert response.answer_head is not None and response.answer_head.text == "Paris."
    whole = response.completion
    assert whole is not None
    assert (whole.id, whole.model, whole.created) == ("chatcmpl-s", "m2", 1700000001)
    assert (whole.content, whole.finish_reason, whole.choices) == ("Paris.", "stop", 1)
    assert whole.usage == Usage(12, 3) and whole.ended


def test_a_stream_without_usage_or_without_done_or_cut_by_length() -> None:
    bare = read(stream("Hi"), SSE)
    assert bare.completion is not None
    no_usage = read(stream("Hi", usage=False), SSE)
    assert no_usage.usage is None
    assert no_usage.completion is not None and no_usage.completion.usage is None
    cut = read(stream("Hi", done=False), SSE)
    assert cut.completion is not None and not cut.completion.ended
    assert read(stream("A", "long", finish="length"), SSE).cut_by_length


def test_stream_events_with_crlf_several_choices_and_tool_calls() -> None:
    crlf = read(stream("Oui").replace(b"\n", b"\r\n"), SSE)
    assert crlf.completion is not None and crlf.completion.content == "Oui"
    both = [{"index": 0, "delta": {"content": "a"}}, {"index": 1, "delta": {"content": "b"}}]
    several = read(event(both) + b"\n\n" + stream("c"), SSE).completion
    assert several is not None and several.choices == 2 and several.content == "ac"
    call = [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "t"}]}}]
    called = read(event(call) + b"\n\n" + stream(), SSE)
    assert called.completion is not None and called.completion.tool_calls
    assert called.answer_head is not None and called.answer_head.tool_calls


def test_a_stream_cut_mid_event_or_not_json_is_not_a_completion() -> None:
    body = stream("Hello", "there")
    assert read(body[: len(body) // 2], SSE).completion is None
    assert read(b"data: not json\n\n", SSE).completion is None
    assert read(b"data: [1, 2]\n\n", SSE).completion is None
    assert read(b": keep-alive\n\n", SSE).completion is None


# -- not answers -------------------------------------------------------------------------


def test_error_bodies_plain_text_and_unknown_types() -> None:
    error = b'{"error": {"message": "overloaded", "type": "server_error"}}'
    response = read(error)
    assert response.answer_head is None and response.completion is None and response.usage is None
    assert read(b"<html>Bad gateway</html>").completion is None
    assert read(b"<html>Bad gateway</html>").answer_head is None
    assert read(b"[1, 2]").completion is None
    assert read(chat_json(), "text/plain").completion is None
    # Envoy joins repeated content-type headers: the type is still found.
    assert read(chat_json(), "text/plain; application/json").completion is not None
    assert completion(JSON, b"") is None


def test_a_long_answer_reads_its_head_and_tail_only() -> None:
    body = chat_json("I'm sorry, " + "x" * (2 * HEAD_BYTES))
    response = ResponseReader(JSON)  # nothing kept for a fill
    for start in range(0, len(body), 1000):
        response.feed(body[start : start + 1000])
    assert len(response.head) == HEAD_BYTES and len(response.tail) == TAIL_BYTES
    assert response.size == len(body) and not response.whole_in_head
    head = response.answer_head
    assert head is not None and head.text.startswith("I'm sorry, xx") and not head.complete
    assert response.usage == Usage(12, 3)
    assert response.completion is None


def test_the_body_is_kept_only_up_to_its_limit() -> None:
    body = chat_json("x" * 5000)
    kept = ResponseReader(JSON, keep_bytes=len(body))
    dropped = ResponseReader(JSON, keep_bytes=len(body) - 1)
    for start in range(0, len(body), 700):
        kept.feed(body[start : start + 700])
        dropped.feed(body[start : start + 700])
    assert kept.completion is not None and kept.completion.content == "x" * 5000
    assert dropped.completion is None and dropped.size == len(body)


# -- cost --------------------------------------------------------------------------------


def test_cost_is_tokens_at_the_backends_price() -> None:
    price = PriceConfig(prompt_per_1m=2.0, completion_per_1m=8.0)
    assert cost(price, Usage(1_000_000, 500_000)) == pytest.approx(6.0)
    assert cost(None, Usage(1_000, 1_000)) == 0.0
    config = parse_config(
        {
            "backends": [
                {"name": "paid", "address": "127.0.0.1:1", "price": price.model_dump()},
                {"name": "free", "address": "127.0.0.1:2"},
            ],
            "routes": [{"name": "r", "backends": [{"backend": "paid"}]}],
            "default_route": "r",
        },
        "t.yaml",
    )
    assert price_of(config, "paid") == price
    assert price_of(config, "free") is None and price_of(config, "gone") is None
    assert price_of(None, "paid") is None
