"""An OpenAI-compatible model-backend simulator: `switchyard fake-backend`.

It answers /v1/chat/completions (JSON, or SSE with `stream: true`) with its own
name, a usage block, a configurable latency and failure rate. Its behaviour can
be changed while it runs (POST /control), so tests can make a canary degrade
on command: fail, slow down, refuse a share of questions (refusal_rate), or send
a quality score header (quality_score, 0..1; negative: none). GET /stats tells
how many chat requests reached it.

It is as strict as the servers it stands for: with a served model it answers
any other model name with vLLM's 404; with a required key it answers 401 to a
request without it; a stream carries usage only when stream_options.include_usage
asks for it; with a certificate it speaks only HTTPS; `max_completion_tokens` (or the
older `max_tokens`) cuts the answer to that many words with finish_reason "length", and
a value that is not a positive integer gets OpenAI's 400. GET /received returns the
method, Host, path and headers of the requests it got other than its own endpoints
(/control, /stats, /received; the last RECEIVED_KEPT), and GET /stats counts them
(`received`) besides the chat requests (`requests`).
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import json
import random
import signal
import ssl
import time
from dataclasses import dataclass

from extproc.errors import SwitchyardError

MAX_BODY = 64 * 1024 * 1024
REFUSAL = "I'm sorry, but I can't help with that request."
RECEIVED_KEPT = 10_000
OWN_PATHS = ("/control", "/stats", "/received")


@dataclass
class Behaviour:
    latency_ms: float = 0.0
    error_rate: float = 0.0
    status: int = 500
    """The status of a simulated failure."""
    refusal_rate: float = 0.0
    """Share of answers that are a refusal (status 200, healthy in every other way)."""
    quality_score: float = -1.0
    """Sent as x-quality-score on every answer when 0..1."""


@dataclass(frozen=True)
class Strictness:
    served_model: str | None = None
    """Answer 404 to any other model name, as vLLM does."""
    key: str | None = None
    """Answer 401 unless key_header carries it."""
    key_header: str = "authorization"
    """authorization expects "Bearer KEY"; any other header the bare key."""

    def key_ok(self, headers: dict[str, str]) -> bool:
        if self.key is None:
            return True
        expected = f"Bearer {self.key}" if self.key_header == "authorization" else self.key
        return hmac.compare_digest(headers.get(self.key_header, "").encode(), expected.encode())


def _model(body: bytes) -> object:
    try:
        request = json.loads(body)
    except ValueError:
        return None
    return request.get("model") if isinstance(request, dict) else None


class FakeBackend:
    def __init__(
        self,
        name: str,
        behaviour: Behaviour,
        seed: int | None = None,
        strictness: Strictness | None = None,
    ) -> None:
        self.name = name
        self.behaviour = behaviour
        self.strictness = strictness or Strictness()
        self.requests = 0
        self.received_total = 0
        self.errors = 0
        self.received: collections.deque[dict[str, object]] = collections.deque(
            maxlen=RECEIVED_KEPT
        )
        self._random = random.Random(seed)
        self._ids = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self._one_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        request_line = await reader.readline()
        if not request_line:
            return False
        method, path, _ = request_line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            key, _, value = line.decode("latin-1").partition(":")
            headers[key.strip().lower()] = value.strip()
        body = await self._read_body(reader, headers)
        keep_alive = headers.get("connection", "").lower() != "close"
        is_chat = path.split("?")[0].endswith("/chat/completions") and method == "POST"
        if path not in OWN_PATHS:
            self.received_total += 1
            self.received.append(
                {
                    "method": method,
                    "host": headers.get("host"),
                    "path": path,
                    "headers": headers,
                    "model": _model(body),
                }
            )
        if (is_chat or path == "/v1/models") and not self.strictness.key_ok(headers):
            self._send_json(writer, 401, {"error": "Unauthorized"})
        elif is_chat:
            await self._chat(body, writer)
        elif path == "/control" and method == "POST":
            update = json.loads(body or b"{}")
            for key in ("latency_ms", "error_rate", "status", "refusal_rate", "quality_score"):
                if key in update:
                    setattr(self.behaviour, key, type(getattr(self.behaviour, key))(update[key]))
            self._send_json(writer, 200, self._state())
        elif path == "/stats":
            self._send_json(writer, 200, self._state())
        elif path == "/received":
            self._send_json(writer, 200, list(self.received))
        elif path == "/v1/models":
            served = self.strictness.served_model or self.name
            self._send_json(writer, 200, {"object": "list", "data": [{"id": served}]})
        else:
            self._send_json(writer, 404, {"error": {"message": f"no route {path}"}})
        await writer.drain()
        return keep_alive

    async def _read_body(self, reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int((await reader.readline()).split(b";")[0], 16)
                if size == 0:
                    await reader.readline()
                    return b"".join(chunks)
                chunks.append(await reader.readexactly(size))
                await reader.readline()
        length = int(headers.get("content-length", "0"))
        if length > MAX_BODY:
            raise ValueError("body too large")
        return await reader.readexactly(length) if length else b""

    def _state(self) -> dict[str, object]:
        return {
            "name": self.name,
            "requests": self.requests,
            "received": self.received_total,
            "errors": self.errors,
            "latency_ms": self.behaviour.latency_ms,
            "error_rate": self.behaviour.error_rate,
            "refusal_rate": self.behaviour.refusal_rate,
            "quality_score": self.behaviour.quality_score,
        }

    def _send_json(
        self, writer: asyncio.StreamWriter, status: int, payload: object, extra: str = ""
    ) -> None:
        body = json.dumps(payload).encode()
        writer.write(
            f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nx-backend: {self.name}\r\n{extra}\r\n".encode()
            + body
        )

    async def _chat(self, body: bytes, writer: asyncio.StreamWriter) -> None:
        self.requests += 1
        behaviour = self.behaviour
        if behaviour.latency_ms > 0:
            await asyncio.sleep(behaviour.latency_ms / 1000)
        if self._random.random() < behaviour.error_rate:
            self.errors += 1
            self._send_json(
                writer,
                behaviour.status,
                {"error": {"message": f"{self.name}: simulated failure", "type": "server_error"}},
            )
            return
        try:
            request = json.loads(body)
        except ValueError:
            self._send_json(writer, 400, {"error": {"message": "invalid JSON"}})
            return
        served = self.strictness.served_model
        if served is not None and request.get("model") != served:
            self._send_json(
                writer,
                404,
                {
                    "object": "error",
                    "message": f"The model `{request.get('model')}` does not exist.",
                    "type": "NotFoundError",
                    "param": None,
                    "code": 404,
                },
            )
            return
        try:
            limit = _token_limit(request)
        except InvalidLimit as exc:
            self._send_json(
                writer,
                400,
                {
                    "error": {
                        "message": str(exc),
                        "type": "invalid_request_error",
                        "param": exc.field,
                        "code": "integer_below_min_value",
                    }
                },
            )
            return
        messages = request.get("messages") or [{}]
        prompt_tokens = max(1, len(json.dumps(messages)) // 4)
        answer = f"[{self.name}] answered"
        if self._random.random() < behaviour.refusal_rate:
            answer = REFUSAL
        finish_reason = "stop"
        if limit is not None and len(answer.split()) > limit:
            answer, finish_reason = " ".join(answer.split()[:limit]), "length"
        score = behaviour.quality_score
        extra = f"x-quality-score: {score:g}\r\n" if 0 <= score <= 1 else ""
        completion_tokens = len(answer.split())
        self._ids += 1
        completion_id = f"chatcmpl-{self.name}-{self._ids}"
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        model = request.get("model") or self.name
        if request.get("stream") is True:
            options = request.get("stream_options")
            with_usage = isinstance(options, dict) and options.get("include_usage") is True
            await self._stream(
                writer,
                completion_id,
                model,
                answer,
                finish_reason,
                usage if with_usage else None,
                extra,
            )
            return
        self._send_json(
            writer,
            200,
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "backend": self.name,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": answer},
                        "finish_reason": finish_reason,
                    }
                ],
                "usage": usage,
            },
            extra,
        )

    async def _stream(
        self,
        writer: asyncio.StreamWriter,
        completion_id: str,
        model: str,
        answer: str,
        finish_reason: str,
        usage: dict[str, int] | None,
        extra: str,
    ) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\nx-backend: "
            + self.name.encode()
            + b"\r\n"
            + extra.encode()
            + b"\r\n"
        )

        def event(payload: object) -> None:
            data = f"data: {json.dumps(payload) if payload != '[DONE]' else payload}\n\n".encode()
            writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

        base = {"id": completion_id, "object": "chat.completion.chunk", "model": model}
        for word in answer.split():
            delta = {"index": 0, "delta": {"content": word + " "}, "finish_reason": None}
            event({**base, "choices": [delta]})
            await writer.drain()
        event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish_reason}]})
        if usage is not None:
            event({**base, "choices": [], "usage": usage, "backend": self.name})
        event("[DONE]")
        writer.write(b"0\r\n\r\n")


class InvalidLimit(SwitchyardError, ValueError):
    def __init__(self, field: str, value: object) -> None:
        super().__init__(f"Invalid '{field}': expected an integer of at least 1, got {value!r}.")
        self.field = field


def _token_limit(request: dict[str, object]) -> int | None:
    """The request's completion token limit (None: no limit); InvalidLimit for a value
    that is not a positive integer, as OpenAI answers it."""
    for field in ("max_completion_tokens", "max_tokens"):
        value = request.get(field)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidLimit(field, value)
        return value
    return None


def server_tls(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


async def serve_fake_backend(
    name: str,
    host: str,
    port: int,
    behaviour: Behaviour,
    seed: int | None = None,
    strictness: Strictness | None = None,
    tls: ssl.SSLContext | None = None,
) -> None:
    backend = FakeBackend(name, behaviour, seed, strictness)
    server = await asyncio.start_server(backend.handle, host, port, backlog=1024, ssl=tls)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
