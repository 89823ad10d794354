"""The stack of tests/e2e/test_workers.py (a switchyard with 2 workers behind a real
Envoy, its state in a real redis-server, strict backends) and what to read from it; also
used by bench/worker_restart.py."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from extproc.tools.devstack import RedisServer, free_ports
from tests.e2e.fleet import FLEET_STATE
from tests.e2e.stack import Stack, http_get, make_config, running_stack, wait_until

MODELS = {"a": "model-a", "b": "model-b", "v2": "model-v2"}
WORKERS = 2


def workers_config(redis_url: str) -> dict[str, Any]:
    routes = [
        {
            "name": "chat",
            "backends": [{"backend": "a", "weight": 70}, {"backend": "b", "weight": 30}],
            "canary": {"backend": "v2", "percent": 20, "steps": [20, 50, 100], "auto": False},
        }
    ]
    config = make_config(
        list(MODELS),
        routes,
        "chat",
        analysis={"interval_s": 0.5},
        # Generous: a loaded test machine must not make Envoy fail open by timeout; only
        # a worker that is gone may.
        envoy={"message_timeout_ms": 5000},
        state={**FLEET_STATE, "redis_url": redis_url},
    )
    config["server"].update(
        workers=WORKERS,
        listen=f"127.0.0.1:{free_ports(WORKERS)}",
        metrics_listen=f"127.0.0.1:{free_ports(WORKERS)}",
    )
    for backend in config["backends"]:
        backend["model"] = MODELS[backend["name"]]
    return config


@contextlib.contextmanager
def workers_stack(
    tmp_path: Path, adjust: Callable[[dict[str, Any]], None] | None = None
) -> Iterator[Stack]:
    """The stack on `workers_config`, first changed by `adjust` when given."""
    redis = RedisServer(tmp_path)
    redis.start()
    strict = {name: ["--served-model", model] for name, model in MODELS.items()}
    config = workers_config(redis.url)
    if adjust is not None:
        adjust(config)
    try:
        with running_stack(tmp_path, config, backend_args=strict) as stack:
            wait_until(lambda: worker_children(stack), 30, "worker 1")
            yield stack
    finally:
        redis.stop()


def worker_children(stack: Stack) -> list[int]:
    """Worker 0's child processes (the workers it started)."""
    assert stack.switchyard is not None
    pid = stack.switchyard.pid
    with contextlib.suppress(OSError):
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


def worker_metric(stack: Stack, worker: int, name: str) -> float:
    """The sum of a metric's samples on one worker's /metrics."""
    text = http_get(stack.metrics_port + worker, "/metrics")[1].decode()
    pattern = re.compile(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", re.M)
    return sum(float(value) for value in pattern.findall(text))


def worker_decisions(stack: Stack) -> list[float]:
    return [worker_metric(stack, w, "switchyard_decisions_total") for w in range(WORKERS)]


def fail_opens(stack: Stack) -> int:
    stats = stack.envoy_stats()
    return sum(v for k, v in stats.items() if k.endswith(".failure_mode_allowed"))
