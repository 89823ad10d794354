"""Free TCP ports on 127.0.0.1 for the local processes a demo, a test or a benchmark starts."""

from __future__ import annotations

import os
import random
import socket


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
