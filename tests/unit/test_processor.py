"""The per-request handlers on bad and odd input, without gRPC (fakes are fine here)."""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.config import parse_config
from extproc.errors import RequestError
from extproc.request.metrics import RequestMetrics
from extproc.request.processor import RoutingStream
from extproc.request.runtime import build_runtime
from extproc.rollout.canary import Rollouts, initial_state
from proto import core_pb2, ext_proc_pb2

CONFIG = parse_config(
    {
        "server": {"max_body_bytes": 4096},
        "backends": [
            {"name": "a", "address": "127.0.0.1:1"},
            {"name": "b", "address": "127.0.0.1:2"},
        ],
        "routes": [
            {"name": "kw", "match": {"keywords": ["refund"]}, "backends": [{"backend": "a"}]},
            {"name": "model", "match": {"model": "big"}, "backends": [{"backend": "a"}]},
            {"name": "d", "backends": [{"backend": "b"}]},
        ],
        "default_route": "d",
    },
    "test",
)


def stream() -> RoutingStream:
    rollouts = Rollouts()
    rollouts.apply_config(CONFIG, lambda canary: initial_state(canary, 0.0))
    metrics = RequestMetrics()
    return RoutingStream(build_runtime(CONFIG, rollouts, metrics), metrics)


def headers(
    method: str = "POST", path: str = "/v1/chat/completions", **extra: str
) -> ext_proc_pb2.HttpHeaders:
    values = {":method": method, ":path": path, **extra}
    return ext_proc_pb2.HttpHeaders(
        headers=core_pb2.HeaderMap(
            headers=[core_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in values.items()]
        ),
        end_of_stream=method == "GET",
    )


def route_of(body: bytes, **header_values: str) -> dict[str, str]:
    s = stream()
    s.on_request_headers(headers(**header_values))
    response = asyncio.run(s.on_request_body(ext_proc_pb2.HttpBody(body=body, end_of_stream=True)))
    mutation = response.request_body.response.header_mutation
    assert response.request_body.response.clear_route_cache == bool(mutation.set_headers)
    return {o.header.key: o.header.raw_value.decode() for o in mutation.set_headers}


def error_of(body: bytes) -> RequestError:
    s = stream()
    s.on_request_headers(headers())
    with pytest.raises(RequestError) as info:
        asyncio.run(s.on_request_body(ext_proc_pb2.HttpBody(body=body, end_of_stream=True)))
    return info.value


def chat(**fields: object) -> bytes:
    return json.dumps({"messages": [{"role": "user", "content": "hi"}], **fields}).encode()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not valid JSON"),
        (b"\xff\xfe{}", "not valid"),
        (b"[1, 2]", "expected a JSON object"),
        (b"{}", "messages: expected a non-empty list"),
        (b'{"messages": []}', "messages: expected a non-empty list"),
        (b'{"messages": [42]}', "messages[0]: expected an object"),
        (b'{"messages": [{"role": "user", "content": 42}]}', "messages[0].content"),
        (b"[" * 100 + b"]" * 100, "nested deeper than"),
        (b'{"messages": ' + b"[" * 64 + b"]" * 64 + b"}", "nested deeper than"),
    ],
)
def test_bad_bodies_get_a_400_with_the_reason(body: bytes, reason: str) -> None:
    error = error_of(body)
    assert error.status == 400 and reason in error.message


def test_body_over_the_limit_is_413_from_headers_or_body() -> None:
    s = stream()
    with pytest.raises(RequestError) as info:
        s.on_request_headers(headers(**{"content-length": "999999"}))
    assert info.value.status == 413
    assert error_of(b" " * 5000).status == 413


def test_odd_but_valid_bodies_are_routed() -> None:
    parts = [
        {"type": "image_url", "image_url": {"url": "data:..."}},
        {"type": "text", "text": "a refund please"},
    ]
    assert (
        route_of(json.dumps({"messages": [{"role": "user", "content": parts}]}).encode())[
            "x-switchyard-route"
        ]
        == "kw"
    )
    assert route_of(chat(model="big"))["x-switchyard-route"] == "model"
    assert route_of(chat(model="never-heard-of-it"))["x-switchyard-route"] == "d"
    assert route_of(chat(stream=True))["x-switchyard-route"] == "d"
    only_system = json.dumps({"messages": [{"role": "system", "content": "x"}]}).encode()
    assert route_of(only_system)["x-switchyard-route"] == "d"


def test_non_chat_requests_pass_through_without_their_body() -> None:
    s = stream()
    response = s.on_request_headers(headers(method="GET", path="/v1/models"))
    assert response.mode_override.request_body_mode == 0  # NONE
    response = stream().on_request_headers(headers(path="/v1/embeddings"))
    assert response.HasField("mode_override")


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=20),
            lambda children: (
                st.lists(children, max_size=4)
                | st.dictionaries(
                    st.sampled_from(
                        ["messages", "role", "content", "model", "user", "stream", "type", "text"]
                    ),
                    children,
                    max_size=5,
                )
            ),
            max_leaves=30,
        ).map(lambda value: json.dumps(value).encode()),
    )
)
def test_any_body_gets_a_route_or_a_clear_error(body: bytes) -> None:
    s = stream()
    s.on_request_headers(headers())
    try:
        response = asyncio.run(
            s.on_request_body(ext_proc_pb2.HttpBody(body=body, end_of_stream=True))
        )
    except RequestError as error:
        assert error.status in (400, 413) and error.message
    else:
        assert response.request_body.response.clear_route_cache


def test_brackets_inside_strings_are_not_nesting() -> None:
    from extproc.request.chat import parse_chat

    text = "[{" * 80
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": text}]}).encode()
    assert parse_chat(body).user_messages == (text,)


def test_nesting_past_the_recursion_limit_is_refused_the_same_way() -> None:
    from extproc.request.chat import parse_chat

    # json.loads stops itself at the interpreter's recursion limit.
    with pytest.raises(RequestError, match="nested deeper than"):
        parse_chat(b"[" * 100_000 + b"]" * 100_000)


def test_nesting_up_to_the_limit_is_accepted() -> None:
    from extproc.request.chat import MAX_JSON_DEPTH, parse_chat

    extra = b"[" * (MAX_JSON_DEPTH - 2) + b"]" * (MAX_JSON_DEPTH - 2)
    body = b'{"messages": [{"role": "user", "content": "hi"}], "x": ' + extra + b"}"
    assert parse_chat(body).user_messages == ("hi",)


def test_a_large_prompt_full_of_brackets_is_parsed_whole() -> None:
    from extproc.request.chat import MAX_TEXT_CHARS, parse_chat

    text = "x = [{'a': [1, 2]}]\n" * 45_000  # ~900 KB, 180 000 brackets inside one string
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": text}]}).encode()
    assert parse_chat(body).user_messages == (text[:MAX_TEXT_CHARS],)


def _json_outcome(load: object, body: bytes) -> tuple[str, str]:
    try:
        return "ok", repr(load(body))  # type: ignore[operator]
    except RecursionError:
        return "error", "RecursionError"
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return "error", f"{type(error).__name__}: {error}"


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(alphabet=st.characters(codec=None), max_size=12),  # lone surrogates included
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        JSON_VALUES.map(
            lambda value: json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
        ),
        JSON_VALUES.map(lambda value: json.dumps(value).encode()),
        st.binary(max_size=60),
        st.sampled_from(
            [b"\xef\xbb\xbf{}", '{"a": 1}'.encode("utf-16"), b'["\\ud800"]', b"[1e400]", b"[NaN]"]
        ),
    )
)
def test_the_fast_parser_reads_every_body_as_json_loads_does(body: bytes) -> None:
    from extproc.request.chat import _load_json

    # Same value (repr tells 1 from 1.0 and keeps NaN comparable) or the same error.
    assert _json_outcome(_load_json, body) == _json_outcome(json.loads, body)
