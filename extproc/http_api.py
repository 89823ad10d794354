"""switchyard's HTTP side: /metrics for Prometheus, /stats for the report, /rollout for operators.

Served from a thread so that a slow scrape never competes with the gRPC loop.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from extproc.metrics import Metrics
from extproc.rollout.canary import RolloutError, Rollouts

ROLLOUT_ACTIONS = ("promote", "pause", "resume", "rollback", "reset")


class HttpApi:
    def __init__(
        self,
        address: str,
        metrics: Metrics,
        rollouts: Rollouts,
        stats: Callable[[], object],
        serving: Callable[[], bool],
    ) -> None:
        host, _, port = address.rpartition(":")

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass  # requests are counted by Prometheus, not logged

            def do_GET(self) -> None:
                if self.path == "/metrics":
                    self._send(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
                elif self.path == "/stats":
                    self._json(200, stats())
                elif self.path == "/healthz":
                    # 503 once draining, so an HTTP readiness probe sees what gRPC health says.
                    if serving():
                        self._json(200, {"status": "serving"})
                    else:
                        self._json(503, {"status": "draining"})
                else:
                    self._json(404, {"error": f"no such path {self.path}"})

            def do_POST(self) -> None:
                parts = self.path.strip("/").split("/")
                if len(parts) != 3 or parts[0] != "rollout" or parts[2] not in ROLLOUT_ACTIONS:
                    self._json(
                        404,
                        {
                            "error": "expected POST /rollout/<route>/<action>",
                            "actions": list(ROLLOUT_ACTIONS),
                        },
                    )
                    return
                route, action = parts[1], parts[2]
                try:
                    state = getattr(rollouts, action)(route)
                except RolloutError as exc:
                    self._json(404, {"error": str(exc)})
                    return
                self._json(
                    200,
                    {
                        "route": route,
                        "phase": state.phase.value,
                        "percent": state.serving_percent,
                        "backend": state.backend,
                    },
                )

            def _json(self, status: int, payload: object) -> None:
                self._send(status, json.dumps(payload, indent=1).encode(), "application/json")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer((host, int(port)), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
