"""Config versions: loading a changed config, switching the request path and Envoy (xDS) to
it together, and retiring the previous version once nothing can still need it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from extproc.cache.service import ResponseCache
from extproc.config import Config, config_warnings, load_config
from extproc.envoy_config import EnvoyResources, resources
from extproc.errors import ConfigError
from extproc.metrics import Metrics
from extproc.request.metrics import RequestMetrics
from extproc.request.runtime import Runtime, RuntimeHolder, build_runtime, check_reload
from extproc.rollout.canary import Rollouts
from extproc.upstream import upstream_mapping
from extproc.workers.pool import NoWorkers, Workers
from extproc.xds import REMOVAL_ORDER, XdsServer, snapshot

log = logging.getLogger("switchyard")

RETIRE_MARGIN_S = 1.0
"""After a switch, Envoy keeps the previous version's routes this long past the ext_proc
message timeout: a request routed with the previous version reaches Envoy's router by then."""

WORKER_BUILD_ALLOWANCE = 3.0
"""The other workers build each new config after worker 0, on the same cores, beside each
other and the traffic: they get Envoy's ack timeout plus this many times worker 0's own
build time to hold it (embedding a 3,000-example label takes each several seconds)."""

Stamp = tuple[float, int] | None


class ConfigReloader:
    """Owns the config versions: the request path's runtimes by version, what Envoy is
    served (xDS), and the watch on the config file."""

    def __init__(
        self,
        config_path: Path,
        config: Config,
        rollouts: Rollouts,
        metrics: Metrics,
        request_metrics: RequestMetrics,
        cache: ResponseCache,
        adopt: Callable[[Config], None],
        workers: Workers | None = None,
    ) -> None:
        """adopt: hands a config that replaced the running one to the rest of the server.
        workers: the other workers (server.workers), which hold every version before Envoy
        may name it."""
        self.config_path = config_path
        self._rollouts = rollouts
        self._metrics = metrics
        self._request_metrics = request_metrics
        self._cache = cache
        self._adopt = adopt
        # What Envoy is served (xDS); with envoy.xds false, what its routes were made for.
        self._served = resources(config)
        self._started_mapping = upstream_mapping(config)
        self.xds = XdsServer(snapshot(self._served))
        self.runtimes = RuntimeHolder(
            build_runtime(config, rollouts, request_metrics), self._served.version
        )
        self._stamp = self._stamps()
        self.workers = NoWorkers() if workers is None else workers
        self._reloading = asyncio.Lock()
        # The pending retirement of the previous config version (held: the loop keeps only
        # weak references to tasks).
        self._retiring: asyncio.Task[None] | None = None

    @property
    def config(self) -> Config:
        return self.runtimes.current.config

    @property
    def version(self) -> str:
        """The config version Envoy is served (or its routes were made for)."""
        return self._served.version

    async def reload(self) -> bool:
        """Loads, validates and compiles the saved config; only a complete success replaces
        the running one, and with xDS only once every connected Envoy runs it too."""
        async with self._reloading:
            running = self.runtimes.current.config
            try:
                started = time.monotonic()
                config, runtime, served = await asyncio.get_running_loop().run_in_executor(
                    None, self._compile
                )
                built_s = time.monotonic() - started
            except Exception as exc:  # invalid, or a model that fails to load
                self._metrics.config_reloads.labels("failure").inc()
                why = str(exc) if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}"
                log.error("config reload refused, the running config stays: %s", why)
                return False
            if not config.envoy.xds and upstream_mapping(config) != self._started_mapping:
                self._metrics.config_reloads.labels("refused_external_envoy").inc()
                log.error(
                    "config reload refused, the running config stays: envoy.xds is false, so "
                    "Envoy's routes belong to another controller, and this change moves which "
                    "backend a request goes to or how its body is rewritten for it; change "
                    "both together and restart switchyard"
                )
                self._cache.configure(running)
                return False
            self.runtimes.offer(served.version, runtime)
            # Every worker holds the version before Envoy may match a request with it.
            refused = await self.workers.offer(
                served.version,
                config,
                config.envoy.xds_ack_timeout_s + WORKER_BUILD_ALLOWANCE * built_s,
            )
            if refused is not None:
                self._metrics.config_reloads.labels("worker_refused").inc()
                log.error(
                    "config %s refused, the running config stays: %s", served.version, refused
                )
            if refused is not None or (
                config.envoy.xds and not await self._offer_envoy(config, served)
            ):
                self.runtimes.withdraw(served.version)
                await self.workers.withdraw(served.version)
                self._cache.configure(running)
                return False
            self._served = served
            self._metrics.config_reloads.labels("success").inc()
            log.info("config %s reloaded from %s", served.version, self.config_path)
            if config.state != running.state:
                log.warning("config: changes to state.* take effect when switchyard restarts")
            self._adopt(config)
            self.runtimes.switch(served.version)
            await self.workers.switch(served.version)
        if config.envoy.xds:
            self._retiring = asyncio.create_task(self._retire_previous(config, served))
        else:
            self.runtimes.retire_all_but(served.version)
            await self.workers.retire_all_but(served.version)
        return True

    def _compile(self) -> tuple[Config, Runtime, EnvoyResources]:
        """Everything that can fail, off the event loop: validation, the model, Envoy's
        resources as Envoy's own typed messages."""
        config = load_config(self.config_path)
        for issue in config_warnings(config):  # what `switchyard check` would warn of
            log.warning("config %s: %s", self.config_path, issue)
        runtime = build_runtime(config, self._rollouts, self._request_metrics)
        # A block label keeps what it blocked (unless the config says force).
        check_reload(str(self.config_path), self.runtimes.current, runtime)
        served = resources(config)  # a value Envoy's messages refuse fails here
        self._cache.configure(config)
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
        self._metrics.config_reloads.labels("envoy_rejected").inc()
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
            await self.workers.retire_all_but(served.version)
            error = await self.xds.publish(
                snapshot(served), config.envoy.xds_ack_timeout_s, REMOVAL_ORDER
            )
            if error is not None:
                log.error("xds: retiring the previous config version: %s", error)

    # A child worker's side of the hand-off (extproc.workers): worker 0 validated the
    # config, checked the reload and talks to Envoy; a child builds and follows.

    async def take_offer(self, version: str, config: Config) -> None:
        runtime = await asyncio.get_running_loop().run_in_executor(
            None, build_runtime, config, self._rollouts, self._request_metrics
        )
        self.runtimes.offer(version, runtime)

    def take_switch(self, version: str) -> None:
        if not self.runtimes.holds(version):
            log.error("config %s: told to switch to a version this worker does not hold", version)
            return
        config = self.runtimes.for_version(version).config
        self._cache.configure(config)
        self._adopt(config)
        self.runtimes.switch(version)

    def take_withdraw(self, version: str) -> None:
        self.runtimes.withdraw(version)

    def take_retire(self, version: str) -> None:
        self.runtimes.retire_all_but(version)

    def _stamps(self) -> tuple[Stamp, ...]:
        """The config file's, and the client keys file's (it is part of the config)."""
        auth = self.config.auth
        keys = () if auth is None else (_stamp(auth.keys_file),)
        return (_stamp(self.config_path), *keys)

    async def watch(self) -> None:
        """Reloads whenever the config file (or the client keys file) changes."""
        while True:
            await asyncio.sleep(self.config.server.reload_interval_s)
            stamp = self._stamps()
            if stamp != self._stamp:
                self._stamp = stamp
                await self.reload()


def _stamp(path: Path) -> Stamp:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime, stat.st_size
