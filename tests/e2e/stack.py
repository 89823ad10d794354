"""A real stack on 127.0.0.1 for end-to-end tests: fake backends, switchyard, Envoy.

Every process is a real subprocess started from the installed `switchyard` and
`envoy` commands; nothing is mocked. Ports are picked free at start.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from extproc.config import load_config
from extproc.tools import devstack
from extproc.tools.devstack import Proc, free_port, http_get, http_post
from extproc.tools.devstack import (
    wait_until as wait_until,  # for the tests that import it from here
)

(SWITCHYARD,) = devstack.SWITCHYARD  # the installed command: the tests run from the virtualenv
REPO = Path(__file__).resolve().parents[2]
MODEL_DIR = REPO / "build" / "model"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def backend(self) -> str:
        return self.headers.get("x-switchyard-backend", "")

    @property
    def route(self) -> str:
        return self.headers.get("x-switchyard-route", "")

    @property
    def cohort(self) -> str:
        return self.headers.get("x-switchyard-cohort", "")


def chat_body(*user_messages: str, **extra: Any) -> bytes:
    messages = [{"role": "user", "content": text} for text in user_messages]
    return json.dumps({"model": "any", "messages": messages, **extra}).encode()


class Client:
    """A keep-alive HTTP/1.1 client to Envoy's listener; one per thread."""

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self._port = port
        self._timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def request(
        self,
        body: bytes,
        headers: dict[str, str] | None = None,
        path: str = "/v1/chat/completions",
        method: str = "POST",
    ) -> Reply:
        for attempt in range(2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(
                    "127.0.0.1", self._port, timeout=self._timeout
                )
            try:
                all_headers = {"content-type": "application/json", **(headers or {})}
                self._conn.request(
                    method, path, body=body if method != "GET" else None, headers=all_headers
                )
                response = self._conn.getresponse()
                data = response.read()
                reply = Reply(
                    response.status, {k.lower(): v for k, v in response.getheaders()}, data
                )
                if response.getheader("connection", "").lower() == "close":
                    self.close()
                return reply
            except (ConnectionError, http.client.HTTPException):
                # A kept-alive connection Envoy closed meanwhile: one fresh try.
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def chat(
        self, *user_messages: str, headers: dict[str, str] | None = None, **extra: Any
    ) -> Reply:
        return self.request(chat_body(*user_messages, **extra), headers)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@dataclass
class Backend:
    name: str
    port: int
    process: Proc
    tls: bool = False

    def answers(self) -> bool:
        return http_get(self.port, "/stats", tls=self.tls)[0] == 200

    def control(self, **behaviour: float) -> None:
        status, _ = http_post(self.port, "/control", json.dumps(behaviour).encode())
        assert status == 200

    def stats(self) -> dict[str, Any]:
        return json.loads(http_get(self.port, "/stats", tls=self.tls)[1])

    def received(self) -> list[dict[str, Any]]:
        """Host, path and headers of each chat request this backend got."""
        return json.loads(http_get(self.port, "/received", tls=self.tls)[1])


@dataclass
class Stack:
    workdir: Path
    config: dict[str, Any]
    backends: dict[str, Backend] = field(default_factory=dict)
    switchyard: Proc | None = None
    envoy: Proc | None = None
    env: dict[str, str] = field(default_factory=dict)
    serve_args: list[str] = field(default_factory=list)
    backend_args: dict[str, list[str]] = field(default_factory=dict)
    """Extra `switchyard fake-backend` arguments per backend name."""
    envoy_env: dict[str, str] = field(default_factory=dict)
    _clients: threading.local = field(default_factory=threading.local)
    _all_clients: list[Client] = field(default_factory=list)

    @property
    def config_path(self) -> Path:
        return self.workdir / "switchyard.yaml"

    @property
    def port(self) -> int:
        return int(self.config["envoy"]["listen"].rsplit(":", 1)[1])

    @property
    def admin_port(self) -> int:
        return int(self.config["envoy"]["admin"].rsplit(":", 1)[1])

    @property
    def metrics_port(self) -> int:
        return int(self.config["server"]["metrics_listen"].rsplit(":", 1)[1])

    @property
    def client(self) -> Client:
        client = getattr(self._clients, "client", None)
        if client is None:
            client = self._clients.client = Client(self.port)
            self._all_clients.append(client)
        return client

    def write_config(self, config: dict[str, Any] | None = None) -> None:
        if config is not None:
            self.config = config
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(self.config, sort_keys=False))
        os.replace(tmp, self.config_path)  # atomic: the watcher never reads half a file

    def start_backends(self) -> None:
        self.launch_backends()
        self.wait_backends()

    def launch_backends(self) -> None:
        """Starts the fake backends without waiting for them (see `wait_backends`)."""
        for backend in self.config.get("backends", []):
            port = int(backend["address"].rsplit(":", 1)[1])
            self.launch_backend(backend["name"], port, *self.backend_args.get(backend["name"], []))

    def launch_backend(self, name: str, port: int, *extra: str) -> Backend:
        """`switchyard fake-backend` for one backend, seeded so that runs repeat (its log
        is appended to when it is started again)."""
        process = devstack.fake_backend(self.workdir, name, port, "--seed", "1", *extra)
        backend = self.backends[name] = Backend(name, port, process, tls="--tls-cert" in extra)
        return backend

    def wait_backends(self) -> None:
        # As long as switchyard may take: they start side by side, and on a busy machine
        # a dozen interpreters starting at once took over 15 s.
        for backend in self.backends.values():
            backend.process.wait_ready(60)

    def start_switchyard(self, timeout: float = 60) -> None:
        self.launch_switchyard()
        self.wait_switchyard(timeout)

    def launch_switchyard(self) -> None:
        """Starts switchyard without waiting for it (see `wait_switchyard`)."""
        self.switchyard = devstack.switchyard(
            self.workdir, self.config_path, self.metrics_port, args=self.serve_args, env=self.env
        )

    def wait_switchyard(self, timeout: float = 60) -> None:
        assert self.switchyard is not None
        self.switchyard.wait_ready(timeout)

    def start_envoy(self, edit: Callable[[dict[str, Any]], None] | None = None) -> None:
        """Renders Envoy's bootstrap as `switchyard envoy` does (a test may edit it) and starts Envoy."""
        self.launch_envoy(edit)
        self.wait_envoy()

    def launch_envoy(self, edit: Callable[[dict[str, Any]], None] | None = None) -> None:
        """Renders the bootstrap and starts Envoy without waiting (see `wait_envoy`)."""
        # Rendered here rather than by a `switchyard envoy` process: one interpreter start
        # less per stack (tests/unit/test_backends.py runs the command itself).
        bootstrap = devstack.write_bootstrap(
            self.workdir / "envoy.yaml", load_config(self.config_path), edit=edit
        )
        self.envoy = devstack.envoy(self.workdir, bootstrap, self.admin_port, env=self.envoy_env)

    def wait_envoy(self) -> None:
        assert self.envoy is not None
        self.envoy.wait_ready(30)

    def stop_switchyard(self, sig: int = signal.SIGKILL) -> None:
        if self.switchyard is not None:
            self.switchyard.stop(sig, timeout=60)
        self.switchyard = None

    def envoy_stats(self) -> dict[str, int]:
        status, body = http_get(self.admin_port, "/stats?format=json")
        assert status == 200
        return {
            item["name"]: item["value"] for item in json.loads(body)["stats"] if "value" in item
        }

    def switchyard_rss_kb(self) -> int:
        assert self.switchyard is not None
        status = Path(f"/proc/{self.switchyard.pid}/status").read_text()
        return int(
            next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1]
        )

    def switchyard_stats(self) -> dict[str, Any]:
        return json.loads(http_get(self.metrics_port, "/stats")[1])

    def observed_requests(self, **match: str) -> int:
        """Requests in switchyard's A/B numbers whose row has every given value (route=...)."""
        return sum(
            row["requests"]
            for row in self.switchyard_stats()["traffic"]
            if all(row[key] == value for key, value in match.items())
        )

    def report(self, *args: str) -> str:
        """`switchyard report` against this stack; its output."""
        result = subprocess.run(
            [
                SWITCHYARD,
                "report",
                "--admin",
                f"http://127.0.0.1:{self.admin_port}",
                "--switchyard",
                f"http://127.0.0.1:{self.metrics_port}",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def metrics_text(self) -> str:
        return http_get(self.metrics_port, "/metrics")[1].decode()

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        for client in self._all_clients:
            client.close()
        # switchyard and the backends are killed: their graceful stops (switchyard's drain,
        # then each interpreter's exit) cost ~1.5 s per stack, and the tests of a graceful
        # stop send SIGTERM themselves. Every log line is already in its file (Python's
        # logging flushes each record).
        backends = [backend.process for backend in self.backends.values()]
        for process in [self.switchyard, *backends]:
            if process is not None:
                process.kill()
        devstack.stop_all([self.envoy, self.switchyard, *backends], timeout=10)


OBSERVE_ALL = {"observe_sample": 1}
"""envoy settings for a test that counts every stable response (tokens, feedback, exact
totals); the product's default observes a tenth of stable's (extproc.response.sampling)."""


def make_config(
    backends: list[str],
    routes: list[dict[str, Any]],
    default_route: str,
    *,
    labels: list[dict[str, Any]] | None = None,
    classifier: dict[str, Any] | None = None,
    **sections: Any,
) -> dict[str, Any]:
    """A config on free ports; sections (server, envoy, analysis...) are merged in."""
    config: dict[str, Any] = {
        "server": {
            "listen": f"127.0.0.1:{free_port()}",
            "metrics_listen": f"127.0.0.1:{free_port()}",
            "reload_interval_s": 0.5,
            "drain_s": 0.5,
            # Requests in flight finish well within 2 s.
            "grace_s": 2,
        },
        "envoy": {
            "listen": f"127.0.0.1:{free_port()}",
            "admin": f"127.0.0.1:{free_port()}",
            "stats_listen": f"127.0.0.1:{free_port()}",
        },
        "backends": [{"name": name, "address": f"127.0.0.1:{free_port()}"} for name in backends],
        "routes": routes,
        "default_route": default_route,
    }
    if labels is not None:
        config["labels"] = labels
        config["classifier"] = {"model": str(MODEL_DIR), **(classifier or {})}
    for key, value in sections.items():
        config[key] = {**config.get(key, {}), **value}
    return config


@contextlib.contextmanager
def running_stack(
    workdir: Path,
    config: dict[str, Any],
    env: dict[str, str] | None = None,
    serve_args: list[str] | None = None,
    backend_args: dict[str, list[str]] | None = None,
    envoy_env: dict[str, str] | None = None,
) -> Iterator[Stack]:
    workdir.mkdir(parents=True, exist_ok=True)
    stack = Stack(
        workdir,
        config,
        env=env or {},
        serve_args=serve_args or [],
        backend_args=backend_args or {},
        envoy_env=envoy_env or {},
    )
    try:
        stack.write_config()
        # Backends and switchyard start side by side (switchyard needs no backend to
        # start); Envoy last, as it takes its routes from switchyard.
        stack.launch_backends()
        stack.launch_switchyard()
        stack.wait_backends()
        stack.wait_switchyard()
        stack.start_envoy()
        yield stack
    finally:
        stack.close()


@dataclass(frozen=True)
class Sent:
    at: float
    session: str
    status: int
    backend: str
    cohort: str


class Load:
    """Steady traffic from `threads` clients, each request a new session, until stopped."""

    def __init__(self, stack: Stack, prompt: str, threads: int = 8, pause_s: float = 0.0) -> None:
        self.sent: list[Sent] = []
        self._stack = stack
        self._prompt = prompt
        self._pause_s = pause_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _run(self, index: int) -> None:
        client = Client(self._stack.port)
        n = 0
        try:
            while not self._stop.is_set():
                session = f"load-{index}-{n}"
                n += 1
                reply = client.chat(self._prompt, headers={"x-session-id": session})
                with self._lock:
                    self.sent.append(
                        Sent(time.monotonic(), session, reply.status, reply.backend, reply.cohort)
                    )
                if self._pause_s:
                    time.sleep(self._pause_s)
        finally:
            client.close()

    def since(self, start: float) -> list[Sent]:
        with self._lock:
            return [s for s in self.sent if s.at >= start]


def backend_shares(sent: list[Sent]) -> dict[str, float]:
    """Each backend's share of the requests sent."""
    counts: dict[str, int] = {}
    for item in sent:
        counts[item.backend] = counts.get(item.backend, 0) + 1
    return {name: count / len(sent) for name, count in counts.items()}


def canary_config(**canary: Any) -> dict[str, Any]:
    """A keyword route `clinical` (med-v1) with a 10 % canary med-v2, and a default route."""
    routes: list[dict[str, Any]] = [
        {
            "name": "clinical",
            "match": {"keywords": ["symptom"]},
            "backends": [{"backend": "med-v1"}],
            "canary": {
                "backend": "med-v2",
                "percent": 10,
                "steps": [10, 25, 50, 100],
                "hold": {"seconds": 3600, "requests": 100},
                **canary,
            },
        },
        {"name": "general", "backends": [{"backend": "cheap"}]},
    ]
    config = make_config(
        ["med-v1", "med-v2", "cheap"],
        routes,
        "general",
        analysis={"interval_s": 0.5, "window_s": 30},
    )
    config["backends"][0]["price"] = {"prompt_per_1m": 2.0, "completion_per_1m": 8.0}
    return config
