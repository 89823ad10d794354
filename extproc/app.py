"""The running sidecar (`switchyard serve`): wiring, config reload, canary loop, shutdown."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from extproc.cache.service import ResponseCache
from extproc.config import Config, insecure_backends, load_config
from extproc.envoy_config import EnvoyResources, resources
from extproc.errors import ConfigError
from extproc.http_api import HttpApi
from extproc.metrics import Metrics
from extproc.request.runtime import Runtime, RuntimeHolder, build_runtime, check_reload
from extproc.rollout.canary import CanaryState, RolloutError, Rollouts
from extproc.rollout.controller import CanaryController
from extproc.rollout.progress import progress
from extproc.rollout.quality import Quality, Served
from extproc.rollout.shadow_comparison import compare
from extproc.rollout.traffic import TrafficStats
from extproc.server import ExternalProcessor, Health, start_grpc_server
from extproc.store import make_store
from extproc.store.clock import StoreClock
from extproc.upstream import upstream_mapping
from extproc.xds import REMOVAL_ORDER, XdsServer, snapshot

if TYPE_CHECKING:
    from extproc.cache.shared import SharedCache

log = logging.getLogger("switchyard")

GIL_SWITCH_INTERVAL_S = 0.0005
"""gRPC's poller thread, the classifier thread and the event loop hand the GIL to each
other on every request; Python's default (5 ms) lets a busy thread keep it that long.
Measured with make bench (one core): added p50 at c=1 2.56 -> 1.65 ms rules-only,
9.4 -> 8.2 ms semantic."""


RETIRE_MARGIN_S = 1.0
"""After a switch, Envoy keeps the previous version's routes this long past the ext_proc
message timeout: a request routed with the previous version reaches Envoy's router by then."""

OPERATOR_TIMEOUT_S = 10.0
"""An operator action waits this long for the store to commit it."""
T = TypeVar("T")


class Switchyard:
    def __init__(self, config_path: Path, config: Config) -> None:
        self.config_path = config_path
        self.metrics = Metrics()
        self.clock = StoreClock()
        self.rollouts = Rollouts()
        self.traffic = TrafficStats(self.metrics, clock=self.clock)
        self.quality = Quality(config, self.metrics, self.traffic.record_signal, self.clock)
        self.store = make_store(config, self.rollouts, self.traffic, self.metrics, self.clock)
        if config.quality.share_ids:
            self.store.share_requests(self.quality)
            self.quality.lookup = self._lookup_request
            self.quality.claim = self._claim_feedback
        self._loop: asyncio.AbstractEventLoop | None = None
        self.controller = CanaryController(
            lambda: self.config, self.rollouts, self.store, self.traffic, self.clock
        )
        self.rollouts.subscribe(self._on_rollout_change)
        runtime = build_runtime(config, self.rollouts, self.metrics)
        self.shared_cache: SharedCache | None = None
        if config.state.store == "redis":
            from extproc.cache.shared import SharedCache

            self.shared_cache = SharedCache(config.state, self.store.replica)
        self.cache = ResponseCache(self.metrics.registry, replication=self.shared_cache)
        self.cache.configure(config)
        self._adopt_rollouts(config)
        # What Envoy is served (xDS); with envoy.xds false, what its routes were made for.
        self._served = resources(config)
        self._started_mapping = upstream_mapping(config)
        self.xds = XdsServer(snapshot(self._served))
        self.runtimes = RuntimeHolder(runtime, self._served.version)
        self._config_stamp = self._stamps()
        self._reloading = asyncio.Lock()
        # The pending retirement of the previous config version (held: the loop keeps only
        # weak references to tasks).
        self._retiring: asyncio.Task[None] | None = None
        self.health = Health()

    @property
    def config(self) -> Config:
        return self.runtimes.current.config

    def _adopt_rollouts(self, config: Config) -> None:
        new_routes = self.rollouts.apply_config(config, self.store.starting_state)
        self.store.rollouts_changed(new_routes)
        self.traffic.analyse_routes(
            frozenset(self.rollouts.states()), keep_s=2 * config.analysis.window_s
        )
        self.traffic.observed_feeds_analysis = config.analysis.source == "observed"

    def _on_rollout_change(self, route: str, old: CanaryState | None, new: CanaryState) -> None:
        self.metrics.record_rollout(route, old, new)
        # The analysis reads traffic from the step's start on: a verdict on the next
        # step comes from traffic served at that step.
        self.controller.forget(route)

    # -- config reload -------------------------------------------------------------

    async def reload(self) -> bool:
        """Loads, validates and compiles the saved config; only a complete success replaces
        the running one, and with xDS only once every connected Envoy runs it too."""
        async with self._reloading:
            running = self.runtimes.current.config
            try:
                config, runtime, served = await asyncio.get_running_loop().run_in_executor(
                    None, self._compile
                )
            except Exception as exc:  # invalid, or a model that fails to load
                self.metrics.config_reloads.labels("failure").inc()
                why = str(exc) if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}"
                log.error("config reload refused, the running config stays: %s", why)
                return False
            if not config.envoy.xds and upstream_mapping(config) != self._started_mapping:
                self.metrics.config_reloads.labels("refused_external_envoy").inc()
                log.error(
                    "config reload refused, the running config stays: envoy.xds is false, so "
                    "Envoy's routes belong to another controller, and this change moves which "
                    "backend a request goes to or how its body is rewritten for it; change "
                    "both together and restart switchyard"
                )
                self.cache.configure(running)
                return False
            self.runtimes.offer(served.version, runtime)
            if config.envoy.xds and not await self._offer_envoy(config, served):
                self.runtimes.withdraw(served.version)
                self.cache.configure(running)
                return False
            self._served = served
            self.metrics.config_reloads.labels("success").inc()
            log.info("config %s reloaded from %s", served.version, self.config_path)
            if config.state != running.state:
                log.warning("config: changes to state.* take effect when switchyard restarts")
            self._adopt_rollouts(config)
            self.quality.configure(config)
            self.runtimes.switch(served.version)
        if config.envoy.xds:
            self._retiring = asyncio.create_task(self._retire_previous(config, served))
        else:
            self.runtimes.retire_all_but(served.version)
        return True

    def _compile(self) -> tuple[Config, Runtime, EnvoyResources]:
        """Everything that can fail, off the event loop: validation, the model, Envoy's
        resources as Envoy's own typed messages."""
        config = load_config(self.config_path)
        runtime = build_runtime(config, self.rollouts, self.metrics)
        # A block label keeps what it blocked (unless the config says force).
        check_reload(str(self.config_path), self.runtimes.current, runtime)
        served = resources(config)
        snapshot(served)  # a field Envoy's API does not have fails here
        self.cache.configure(config)
        return config, runtime, served

    async def _offer_envoy(self, config: Config, served: EnvoyResources) -> bool:
        """Make before break: Envoy gets the new version's routes, with the clusters both
        versions name (requests it matched with the previous one are still on their way to
        them); the request path decides each request with the version Envoy matched it
        with, and takes the new one as its own once every Envoy has acknowledged it."""
        offered = snapshot(served.keeping(self._served))
        error = await self.xds.publish(offered, config.envoy.xds_ack_timeout_s)
        if error is None:
            return True
        self.metrics.config_reloads.labels("envoy_rejected").inc()
        log.error(
            "config %s refused: %s; Envoy and switchyard stay on %s",
            served.version,
            error,
            self._served.version,
        )
        running = snapshot(self._served)
        timeout_s = config.envoy.xds_ack_timeout_s
        if await self.xds.publish(running, timeout_s, REMOVAL_ORDER) is not None:
            log.error("xds: an Envoy did not return to config %s", self._served.version)
        return False

    async def _retire_previous(self, config: Config, served: EnvoyResources) -> None:
        """Once no request Envoy matched with the previous version can still be on its way
        to switchyard, Envoy keeps this version's resources only."""
        await asyncio.sleep(config.envoy.message_timeout_ms / 1000 + RETIRE_MARGIN_S)
        async with self._reloading:
            if self._served is not served:
                return  # a newer version took over meanwhile
            self.runtimes.retire_all_but(served.version)
            error = await self.xds.publish(
                snapshot(served), config.envoy.xds_ack_timeout_s, REMOVAL_ORDER
            )
            if error is not None:
                log.error("xds: retiring the previous config version: %s", error)

    def _stamps(self) -> tuple[tuple[float, int] | None, ...]:
        """The config file's, and the client keys file's (it is part of the config)."""
        auth = self.config.auth
        keys = () if auth is None else (_stamp(auth.keys_file),)
        return (_stamp(self.config_path), *keys)

    async def _watch_config(self) -> None:
        while True:
            await asyncio.sleep(self.config.server.reload_interval_s)
            stamp = self._stamps()
            if stamp != self._config_stamp:
                self._config_stamp = stamp
                await self.reload()

    def act(self, route: str, action: str) -> CanaryState:
        """An operator action, from the HTTP thread: committed by the store on the loop."""
        assert self._loop is not None
        if action == "launch":
            self._check_shadow(route)
        future = asyncio.run_coroutine_threadsafe(
            self.store.act(route, action, "operator"), self._loop
        )
        return future.result(timeout=OPERATOR_TIMEOUT_S)

    def _lookup_request(self, request_id: str) -> Served | None:
        """From the HTTP thread: asks the fleet's store where a request went."""
        return self._on_loop(lambda: self.store.lookup_request(request_id), None)

    def _claim_feedback(self, request_id: str, kinds: list[str]) -> set[str]:
        """From the HTTP thread: which of these feedback kinds the fleet has not counted."""
        return self._on_loop(lambda: self.store.claim_feedback(request_id, kinds), set(kinds))

    def _on_loop(self, call: Callable[[], Coroutine[Any, Any, T]], fallback: T) -> T:
        """Runs a store call on the loop for the HTTP thread; `fallback` when the loop is not
        running yet or the call takes longer than an operator action may."""
        if self._loop is None:
            return fallback
        future = asyncio.run_coroutine_threadsafe(call(), self._loop)
        try:
            return future.result(timeout=OPERATOR_TIMEOUT_S)
        except TimeoutError:
            return fallback

    def _check_shadow(self, route: str) -> None:
        """`launch` takes a healthy shadow only (judged on this replica's observations)."""
        self.rollouts.get(route)  # a route without a canary: 404, as for any action
        shadow = compare(self.traffic.snapshot(), self.config).get(route)
        if shadow is None:
            raise RolloutError(f"route {route!r} has no shadow to launch")
        if shadow["verdict"] != "healthy":
            raise RolloutError(f"route {route!r}: the shadow is not healthy: {shadow['verdict']}")

    def status(self) -> dict[str, object]:
        """Every rollout as this replica serves it, and who decides (`rollout status`)."""
        routes = {}
        now = self.clock()
        for route, state in self.rollouts.states().items():
            verdict = self.controller.verdicts.get(route)
            canary = self.rollouts.canary(route)
            step_requests = self.rollouts.step_requests(route)
            routes[route] = {
                "backend": state.backend,
                "phase": state.phase.value,
                "percent": state.serving_percent,
                "step_percent": state.percent,
                "version": state.version,
                "reason": state.reason,
                "updated_by": state.updated_by,
                "updated_at": _iso(state.updated_at),
                "step_started": _iso(state.step_started),
                "step_requests_here": step_requests,
                "verdict": verdict.describe() if verdict else "judged by the leader",
                "verdict_detail": asdict(verdict) if verdict else None,
            }
            if canary is not None:
                routes[route].update(
                    progress(
                        route,
                        state,
                        canary,
                        verdict,
                        self.config.analysis,
                        now,
                        step_requests,
                        judged_here=self.store.decides() or not self.store.available,
                    )
                )
        return {
            "store": self.config.state.store,
            "store_available": self.store.available,
            "replica": self.store.replica,
            "leader": self.store.leader(),
            "config": {
                "version": self._served.version,
                "xds": self.config.envoy.xds,
                "envoys": self.xds.status(),
            },
            "rollouts": routes,
        }

    def stats(self) -> dict[str, object]:
        traffic = self.traffic.snapshot()
        return {
            "traffic": traffic,
            "quality": self.quality.snapshot(),
            "rollouts": self.status()["rollouts"],
            "shadows": compare(traffic, self.config),
            "cache": self.cache.snapshot(),
            "clients": self.metrics.client_rows(),
        }

    def purge_cache(self, route: str | None, partition: str | None) -> int:
        """`switchyard cache purge`, from the HTTP thread: done on the loop (and in Redis)."""
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(self.cache.purge(route, partition), self._loop)
        return future.result(timeout=OPERATOR_TIMEOUT_S)

    # -- lifecycle -----------------------------------------------------------------

    async def run(self) -> None:
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        cfg = self.config.server
        self._loop = asyncio.get_running_loop()
        # The fleet's state first: a replica serves what the fleet decided, not the
        # config's starting percent.
        await self.store.start()
        if self.shared_cache is not None:
            await self.shared_cache.start(self.cache)
        processor = ExternalProcessor(
            self.runtimes, self.metrics, self.traffic, self.quality, self.cache
        )
        server = await start_grpc_server(
            cfg.listen, processor, self.health, cfg.tls, self.xds if self.config.envoy.xds else None
        )
        admin_token = os.environ.get(cfg.admin_token_env) or None
        api = HttpApi(
            cfg.metrics_listen,
            self.metrics,
            self.act,
            self.status,
            self.stats,
            lambda: self.health.serving,
            admin_token,
            self.quality.feedback,
            purge_cache=self.purge_cache,
        )
        api.start()
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
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(self.reload()))
        tasks = [
            asyncio.create_task(self._watch_config()),
            asyncio.create_task(self.controller.run()),
        ]
        await stop.wait()
        # Report NOT_SERVING first, keep accepting streams while Envoy and the
        # probes notice, then let the streams in flight finish.
        log.info("shutting down: draining for %.1fs", cfg.drain_s)
        self.health.set_not_serving()
        await asyncio.sleep(cfg.drain_s)
        for task in tasks:
            task.cancel()
        await server.stop(grace=cfg.grace_s)
        await self.store.close()
        if self.shared_cache is not None:
            await self.shared_cache.close()
        api.stop()
        log.info("stopped")


def _iso(seconds: float) -> str | None:
    """Store-clock seconds (Unix time) as an ISO timestamp."""
    if not seconds:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")


def _stamp(path: Path) -> tuple[float, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime, stat.st_size
