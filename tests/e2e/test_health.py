"""gRPC health and the unix-socket link, with the real server process."""

from __future__ import annotations

import signal
from pathlib import Path

import grpc
import pytest

from proto import health_pb2, health_pb2_grpc
from tests.e2e.stack import make_config, running_stack, wait_until

pytestmark = pytest.mark.e2e

ROUTES = [
    {"name": "clinical", "match": {"keywords": ["symptom"]}, "backends": [{"backend": "med"}]},
    {"name": "general", "backends": [{"backend": "cheap"}]},
]
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def check(target: str, service: str) -> int:
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status


def test_envoy_reaches_switchyard_over_a_unix_socket_and_health_answers(tmp_path: Path) -> None:
    socket = tmp_path / "switchyard.sock"
    config = make_config(["med", "cheap"], ROUTES, "general")
    config["server"]["listen"] = f"unix:{socket}"
    config["server"]["drain_s"] = 3
    with running_stack(tmp_path, config) as stack:
        reply = stack.client.chat("symptom: cough")
        assert (reply.status, reply.backend) == (200, "med")
        target = f"unix:{socket}"
        assert check(target, "") == SERVING
        assert check(target, "envoy.service.ext_proc.v3.ExternalProcessor") == SERVING
        with pytest.raises(grpc.RpcError) as info:
            check(target, "no.such.Service")
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        assert stack.switchyard is not None
        stack.switchyard.send_signal(signal.SIGTERM)
        wait_until(lambda: check(target, "") == NOT_SERVING, 3, "NOT_SERVING while draining")
        # Still routing while draining: Envoy keeps sending until it notices.
        assert stack.client.chat("symptom: cough").backend == "med"
