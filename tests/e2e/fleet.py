"""Several replicas (each an Envoy + switchyard pair) sharing one real redis-server.

Every replica renders and runs its own Envoy from its own copy of the config (its
own ports); the model backends and Redis are shared, as in a Kubernetes
deployment where each pod holds an Envoy and a switchyard.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from extproc.tools.devstack import RedisServer
from tests.e2e.stack import Stack, free_port, http_get

FLEET_STATE = {
    "store": "redis",
    "sync_interval_s": 0.5,
    "flush_interval_s": 0.25,
    "lease_ttl_s": 2.0,
    "start_timeout_s": 5.0,
    "timeout_ms": 300,
}


def replica_config(config: dict[str, Any], redis_url: str) -> dict[str, Any]:
    """The same config on this replica's own ports, with the fleet's store."""
    mine = copy.deepcopy(config)
    mine["server"].update(
        listen=f"127.0.0.1:{free_port()}", metrics_listen=f"127.0.0.1:{free_port()}"
    )
    mine["envoy"].update(
        listen=f"127.0.0.1:{free_port()}",
        admin=f"127.0.0.1:{free_port()}",
        stats_listen=f"127.0.0.1:{free_port()}",
    )
    mine["state"] = {**FLEET_STATE, **mine.get("state", {}), "redis_url": redis_url}
    return mine


@dataclass
class Fleet:
    redis: RedisServer
    replicas: list[Stack]

    def status(self, index: int) -> dict[str, Any]:
        port = self.replicas[index].metrics_port
        status, body = http_get(port, "/rollout")
        assert status == 200, body
        return dict(json.loads(body))

    def rollout(self, index: int, route: str) -> dict[str, Any]:
        return dict(self.status(index)["rollouts"][route])

    def leader(self) -> int | None:
        """Index of the replica that leads, if every live replica agrees on one."""
        for index, replica in enumerate(self.replicas):
            if replica.switchyard is None:
                continue
            status = self.status(index)
            if status["leader"] == status["replica"]:
                return index
        return None


@contextlib.contextmanager
def running_fleet(
    workdir: Path, config: dict[str, Any], replicas: int, env: dict[str, str] | None = None
) -> Iterator[Fleet]:
    workdir.mkdir(parents=True, exist_ok=True)
    redis = RedisServer(workdir)
    redis.start()
    stacks: list[Stack] = []
    try:
        for index in range(replicas):
            home = workdir / f"replica-{index}"
            home.mkdir()
            stack = Stack(home, replica_config(config, redis.url), env=env or {})
            stack.write_config()
            if stacks:
                stack.backends = stacks[0].backends  # one set of model backends for all
            else:
                stack.launch_backends()
            stacks.append(stack)
        # The backends start beside the first switchyard. The switchyards start one after
        # another, so that the first replica always takes the lead, as it did before;
        # the Envoys start side by side, once their switchyard answers.
        for stack in stacks:
            stack.launch_switchyard()
            stack.wait_switchyard()
        stacks[0].wait_backends()
        for stack in stacks:
            stack.launch_envoy()
        for stack in stacks:
            stack.wait_envoy()
        yield Fleet(redis, stacks)
    finally:
        for stack in stacks:
            stack.close()
        redis.stop()
