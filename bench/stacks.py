"""Starting what a scenario runs on: the backend, Envoy, and a processor.

One fast backend serves every stack. Each stack is an Envoy (--concurrency 1)
with, for all but the ceiling, an ext_proc processor: switchyard itself, or
the trivial processor behind the Envoy config switchyard renders with every resource
inline (`switchyard envoy --static`: the trivial processor serves no xDS).
All stacks run side by side for the whole benchmark and take turns, so a
change in the machine's load touches every scenario alike.
"""

from __future__ import annotations

import http.client
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench import envoy_bootstrap
from bench.configs import RULES_PROMPT, RULES_ROUTE, Addresses, chat_body
from bench.procs import REPO
from extproc.tools import devstack
from extproc.tools.devstack import SWITCHYARD, Proc, free_port, taskset, wait_until


@dataclass(frozen=True)
class Pinning:
    """CPUs (taskset -c lists) for each kind of process; None leaves it to the scheduler."""

    mode: str
    load: str | None = None
    backend: str | None = None
    envoy: str | None = None
    processor: str | None = None

    @classmethod
    def named(cls, mode: str) -> Pinning:
        if mode == "none":
            return cls(mode)
        if mode == "split":
            # wrk and the backend on one core, the system under test on the other.
            return cls(mode, load="1", backend="1", envoy="0", processor="0")
        if mode == "load":
            # Only wrk and the backend are kept off the system under test's core 0;
            # Envoy and the processor may use both cores.
            return cls(mode, load="1", backend="1")
        if mode == "both":
            # The system under test pinned to two cores (server.workers: 2 has a core per
            # worker); wrk and the backend on the cores beyond them when the machine has
            # them, else on core 1 beside it (a 2-core machine has no third core).
            cpus = os.cpu_count() or 1
            rest = "1" if cpus < 4 else f"2-{cpus - 1}"
            return cls(mode, load=rest, backend=rest, envoy="0,1", processor="0,1")
        raise ValueError(f"unknown pinning {mode!r}: expected none, load, both or split")


@dataclass
class Stack:
    name: str
    envoy: Proc
    admin_port: int
    port: int
    processor: Proc | None = None
    metrics_port: int | None = None
    """switchyard's HTTP port (/metrics); None for the trivial processor and the ceiling."""
    config_file: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/chat/completions"

    @property
    def procs(self) -> list[Proc]:
        return [self.envoy, *([self.processor] if self.processor else [])]

    def probe(self, body: bytes) -> tuple[int, str]:
        """One request through the stack: its status and the route switchyard picked."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("POST", "/v1/chat/completions", body, {"content-type": "application/json"})
            response = conn.getresponse()
            response.read()
            return response.status, response.getheader("x-switchyard-route") or ""
        finally:
            conn.close()


@dataclass
class Lab:
    """Owns every process of a benchmark run and stops them all at the end."""

    workdir: Path
    pinning: Pinning
    procs: list[Proc] = field(default_factory=list)
    backend_address: str = ""
    redis: str = ""
    baseline_src: Path | None = None
    """Another checkout's source tree (`git archive REV | tar -x -C DIR`): the -baseline
    stacks run switchyard from it, with this venv's packages, for a same-run comparison."""

    def _keep(self, proc: Proc) -> Proc:
        self.procs.append(proc)
        return proc

    def _envoy(self, name: str, bootstrap: Path, cpus: str | None, admin: int) -> Proc:
        proc = devstack.envoy(self.workdir, bootstrap, admin, name=name, cpus=cpus, cwd=REPO)
        return self._keep(proc).wait_ready(30)

    def _write(self, name: str, data: dict[str, Any]) -> Path:
        path = self.workdir / name
        path.write_text(yaml.safe_dump(data, sort_keys=False, width=120))
        return path

    def start_backend(self) -> None:
        port, admin = free_port(), free_port()
        self.backend_address = f"127.0.0.1:{port}"
        bootstrap = self._write(
            "backend-envoy.yaml",
            envoy_bootstrap.backend(self.backend_address, f"127.0.0.1:{admin}"),
        )
        self._envoy("backend", bootstrap, self.pinning.backend, admin)

    def redis_url(self) -> str:
        """The redis-server of the stacks whose rollout state is shared (started once)."""
        if not self.redis:
            self.redis = self._start_redis()
        return self.redis

    def _start_redis(self) -> str:
        port = free_port()
        proc = devstack.redis(self.workdir, port, name="redis", cpus=self.pinning.backend)
        self._keep(proc).wait_ready(10)
        return f"redis://127.0.0.1:{port}/0"

    def start_ceiling(self, name: str) -> Stack:
        port, admin = free_port(), free_port()
        bootstrap = self._write(
            f"{name}-envoy.yaml",
            envoy_bootstrap.ceiling(
                f"127.0.0.1:{port}", f"127.0.0.1:{admin}", self.backend_address
            ),
        )
        stack = Stack(
            name, self._envoy(f"{name}-envoy", bootstrap, self.pinning.envoy, admin), admin, port
        )
        self._check(stack, "")
        return stack

    def _switchyard(self, name: str) -> list[str]:
        if not name.endswith("-baseline"):
            return SWITCHYARD
        if self.baseline_src is None:
            raise RuntimeError(f"{name}: run with --baseline DIR (another checkout's source)")
        # -P: without it, `-m` puts the working directory (this checkout) ahead of
        # PYTHONPATH, and the "baseline" silently ran this tree's code.
        command = [sys.executable, "-P", "-m", "extproc.cli"]
        return ["env", f"PYTHONPATH={self.baseline_src}", *command]

    def _render_envoy(self, name: str, config_file: Path, static: bool = False) -> Path:
        """`switchyard envoy` (that stack's own, for a -baseline one); with `static` every
        resource inline, for a processor that serves no xDS."""
        bootstrap = self.workdir / f"{name}-envoy.yaml"
        command = [*self._switchyard(name), "envoy", "-c", str(config_file), "-o", str(bootstrap)]
        command += ["--static"] if static else []
        Proc.start(f"{name}-render", command, self.workdir, cwd=REPO).wait(timeout=60)
        if not bootstrap.exists():
            raise RuntimeError(f"switchyard envoy did not render {bootstrap}")
        return bootstrap

    def start_switchyard(
        self, name: str, config: dict[str, Any], addresses: Addresses, probe: bytes, route: str
    ) -> Stack:
        config_file = self._write(f"{name}.yaml", config)
        processor = devstack.switchyard(
            self.workdir,
            config_file,
            addresses.metrics,
            name=f"{name}-switchyard",
            cwd=REPO,
            cpus=self.pinning.processor,
            switchyard=self._switchyard(name),
        )
        # Loading the model takes a few seconds; rules-only starts at once.
        self._keep(processor).wait_ready(120)
        bootstrap = self._render_envoy(name, config_file)
        envoy = self._envoy(f"{name}-envoy", bootstrap, self.pinning.envoy, addresses.admin)
        stack = Stack(
            name,
            envoy,
            addresses.admin,
            addresses.listen,
            processor,
            addresses.metrics,
            config_file,
        )
        self._check(stack, route, probe)
        return stack

    def start_trivial(self, name: str, config: dict[str, Any], addresses: Addresses) -> Stack:
        """switchyard's Envoy config for `config`, all of it inline, with the trivial processor
        behind it: only the processor differs from the rules stack."""
        config_file = self._write(f"{name}.yaml", config)
        command = [
            *taskset(self.pinning.processor),
            sys.executable,
            str(REPO / "bench" / "trivial_processor.py"),
            "--listen",
            f"127.0.0.1:{addresses.grpc}",
            "--route",
            RULES_ROUTE,
        ]
        processor = self._keep(Proc.start(f"{name}-processor", command, self.workdir, cwd=REPO))
        bootstrap = self._render_envoy(name, config_file, static=True)
        envoy = self._envoy(f"{name}-envoy", bootstrap, self.pinning.envoy, addresses.admin)
        stack = Stack(name, envoy, addresses.admin, addresses.listen, processor, None, config_file)
        self._check(stack, RULES_ROUTE)
        return stack

    def _check(self, stack: Stack, route: str, body: bytes | None = None) -> None:
        """Waits until a request goes through and, with a processor, is routed as expected.

        route "" expects no routing; "*" accepts any route switchyard picks.
        """
        body = body or chat_body(RULES_PROMPT)

        def routed() -> bool:
            for proc in stack.procs:
                proc.check_alive()
            status, got = stack.probe(body)
            return status == 200 and (got == route or (route == "*" and got not in ("", "-")))

        wait_until(routed, 60, f"{stack.name}: a request routed to {route or 'the backend'}")

    def stop(self) -> None:
        # All at once: each switchyard drains for server.drain_s after SIGTERM.
        for proc in self.procs:
            proc.terminate()
        for proc in reversed(self.procs):
            proc.stop()
