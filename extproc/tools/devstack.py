"""What every local stack needs, whoever starts it (`switchyard demo`, the end-to-end
tests, the benchmarks): free ports from one allocator, processes that log to a work
folder, waits bound to a condition, plain HTTP calls to 127.0.0.1, and a redis-server."""

from __future__ import annotations

import http.client
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from extproc.errors import SwitchyardError

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


def free_ports(count: int) -> int:
    """The first of `count` consecutive free ports (a switchyard with server.workers)."""
    for _ in range(1000):
        first = free_port()
        ports = range(first, first + count)
        if any(port in _handed_out for port in ports[1:]) or ports.stop > _HIGH:
            continue
        free = True
        for port in ports[1:]:
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    free = False
                    break
        if free:
            _handed_out.update(ports)
            return first
    raise RuntimeError(f"no {count} consecutive free ports between {_LOW} and {_HIGH}")


class ProcessExited(SwitchyardError, RuntimeError):
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


class RedisServer:
    """A redis-server on a free port of 127.0.0.1, without persistence (the fleet's state
    store for the fleet demo and the tests)."""

    def __init__(
        self, workdir: Path, password: str | None = None, tls: tuple[Path, Path] | None = None
    ) -> None:
        """tls: (certificate, key) to serve TLS only (rediss://)."""
        self.workdir = workdir
        self.port = free_port()
        self.password = password
        self.tls = tls
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (make system-deps installs it)")
        ports = ["--port", str(self.port)]
        if self.tls:
            ports = ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file",
                     str(self.tls[0]), "--tls-key-file", str(self.tls[1]),
                     "--tls-auth-clients", "no"]  # fmt: skip
        args = [binary, *ports, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", str(self.workdir)]
        if self.password:
            args += ["--requirepass", self.password]
        self.process = launch(f"redis-{self.port}", args, self.workdir)
        wait_until(self._answers, 10, "redis-server to answer PING")

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise ProcessExited(f"redis-server exited with {self.process.returncode}")
        with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
            if self.tls:
                return True  # listening; the TLS handshake is the client's business
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))

    def stop(self, sig: int = signal.SIGKILL) -> None:
        """Stops it (by default as a crash would: SIGKILL, nothing saved)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=10)
        self.process = None
