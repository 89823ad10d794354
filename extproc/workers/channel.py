"""The pipe between worker 0 and one child worker: JSON objects, one a line, over a socket
pair (the child inherits its end as a file descriptor).

Worker 0 -> child: `start` (every config version worker 0 holds, and which is current),
`offer` (a new version: build its runtime, then `ack` with the same id), `switch`,
`withdraw`, `retire`. Child -> worker 0: `ready` (serving), `ack` (id, error or null).
A config travels as its validated model's JSON (paths already resolved, client keys
already read), so a child decides with exactly what worker 0 validated.
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

LINE_LIMIT = 256 * 1024 * 1024
"""A config with many labels' examples is one line."""


class Channel:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def over(cls, sock: socket.socket) -> Channel:
        reader, writer = await asyncio.open_connection(sock=sock, limit=LINE_LIMIT)
        return cls(reader, writer)

    async def send(self, message: dict[str, Any]) -> None:
        self._writer.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
        await self._writer.drain()

    async def receive(self) -> dict[str, Any] | None:
        """The next message; None once the other end has gone."""
        try:
            line = await self._reader.readline()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            return None
        if not line:
            return None
        message = json.loads(line)
        if not isinstance(message, dict):
            raise ValueError(f"expected a JSON object from the other worker, got {line[:80]!r}")
        return message

    def close(self) -> None:
        self._writer.close()
