"""switchyard's HTTP side: /metrics for Prometheus, /stats for the report, /rollout for operators,
/feedback for quality signals.

POST /cache/purge[?route=R&partition=P] removes cached answers (extproc.cache).
GET /rollout (or /rollout/<route>) shows the rollout state this replica serves and
who leads the fleet; POST /rollout/<route>/<action> commits an action through the
state store, so in a fleet it acts on every replica. POST /feedback takes a score
and/or flag for one answer (extproc.rollout.quality).

Served from a thread so that a slow scrape never competes with the gRPC loop.
Reads (GET) are open; every change (POST) passes `authorize` first.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from extproc.config import is_loopback
from extproc.errors import PurgeRefused
from extproc.metrics import Metrics
from extproc.rollout.canary import ACTIONS, CanaryState, RolloutError
from extproc.rollout.quality import MAX_FEEDBACK_BYTES

Act = Callable[[str, str], CanaryState]
Feedback = Callable[[bytes], tuple[int, dict[str, object]]]
PurgeCache = Callable[[str | None, str | None], int]
"""(route or None, partition or None) -> entries removed."""


@dataclass(frozen=True)
class Denied:
    status: int
    message: str


def _digest(value: str) -> bytes:
    # Hashing first gives compare_digest two equal-length inputs: the time taken
    # says nothing about the token's length either.
    return hashlib.sha256(value.encode()).digest()


def authorize(authorization: str | None, peer: str, token: str | None) -> Denied | None:
    """May this request change state? None when it may.

    With a token configured, the request must carry `Authorization: Bearer <token>`;
    a missing and a wrong token take the same path and get the same answer. Without
    one, only loopback clients may (someone on the pod or host, or kubectl port-forward).
    """
    if token is None:
        if is_loopback(peer):
            return None
        return Denied(
            403,
            "no admin token is configured: changes are accepted from loopback clients only",
        )
    scheme, _, presented = (authorization or "").partition(" ")
    presented_ok = hmac.compare_digest(_digest(presented.strip()), _digest(token))
    if presented_ok and scheme.lower() == "bearer":
        return None
    return Denied(401, "expected the header Authorization: Bearer <admin token>")


class HttpApi:
    def __init__(
        self,
        address: str,
        metrics: Metrics,
        act: Act,
        status: Callable[[], dict[str, Any]],
        stats: Callable[[], object],
        serving: Callable[[], bool],
        admin_token: str | None,
        feedback: Feedback | None = None,
        purge_cache: PurgeCache | None = None,
        read_only: bool = False,
    ) -> None:
        """admin_token: what POST requests must present; None admits loopback clients only.
        feedback: takes a POST /feedback body, gives the status and the answer.
        read_only: a child worker (server.workers): GET only, every POST is worker 0's."""
        host, _, port = address.rpartition(":")

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass  # requests are counted by Prometheus, not logged

            def do_GET(self) -> None:
                if self.path == "/metrics":
                    self._send(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
                elif self.path == "/stats":
                    self._json(200, stats())
                elif self.path == "/rollout" or self.path.startswith("/rollout/"):
                    self._rollout_status(self.path.removeprefix("/rollout").strip("/"))
                elif self.path == "/healthz":
                    # 503 once draining, so an HTTP readiness probe sees what gRPC health says.
                    if serving():
                        self._json(200, {"status": "serving"})
                    else:
                        self._json(503, {"status": "draining"})
                else:
                    self._json(404, {"error": f"no such path {self.path}"})

            def do_POST(self) -> None:
                if read_only:
                    self._json(
                        404,
                        {
                            "error": "a child worker takes no POST: send it to worker 0 "
                            "(server.metrics_listen)"
                        },
                    )
                    return
                denied = authorize(
                    self.headers.get("authorization"), self.client_address[0], admin_token
                )
                if denied is not None:
                    self._json(denied.status, {"error": denied.message})
                    return
                path, _, query = self.path.partition("?")
                if path == "/feedback" and feedback is not None:
                    self._feedback(feedback)
                elif path == "/cache/purge" and purge_cache is not None:
                    self._purge(purge_cache, parse_qs(query))
                else:
                    self._rollout_action(path)

            def _rollout_action(self, path: str) -> None:
                parts = path.strip("/").split("/")
                if len(parts) != 3 or parts[0] != "rollout" or parts[2] not in ACTIONS:
                    self._json(
                        404,
                        {
                            "error": "expected POST /rollout/<route>/<action>",
                            "actions": list(ACTIONS),
                        },
                    )
                    return
                route, action = parts[1], parts[2]
                try:
                    state = act(route, action)
                except RolloutError as exc:
                    code = 404 if "has no canary" in str(exc) else 409
                    self._json(code, {"error": str(exc)})
                    return
                except TimeoutError:
                    self._json(503, {"error": "the state store did not answer in time"})
                    return
                self._json(
                    200,
                    {
                        "route": route,
                        "phase": state.phase.value,
                        "percent": state.serving_percent,
                        "backend": state.backend,
                        "version": state.version,
                    },
                )

            def _feedback(self, take: Feedback) -> None:
                length = self.headers.get("content-length", "")
                if not length.isdigit():
                    self._json(411, {"error": "expected a content-length"})
                    return
                if int(length) > MAX_FEEDBACK_BYTES:
                    self.close_connection = True  # the unread body must not be parsed as a request
                    self._json(413, {"error": f"expected at most {MAX_FEEDBACK_BYTES} bytes"})
                    return
                self._json(*take(self.rfile.read(int(length))))

            def _purge(self, purge: PurgeCache, query: dict[str, list[str]]) -> None:
                route = query.get("route", [None])[-1]
                partition = query.get("partition", [None])[-1]
                try:
                    removed = purge(route or None, partition or None)
                except PurgeRefused as exc:
                    self._json(400, {"error": str(exc)})
                    return
                except TimeoutError:
                    self._json(503, {"error": "the purge did not finish in time"})
                    return
                except RuntimeError as exc:  # the fleet's store did not answer
                    self._json(503, {"error": str(exc)})
                    return
                self._json(200, {"purged": removed, "route": route, "partition": partition})

            def _rollout_status(self, route: str) -> None:
                current = status()
                if route:
                    rollouts = current["rollouts"]
                    if route not in rollouts:
                        self._json(404, {"error": f"route {route!r} has no canary"})
                        return
                    current = {**current, "rollouts": {route: rollouts[route]}}
                self._json(200, current)

            def _json(self, status: int, payload: object) -> None:
                self._send(status, json.dumps(payload, indent=1).encode(), "application/json")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                if status == 401:
                    self.send_header("www-authenticate", 'Bearer realm="switchyard"')
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
