"""Worker 0's side: it starts workers 1..N-1 (the same CLI, `serve --worker I`), restarts
one that dies, stops them with itself, and hands each new config version to all of them
before Envoy may name it (extproc.reload).

The hand-off, per version: `offer` (each live child builds the version's runtime and
acks), then worker 0 publishes it to Envoy; `switch` once Envoy runs it (or `withdraw`
if Envoy refused it); `retire` the previous one later. A child started (or restarted)
gets every version worker 0 holds and which is current, under the same lock as an
offer, so it never misses one half-way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge

from extproc.config import Config
from extproc.metrics import MetricGroup, Metrics
from extproc.workers.channel import Channel

log = logging.getLogger("switchyard.workers")

START_TIMEOUT_S = 180.0
"""How long a child may take to load its model(s) and serve."""
RESTART_BACKOFF_S = (0.2, 10.0)
"""The first restart waits the first, each next one twice as long, up to the second."""
STOP_MARGIN_S = 5.0
"""A child still running this long after its drain and grace is killed."""


class Workers(Protocol):
    """What the app and the config reloader ask of the other workers (NoWorkers when there
    are none)."""

    async def start(self, version: str, config: Config) -> None:
        """Starts them serving `version`; returns once they all serve."""

    async def offer(self, version: str, config: Config, timeout_s: float) -> str | None:
        """None once every live child holds the version; otherwise why not."""

    async def switch(self, version: str) -> None: ...

    async def withdraw(self, version: str) -> None: ...

    async def retire_all_but(self, version: str) -> None: ...

    def terminate(self) -> None:
        """Children drain as worker 0 does (SIGTERM); none is started again."""

    async def stop(self, within_s: float) -> None:
        """Waits for the children to exit, kills those still running after within_s."""


class NoWorkers:
    async def start(self, version: str, config: Config) -> None:
        pass

    async def offer(self, version: str, config: Config, timeout_s: float) -> str | None:
        return None

    async def switch(self, version: str) -> None:
        pass

    async def withdraw(self, version: str) -> None:
        pass

    async def retire_all_but(self, version: str) -> None:
        pass

    def terminate(self) -> None:
        pass

    async def stop(self, within_s: float) -> None:
        pass


class WorkerMetrics(MetricGroup):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        self.running = Gauge(
            "switchyard_workers_running",
            "Child workers (server.workers - 1 when all are up) serving ext_proc; worker 0 "
            "counts them.",
            registry=self.registry,
        )
        self.restarts = Counter(
            "switchyard_worker_restarts",
            "Child workers that stopped on their own and were started again, by worker.",
            ["worker"],
            registry=self.registry,
        )


@dataclass(eq=False)
class Child:
    worker: int
    process: asyncio.subprocess.Process
    channel: Channel
    acks: dict[int, asyncio.Future[str | None]] = field(default_factory=dict)
    reader: asyncio.Task[None] | None = None
    """Reads its messages (held: the loop keeps only weak references to tasks)."""
    ready: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


def _config_json(config: Config) -> Any:
    return config.model_dump(mode="json")


class WorkerPool:
    """Children 1..workers-1 of this process."""

    def __init__(self, command: list[str], workers: int, metrics: WorkerMetrics) -> None:
        """command: the CLI that serves, up to and including `serve -c FILE`."""
        self._command = command
        self._workers = workers
        self._metrics = metrics
        self._children: dict[int, Child] = {}
        self._versions: dict[str, Any] = {}
        """Every version worker 0 holds (offered, current, still retiring): its config."""
        self._current = ""
        self._lock = asyncio.Lock()
        self._ids = iter(range(1, 1 << 62))
        self._supervisors: list[asyncio.Task[None]] = []
        self._stopping = False

    @property
    def live(self) -> list[int]:
        return sorted(self._children)

    def pids(self) -> dict[int, int]:
        return {w: child.process.pid for w, child in self._children.items()}

    async def start(self, version: str, config: Config) -> None:
        """Starts every child; returns once all serve (or failed their first start, which
        their supervisor retries)."""
        self._versions = {version: _config_json(config)}
        self._current = version
        first_starts = []
        for worker in range(1, self._workers):
            started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._supervisors.append(asyncio.create_task(self._supervise(worker, started)))
            first_starts.append(started)
        await asyncio.gather(*first_starts)
        log.info("%d of %d workers serving ext_proc", len(self._children) + 1, self._workers)

    async def _supervise(self, worker: int, started: asyncio.Future[None]) -> None:
        backoff = RESTART_BACKOFF_S[0]
        first = True
        while not self._stopping:
            try:
                child = await self._spawn(worker)
            except Exception as exc:
                log.error("worker %d did not start: %s; retrying in %.1fs", worker, exc, backoff)
                child = None
            if first:
                first = False
                started.set_result(None)
            if child is not None:
                code = await child.process.wait()
                self._children.pop(worker, None)
                self._metrics.running.set(len(self._children))
                # An offer it had not answered needs it no more: its next start brings
                # every version worker 0 holds by then.
                for ack in child.acks.values():
                    if not ack.done():
                        ack.set_result(None)
                child.channel.close()
                if self._stopping:
                    return
                self._metrics.restarts.labels(str(worker)).inc()
                log.error("worker %d stopped (exit %s); starting it again", worker, code)
                if child.ready.done():
                    backoff = RESTART_BACKOFF_S[0]  # it had served: start it again at once
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RESTART_BACKOFF_S[1])

    async def _spawn(self, worker: int) -> Child:
        async with self._lock:
            ours, theirs = socket.socketpair()
            try:
                process = await asyncio.create_subprocess_exec(
                    *self._command,
                    "--worker",
                    str(worker),
                    "--worker-fd",
                    str(theirs.fileno()),
                    pass_fds=(theirs.fileno(),),
                )
            finally:
                theirs.close()
            child = Child(worker, process, await Channel.over(ours))
            reader = asyncio.create_task(self._read(child))
            try:
                await child.channel.send(
                    {"op": "start", "current": self._current, "versions": self._versions}
                )
                await asyncio.wait_for(asyncio.shield(child.ready), START_TIMEOUT_S)
            except BaseException:
                reader.cancel()
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
                child.channel.close()
                raise
            child.reader = reader
            self._children[worker] = child
            self._metrics.running.set(len(self._children))
            log.info("worker %d (pid %d) serving", worker, process.pid)
            return child

    async def _read(self, child: Child) -> None:
        while (message := await child.channel.receive()) is not None:
            if message.get("op") == "ready" and not child.ready.done():
                child.ready.set_result(None)
            elif message.get("op") == "ack":
                ack = child.acks.pop(int(message["id"]), None)
                if ack is not None and not ack.done():
                    ack.set_result(message.get("error"))
        if not child.ready.done():
            child.ready.set_exception(RuntimeError(f"worker {child.worker} exited before serving"))

    async def offer(self, version: str, config: Config, timeout_s: float) -> str | None:
        async with self._lock:
            self._versions[version] = _config_json(config)
            children = list(self._children.values())
            waits = []
            for child in children:
                ack_id = next(self._ids)
                ack: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
                child.acks[ack_id] = ack
                try:
                    await child.channel.send(
                        {
                            "op": "offer",
                            "id": ack_id,
                            "version": version,
                            "config": self._versions[version],
                        }
                    )
                except ConnectionError:  # stopped: started again with what is held
                    ack.set_result(None)
                waits.append(ack)
            if waits:
                await asyncio.wait(waits, timeout=timeout_s)
            for child, ack in zip(children, waits, strict=True):
                if not ack.done():
                    ack.cancel()
                    return f"worker {child.worker}: no answer within {timeout_s:g}s"
                if ack.result() is not None:
                    return f"worker {child.worker}: {ack.result()}"
            return None

    async def _tell(self, message: dict[str, Any]) -> None:
        for child in list(self._children.values()):
            with contextlib.suppress(ConnectionError):
                await child.channel.send(message)

    async def switch(self, version: str) -> None:
        async with self._lock:
            self._current = version
            await self._tell({"op": "switch", "version": version})

    async def withdraw(self, version: str) -> None:
        async with self._lock:
            if version != self._current:
                self._versions.pop(version, None)
            await self._tell({"op": "withdraw", "version": version})

    async def retire_all_but(self, version: str) -> None:
        async with self._lock:
            self._versions = {version: self._versions[version]}
            await self._tell({"op": "retire", "version": version})

    def terminate(self) -> None:
        """Children drain as worker 0 does (SIGTERM); none is started again."""
        self._stopping = True
        for child in self._children.values():
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)

    async def stop(self, within_s: float) -> None:
        """Waits for the children to exit, kills those still running after within_s."""
        self.terminate()
        processes = [child.process for child in self._children.values()]
        try:
            await asyncio.wait_for(
                asyncio.gather(*(p.wait() for p in processes)), within_s + STOP_MARGIN_S
            )
        except TimeoutError:
            for process in processes:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
        for task in self._supervisors:
            task.cancel()
        self._children.clear()
        self._metrics.running.set(0)


def worker_pool(
    worker: int, command: list[str] | None, config: Config, metrics: Metrics
) -> Workers:
    """What worker `worker` runs beside itself: in worker 0, workers 1..N-1 (started by
    `Workers.start`); NoWorkers in a child or when server.workers is 1.

    command: how worker 0 starts a child (the CLI up to `serve -c FILE`)."""
    workers = config.server.workers
    if worker != 0 or workers == 1:
        return NoWorkers()
    if command is None:
        raise RuntimeError("server.workers > 1 needs the command that starts a worker")
    return WorkerPool(command, workers, WorkerMetrics(metrics.registry))
