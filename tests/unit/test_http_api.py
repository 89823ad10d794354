"""switchyard's HTTP API on a real socket: one request, one response."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from extproc.http_api import HttpApi
from extproc.metrics import Metrics
from extproc.rollout.canary import CanaryState
from extproc.tools.devstack import free_port


def no_action(route: str, action: str) -> CanaryState:
    raise AssertionError(f"no rollout action expected, got {action} on {route}")


@pytest.fixture
def api_port() -> Iterator[int]:
    port = free_port()
    api = HttpApi(
        f"127.0.0.1:{port}",
        Metrics(),
        act=no_action,
        status=lambda: {"rollouts": {}},
        stats=lambda: {},
        serving=lambda: True,
        admin_token=None,
        feedback=lambda body: (200, {"accepted": len(body)}),
        purge_cache=lambda route, partition: 3,
    )
    api.start()
    try:
        yield port
    finally:
        api.stop()


def raw_exchange(port: int, request: bytes) -> bytes:
    """Everything the server writes until it closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


@pytest.mark.parametrize(
    ("path", "expected"), [("/feedback", b'"accepted": 2'), ("/cache/purge", b'"purged": 3')]
)
def test_a_post_gets_exactly_one_response(api_port: int, path: str, expected: bytes) -> None:
    request = (
        f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
    ).encode()
    received = raw_exchange(api_port, request)
    assert received.count(b"HTTP/1.") == 1, received
    assert received.startswith(b"HTTP/1.0 200") or received.startswith(b"HTTP/1.1 200")
    assert expected in received
