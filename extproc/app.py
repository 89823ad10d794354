"""The running sidecar (`switchyard serve`): wiring and lifecycle (start, signals, shutdown)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from extproc.admin import Admin, LoopBridge
from extproc.cache.service import ResponseCache
from extproc.config import Config, insecure_backends
from extproc.http_api import HttpApi
from extproc.metrics import Metrics
from extproc.reload import ConfigReloader
from extproc.request.metrics import RequestMetrics
from extproc.rollout.canary import Rollouts
from extproc.rollout.controller import CanaryController
from extproc.rollout.metrics import RolloutMetrics
from extproc.rollout.quality import Quality
from extproc.rollout.traffic import TrafficStats
from extproc.server import ExternalProcessor, Health, start_grpc_server
from extproc.store import make_store
from extproc.store.clock import StoreClock
from extproc.store.metrics import StoreMetrics
from extproc.workers.addresses import worker_address
from extproc.workers.channel import Channel
from extproc.workers.follower import connect, follow
from extproc.workers.pool import WorkerMetrics, WorkerPool

if TYPE_CHECKING:
    from extproc.cache.shared import SharedCache

log = logging.getLogger("switchyard")

GIL_SWITCH_INTERVAL_S = 0.0005
"""gRPC's poller thread, the classifier thread and the event loop hand the GIL to each
other on every request; Python's default (5 ms) lets a busy thread keep it that long.
Measured with make bench (one core): added p50 at c=1 2.56 -> 1.65 ms rules-only,
9.4 -> 8.2 ms semantic."""


class Switchyard:
    def __init__(
        self,
        config_path: Path,
        config: Config,
        worker: int = 0,
        worker_command: list[str] | None = None,
    ) -> None:
        """worker: 0 for the process `switchyard serve` starts, i for its child worker i
        (server.workers); worker_command: how worker 0 starts a child (the CLI up to
        `serve -c FILE`)."""
        self.worker = worker
        self._worker_command = worker_command
        # One registry (what /metrics serves); each area declares its own metrics on it.
        self.metrics = Metrics()
        registry = self.metrics.registry
        self.request_metrics = RequestMetrics(registry)
        rollout_metrics = RolloutMetrics(registry)
        self.clock = StoreClock()
        self.rollouts = Rollouts()
        self.rollouts.subscribe(rollout_metrics.record_rollout)
        self.traffic = TrafficStats(rollout_metrics, clock=self.clock)
        self.store = make_store(
            config, self.rollouts, self.traffic, StoreMetrics(registry), self.clock
        )
        self.bridge = LoopBridge(self.store)
        shared_ids = config.quality.share_ids
        self.quality = Quality(
            config,
            rollout_metrics,
            self.traffic.record_signal,
            self.clock,
            lookup=self.bridge.lookup_request if shared_ids else None,
            claim=self.bridge.claim_feedback if shared_ids else None,
        )
        if shared_ids:
            self.store.share_requests(self.quality)
        self.controller = CanaryController(
            lambda: self.config,
            self.rollouts,
            self.store,
            self.traffic,
            self.clock,
            # Envoy's counters are the pod's: read (and added to the fleet's) once.
            reads_envoy_stats=worker == 0,
        )
        self.shared_cache: SharedCache | None = None
        if config.state.store == "redis":
            from extproc.cache.shared import SharedCache

            self.shared_cache = SharedCache(config.state, self.store.replica)
        self.cache = ResponseCache(registry, replication=self.shared_cache)
        self.cache.configure(config)
        self.reloader = ConfigReloader(
            config_path,
            config,
            self.rollouts,
            self.metrics,
            self.request_metrics,
            self.cache,
            self._adopt,
        )
        self.controller.adopt(config)
        self.admin = Admin(
            self.bridge,
            self.reloader,
            self.rollouts,
            self.store,
            self.controller,
            self.traffic,
            self.quality,
            self.cache,
            self.request_metrics,
            self.clock,
        )
        self.health = Health()

    @property
    def config(self) -> Config:
        return self.reloader.config

    def _adopt(self, config: Config) -> None:
        """A reloaded config replaces the running one."""
        self.controller.adopt(config)
        self.quality.configure(config)

    async def run(self, channel: Channel | None = None) -> None:
        """Serves until SIGTERM; a child worker (`channel` to worker 0) also until worker 0
        goes."""
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        cfg = self.config.server
        loop = asyncio.get_running_loop()
        self.bridge.attach(loop)
        # The fleet's state first: a replica serves what the fleet decided, not the
        # config's starting percent.
        await self.store.start()
        if self.shared_cache is not None:
            await self.shared_cache.start(self.cache)
        pool = await self._start_workers()
        processor = ExternalProcessor(
            self.reloader.runtimes,
            self.metrics,
            self.request_metrics,
            self.traffic,
            self.quality,
            self.cache,
        )
        # Worker 0 alone serves Envoy's config, the admin API and watches the file.
        leader = self.worker == 0
        xds = self.reloader.xds if self.config.envoy.xds and leader else None
        listen = worker_address(cfg.listen, self.worker)
        server = await start_grpc_server(listen, processor, self.health, cfg.tls, xds)
        admin_token = os.environ.get(cfg.admin_token_env) or None
        api = HttpApi(
            worker_address(cfg.metrics_listen, self.worker),
            self.metrics,
            self.admin.act,
            self.admin.status,
            self.admin.stats,
            lambda: self.health.serving,
            admin_token,
            self.quality.feedback,
            purge_cache=self.admin.purge_cache,
            read_only=not leader,
        )
        api.start()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        tasks = [asyncio.create_task(self.controller.run())]
        if leader:
            self._announce(admin_token)
            loop.add_signal_handler(signal.SIGINT, stop.set)
            loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(self.reloader.reload()))
            tasks.append(asyncio.create_task(self.reloader.watch()))
        else:
            # Ctrl-C reaches every process of the terminal: worker 0 stops the children.
            loop.add_signal_handler(signal.SIGINT, lambda: None)
            assert channel is not None
            log.info("worker %d serving ext_proc on %s", self.worker, listen)
            await channel.send({"op": "ready"})
            tasks.append(asyncio.create_task(follow(channel, self.reloader, stop)))
        await stop.wait()
        if pool is not None:
            pool.terminate()  # the children drain alongside
        # Report NOT_SERVING first, keep accepting streams while Envoy and the
        # probes notice, then let the streams in flight finish.
        log.info("shutting down: draining for %.1fs", cfg.drain_s)
        self.health.set_not_serving()
        await asyncio.sleep(cfg.drain_s)
        for task in tasks:
            task.cancel()
        # Stop taking new streams, then end the config streams: the routing streams in
        # flight get the grace period, Envoy's ADS streams (which never end) do not.
        stopping = asyncio.create_task(server.stop(grace=cfg.grace_s))
        await asyncio.sleep(0)
        self.reloader.xds.close()
        await stopping
        if pool is not None:
            await pool.stop(cfg.grace_s)
        await self.store.close()
        if self.shared_cache is not None:
            await self.shared_cache.close()
        api.stop()
        log.info("stopped")

    async def _start_workers(self) -> WorkerPool | None:
        """Worker 0 of several starts the others, and serves once they all do."""
        workers = self.config.server.workers
        if self.worker != 0 or workers == 1:
            return None
        if self._worker_command is None:
            raise RuntimeError("server.workers > 1 needs the command that starts a worker")
        pool = WorkerPool(self._worker_command, workers, WorkerMetrics(self.metrics.registry))
        await pool.start(self.reloader.version, self.config)
        self.reloader.workers = pool
        log.info("%d workers serving ext_proc", workers)
        return pool

    def _announce(self, admin_token: str | None) -> None:
        """What is served where, and the settings an operator must not miss."""
        cfg = self.config.server
        log.info(
            "serving ext_proc on %s (%s), metrics on %s",
            cfg.listen,
            "mutual TLS" if cfg.tls else "plaintext",
            cfg.metrics_listen,
        )
        if admin_token is None:
            log.warning(
                "$%s is unset or empty: POST /rollout on %s answers loopback clients only; set it "
                "to accept the bearer token from anywhere",
                cfg.admin_token_env,
                cfg.metrics_listen,
            )
        else:
            log.info("POST /rollout requires the bearer token from $%s", cfg.admin_token_env)
        for name in insecure_backends(self.config):
            log.warning(
                "backend %s: insecure_skip_verify is set, its TLS certificate is NOT verified",
                name,
            )


async def run_worker(config_path: Path, worker: int, fd: int) -> None:
    """A child worker: the config versions come from worker 0 over the pipe `fd`."""
    channel, current, versions = await connect(fd)
    app = Switchyard(config_path, versions[current], worker=worker)
    runtimes = app.reloader.runtimes
    for version, config in versions.items():
        if version != current:
            await app.reloader.take_offer(version, config)
    if not runtimes.holds(current):  # the same digest, unless the two builds differ
        runtimes.offer(current, runtimes.current)
    await app.run(channel)
