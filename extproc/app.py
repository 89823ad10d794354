"""The running sidecar (`switchyard serve`): wiring and lifecycle (start, signals, shutdown)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

from extproc.admin import Admin, LoopBridge
from extproc.cache.service import ResponseCache
from extproc.cache.shared import SharedCache
from extproc.config import Config
from extproc.http_api import HttpApi
from extproc.logs import announce
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
from extproc.workers.follower import follow
from extproc.workers.pool import worker_pool

log = logging.getLogger("switchyard")


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
        redis = config.state.store == "redis"
        self.shared_cache = SharedCache(config.state, self.store.replica) if redis else None
        self.cache = ResponseCache(registry, replication=self.shared_cache)
        self.cache.configure(config)
        self.workers = worker_pool(worker, worker_command, config, self.metrics)
        self.reloader = ConfigReloader(
            config_path,
            config,
            self.rollouts,
            self.metrics,
            self.request_metrics,
            self.cache,
            self._adopt,
            self.workers,
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
        cfg = self.config.server
        loop = asyncio.get_running_loop()
        self.bridge.attach(loop)
        # The fleet's state first: a replica serves what the fleet decided, not the
        # config's starting percent.
        await self.store.start()
        if self.shared_cache is not None:
            await self.shared_cache.start(self.cache)
        # Worker 0 alone starts the other workers (and serves once they all do), serves
        # Envoy's config and the admin API, and watches the file.
        leader = self.worker == 0
        await self.workers.start(self.reloader.version, self.config)
        processor = ExternalProcessor(
            self.reloader.runtimes,
            self.metrics,
            self.request_metrics,
            self.traffic,
            self.quality,
            self.cache,
        )
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
            announce(self.config, admin_token)
            loop.add_signal_handler(signal.SIGINT, stop.set)
            loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(self.reloader.reload()))
            tasks.append(asyncio.create_task(self.reloader.watch()))
        else:
            # Ctrl-C reaches every process of the terminal: worker 0 stops the children.
            loop.add_signal_handler(signal.SIGINT, lambda: None)
            assert channel is not None
            log.info("worker %d serving ext_proc on %s", self.worker, listen)
            tasks.append(asyncio.create_task(follow(channel, self.reloader, stop)))
        await stop.wait()
        self.workers.terminate()  # the children drain alongside
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
        await self.workers.stop(cfg.grace_s)
        await self.store.close()
        if self.shared_cache is not None:
            await self.shared_cache.close()
        api.stop()
        log.info("stopped")
