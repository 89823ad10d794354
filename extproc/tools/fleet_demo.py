"""`switchyard demo --fleet`: two Envoy + switchyard replicas sharing one rollout state.

Starts a local redis-server, the config's fake backends, and two replicas of the
config (each its own ports, `state.store: redis`). It sends traffic through both
Envoys to the first route with a canary, breaks the canary backend, shows the
rollback reaching both replicas, kills one replica with SIGKILL and starts it
again to show that it stays rolled back, and shuts everything down.
"""

from __future__ import annotations

import copy
import http.client
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from extproc.config import Config, parse_config
from extproc.tools.demo import LocalProcesses, _port, _say, run_show
from extproc.tools.devstack import Proc, RedisServer, free_port, http_get, http_post, wait_until

REPLICAS = 2


class FleetDemo(LocalProcesses):
    def __init__(self, config_path: Path, config: Config) -> None:
        super().__init__("switchyard-fleet-demo-")
        self.redis = RedisServer(self.workdir)
        # The config's backends on free ports too: the fleet demo runs beside anything
        # that holds the config's own ports (`switchyard demo`, a stack left running).
        self.data = yaml.safe_load(config_path.read_text(encoding="utf-8"))
        self.data["classifier"]["model"] = str(config.classifier.model)
        for backend in self.data["backends"]:
            backend["address"] = f"127.0.0.1:{free_port()}"
        self.config = parse_config(self.data, str(config_path))
        self.route = next(route for route in self.config.routes if route.canary)
        self.replicas = [self._replica_config(i) for i in range(REPLICAS)]

    def _replica_config(self, index: int) -> Config:
        data = copy.deepcopy(self.data)
        data["server"].update(
            listen=f"127.0.0.1:{free_port()}", metrics_listen=f"127.0.0.1:{free_port()}"
        )
        data["envoy"].update(
            listen=f"127.0.0.1:{free_port()}",
            admin=f"127.0.0.1:{free_port()}",
            stats_listen=f"127.0.0.1:{free_port()}",
        )
        data["state"] = {
            "store": "redis",
            "redis_url": self.redis.url,
            "sync_interval_s": 0.5,
            "lease_ttl_s": 2.0,
        }
        data["analysis"] = {**data.get("analysis", {}), "interval_s": 0.5}
        path = self.workdir / f"replica-{index}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return parse_config(data, str(path))

    def _launch_switchyard(self, index: int) -> Proc:
        config_file = self.workdir / f"replica-{index}.yaml"
        return self.launch_switchyard(f"switchyard-{index}", config_file, self.replicas[index])

    def start(self) -> None:
        self.redis.start()
        # The replicas load their encoders side by side, while the backends start.
        switchyards = [self._launch_switchyard(index) for index in range(REPLICAS)]
        keys = self.start_fake_backends(self.config, lambda backend: 20)
        for index, replica in enumerate(self.replicas):
            switchyards[index].wait_ready(60)
            self.start_envoy(f"envoy-{index}", replica, keys)

    def status(self, index: int) -> dict[str, Any]:
        metrics = _port(self.replicas[index].server.metrics_listen)
        return dict(json.loads(http_get(metrics, "/rollout")[1]))

    def show_status(self) -> None:
        for index in range(REPLICAS):
            status = self.status(index)
            state = status["rollouts"][self.route.name]
            _say(
                f"  replica {index} ({status['replica']}): {state['phase']} "
                f"{state['percent']:g}% v{state['version']}, leader {status['leader']}"
                f"{' (reason: ' + state['reason'] + ')' if state['reason'] else ''}"
            )

    def _prompt_for(self, route_name: str) -> str:
        """A prompt the route matches: its label's first example, or its first keyword."""
        match = self.config.route(route_name).match
        if match and match.label:
            label = next((item for item in self.config.labels if item.name == match.label[0]), None)
            if label is not None:
                return label.examples[0]
        if match and match.keywords:
            return f"{match.keywords[0]}: a question"
        return "hello"

    def run(self) -> None:
        route = self.route
        assert route.canary is not None
        prompt = self._prompt_for(route.name)
        _say(f"== 1. Two replicas, one Redis: route {route.name!r}, canary {route.canary.backend}")
        self.show_status()

        stop = threading.Event()
        served: list[tuple[int, str, float]] = []

        def load(index: int) -> None:
            port = _port(self.replicas[index].envoy.listen)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            n = 0
            while not stop.is_set():
                n += 1
                body = json.dumps(
                    {"model": "demo", "messages": [{"role": "user", "content": prompt}]}
                )
                conn.request(
                    "POST",
                    "/v1/chat/completions",
                    body=body,
                    headers={
                        "content-type": "application/json",
                        "x-session-id": f"fleet-{index}-{n}",
                    },
                )
                response = conn.getresponse()
                response.read()
                served.append(
                    (index, response.getheader("x-switchyard-backend", "?"), time.monotonic())
                )
            conn.close()

        threads = [threading.Thread(target=load, args=(i,)) for i in range(REPLICAS)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(4)
            canary = sum(1 for _, backend, _ in served if backend == route.canary.backend)
            _say(
                f"\n== 2. Traffic through both Envoys: {len(served)} requests, "
                f"{canary} on the canary"
            )
            _say(f"== 3. The canary backend {route.canary.backend} starts failing every request")
            http_post(
                _port(self.config.backend(route.canary.backend).address),
                "/control",
                b'{"error_rate": 1.0}',
            )
            broken = time.monotonic()
            wait_until(
                lambda: all(
                    self.status(i)["rollouts"][route.name]["phase"] == "rolled_back"
                    for i in range(REPLICAS)
                ),
                30,
                "the rollback on every replica",
            )
            _say(
                f"   rolled back on both replicas {time.monotonic() - broken:.1f}s after the "
                "failure (one analysis over the fleet's traffic):"
            )
            self.show_status()
        finally:
            stop.set()
            for thread in threads:
                thread.join()

        _say("\n== 4. Replica 1 is killed (SIGKILL) and started again ==")
        self.processes["switchyard-1"].stop(signal.SIGKILL)
        self._launch_switchyard(1).wait_ready(60)
        self.show_status()
        _say(
            "   it kept the fleet's rollback instead of re-opening the canary at "
            f"{route.canary.percent:g}%."
        )

    def stop(self) -> None:
        self.stop_all()
        self.redis.stop(signal.SIGTERM)
        _say(f"\nAll processes stopped. Logs and configs: {self.workdir}")


def run_fleet_demo(config_path: Path, config: Config) -> int:
    if not any(route.canary for route in config.routes):
        print(f"{config_path}: no route has a canary; the fleet demo needs one", file=sys.stderr)
        return 1
    return run_show(FleetDemo(config_path, config), "Fleet demo")
