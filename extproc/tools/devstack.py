"""What every local stack needs, whoever starts it (`switchyard demo`, the end-to-end
tests, the benchmarks): free ports from one allocator, processes that log to a work
folder, waits bound to a condition, and plain HTTP calls to 127.0.0.1."""

from __future__ import annotations

import http.client
import os
import random
import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def _port_range() -> tuple[int, int]:
    """Below Linux's ephemeral range (32768-60999 by default): a port picked here is never
    taken meanwhile by the source port of some outgoing connection, which happened with
    ports the kernel picked (port 0) under a busy test suite. Each pytest-xdist worker
    (and whatever it starts, which inherits its environment) gets its own slice, so two
    workers never hand out the same port."""
    low, high = 20_000, 32_000
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    width = (high - low) // count
    start = low + int(worker) * width
    return start, start + width


_LOW, _HIGH = _port_range()
_handed_out: set[int] = set()


def free_port() -> int:
    """A port nobody listens on now and that this process has not handed out before."""
    for _ in range(1000):
        port = random.randrange(_LOW, _HIGH)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port between {_LOW} and {_HIGH}")


class ProcessExited(RuntimeError):
    """A process a wait depends on is gone: waiting longer cannot help."""


def wait_until(check: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """The first truthy result of `check`, polled until `timeout` seconds have passed.

    An exception from `check` counts as "not yet" (a server not listening yet, a key not
    there yet), except ProcessExited, which ends the wait at once."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except ProcessExited:
            raise
        except Exception as exc:  # not up yet
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last error: {last})")


def launch(
    name: str,
    command: list[str],
    workdir: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Starts `command` with its output appended to `workdir/<name>.log`."""
    with open(workdir / f"{name}.log", "ab") as log:
        return subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env={**os.environ, **(env or {})},
        )


def http_get(port: int, path: str, timeout: float = 5.0, tls: bool = False) -> tuple[int, bytes]:
    conn = (
        http.client.HTTPSConnection(
            "127.0.0.1", port, timeout=timeout, context=ssl._create_unverified_context()
        )
        if tls
        else http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    )
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def http_post(port: int, path: str, body: bytes = b"", timeout: float = 5.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body=body)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()
