"""The parts every launcher shares: free ports from one allocator, waits bound to a
condition, plain HTTP calls to 127.0.0.1, and `Proc`, a process that logs to a work
folder and knows its ports, how to tell it serves and how to stop it."""

from __future__ import annotations

import http.client
import os
import random
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
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


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Proc:
    """A process started by `Proc.start`, with its output in `log`.

    `probe` says whether it serves yet (None: started is ready); `wait_ready` polls it
    and ends at once, naming the log, if the process exits meanwhile."""

    name: str
    command: list[str]
    process: subprocess.Popen[bytes]
    log: Path
    ports: dict[str, int] = field(default_factory=dict)
    probe: Callable[[], bool] | None = None
    what: str = "to start"

    @classmethod
    def start(
        cls,
        name: str,
        command: list[str],
        workdir: Path,
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        ports: dict[str, int] | None = None,
        probe: Callable[[], bool] | None = None,
        what: str = "to start",
    ) -> Proc:
        """Starts `command` with its output appended to `workdir/<name>.log`."""
        log = workdir / f"{name}.log"
        with open(log, "ab") as out:
            process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env={**os.environ, **(env or {})},
            )
        return cls(name, command, process, log, ports or {}, probe, what)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    def poll(self) -> int | None:
        return self.process.poll()

    def wait(self, timeout: float | None = None) -> int:
        return self.process.wait(timeout=timeout)

    def send_signal(self, sig: int) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise ProcessExited(
                f"{self.name} exited with {self.process.returncode} (log {self.log}):\n"
                + self.tail()
            )

    def wait_ready(self, timeout: float) -> Proc:
        """Itself, once its probe says it serves."""

        def ready() -> bool:
            self.check_alive()
            return self.probe is None or self.probe()

        wait_until(ready, timeout, f"{self.name} {self.what}")
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Sends `sig` (unless it has exited) and reaps it, killing it after `timeout` seconds."""
        self.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=timeout)

    def cpu_seconds(self) -> float:
        """user + system CPU time of every thread so far, with that of the live processes
        it started (switchyard's other workers, server.workers)."""
        return sum(_cpu_seconds(pid) for pid in _family(self.pid))

    def memory(self) -> dict[str, float]:
        """Resident memory now (VmRSS) and at its peak (VmHWM), in MiB."""
        out: dict[str, float] = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024
        return out


def stop_all(procs: Iterable[Proc | None], timeout: float = 10.0) -> None:
    """SIGTERM to every one at once (each drains meanwhile), then reaps them in turn."""
    alive = [proc for proc in procs if proc is not None]
    for proc in alive:
        proc.terminate()
    for proc in alive:
        proc.stop(timeout=timeout)


def _family(pid: int) -> list[int]:
    """`pid` and its live descendants."""
    family, index = [pid], 0
    while index < len(family):
        current = family[index]
        index += 1
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        family += [int(child) for child in children]
    return family


def _cpu_seconds(pid: int) -> float:
    """user + system CPU time of `pid`'s threads so far (/proc/PID/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # a descendant that just exited
        return 0.0
    # After "pid (comm)": state is field 3, utime 14 and stime 15 (1-based).
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
