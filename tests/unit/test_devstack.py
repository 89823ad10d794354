"""The dev-stack helpers every local stack uses: ports and condition-bound waits."""

from __future__ import annotations

import socket
import time

import pytest

from extproc.tools.devstack import ProcessExited, free_port, wait_until


def test_free_ports_are_below_the_ephemeral_range_distinct_and_bindable() -> None:
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    assert all(20_000 <= port < 32_000 for port in ports)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[-1]))


def test_wait_until_returns_the_first_truthy_result_and_treats_errors_as_not_yet() -> None:
    calls = []

    def check() -> int:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionRefusedError("not listening yet")
        return len(calls)

    assert wait_until(check, 5, "the third call", interval=0.01) == 3


def test_wait_until_names_what_it_waited_for_and_the_last_error() -> None:
    def never() -> bool:
        raise KeyError("phase")

    with pytest.raises(TimeoutError, match=r"waiting for the rollback \(last error: 'phase'\)"):
        wait_until(never, 0.1, "the rollback", interval=0.01)


def test_a_process_gone_ends_the_wait_at_once() -> None:
    def gone() -> bool:
        raise ProcessExited("switchyard exited")

    started = time.monotonic()
    with pytest.raises(ProcessExited):
        wait_until(gone, 30, "switchyard")
    assert time.monotonic() - started < 1
