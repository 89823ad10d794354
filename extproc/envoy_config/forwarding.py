"""How a route reaches its backends: the targets switchyard may pick, and each one's route
action (cluster, Host, the backend's own headers, retries)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from envoy.config.route.v3 import route_components_pb2
from envoy.extensions.retry.priority.previous_priorities.v3 import (
    previous_priorities_config_pb2,
)

from extproc import headers as h
from extproc.config import BackendConfig, Config, RouteConfig
from extproc.envoy_config.builders import Route, header_value, packed, seconds, uint32
from extproc.envoy_config.names import FALLBACK_CLUSTER, RETRY_CLUSTER
from extproc.upstream import stable_split

RetryPolicy = route_components_pb2.RetryPolicy


@dataclass(frozen=True)
class Target:
    """Where switchyard may send a route's requests: a cohort's backend, and the backends
    Envoy tries after it (the canary's stable on a failure, the route's fallbacks)."""

    route: RouteConfig
    cohort: str
    backend: str
    retry_on: str | None
    """For a canary retried on stable: the stable backend (switchyard's h.RETRY_ON)."""

    @property
    def attempts(self) -> tuple[str, ...]:
        if self.retry_on is not None:
            return (self.backend, self.retry_on)
        if self.cohort == h.STABLE:
            return (self.backend, *(f.backend for f in self.route.fallbacks))
        return (self.backend,)

    @property
    def name(self) -> str:
        name = f"{self.route.name}.{self.cohort}.{self.backend}"
        return name if self.retry_on is None else f"{name}.{self.retry_on}"

    @property
    def cluster(self) -> str:
        """The cluster Envoy forwards to: the backend's, or the one that tries them in turn."""
        if len(self.attempts) == 1:
            return self.backend
        kind = RETRY_CLUSTER if self.retry_on is not None else FALLBACK_CLUSTER
        return ".".join((kind, self.route.name, *self.attempts))


def targets(route: RouteConfig) -> list[Target]:
    stable = [backend for backend, _ in stable_split(route)]
    found = []
    if route.canary is not None:
        canary = route.canary.backend
        if route.canary.retry_on_stable:
            found += [Target(route, h.CANARY, canary, backend) for backend in stable]
        else:
            found.append(Target(route, h.CANARY, canary, None))
    return found + [Target(route, h.STABLE, backend, None) for backend in stable]


def backend_headers(backend: BackendConfig) -> Any:
    """What Envoy changes in every request to this backend, whichever route sent it (a
    partial Route, merged into the routes that reach it)."""
    remove = [] if backend.forward_client_authorization else ["authorization"]
    out = Route()
    if backend.credential is not None:
        credential = backend.credential
        if credential.header not in remove:
            remove.append(credential.header)
        # Envoy reads the key from its own environment for each request: the
        # config file, and the admin config_dump, only ever hold the variable's name.
        prefix = credential.prefix.replace("%", "%%")
        key = f"{prefix}%ENVIRONMENT({credential.env})%"
        out.request_headers_to_add.append(header_value(credential.header, key))
    out.request_headers_to_remove.extend(remove)
    return out


def _retry_policy(config: Config) -> Any:
    # Only failures where the request never reached a model: LLM calls are neither
    # idempotent nor cheap.
    return RetryPolicy(
        retry_on="connect-failure,refused-stream,reset-before-request",
        num_retries=uint32(config.envoy.retries),
    )


def to_backend(config: Config, backend: BackendConfig) -> Any:
    """A route's forwarding to one backend, with that backend's Host and headers (a partial
    Route)."""
    action = route_components_pb2.RouteAction(
        cluster=backend.name,
        host_rewrite_literal=backend.host_header,
        timeout=seconds(config.envoy.upstream_timeout_s),
        retry_policy=_retry_policy(config),
    )
    forwarded = Route(route=action)
    forwarded.MergeFrom(backend_headers(backend))
    return forwarded


def forward(config: Config, target: Target) -> Any:
    """The target's route action: its first backend's Host and key, and when there are
    several attempts, their cluster and a retry policy that moves each to the next."""
    forwarded = to_backend(config, config.backend(target.backend))
    if len(target.attempts) == 1:
        return forwarded
    forwarded.route.cluster = target.cluster
    if target.retry_on is not None:
        # Failures of the canary itself, not the client's mistakes (4xx).
        retry = RetryPolicy(retry_on="5xx,reset,connect-failure,refused-stream")
    else:
        codes = [code for code in target.route.fallback_on if isinstance(code, int)]
        conditions = ["retriable-status-codes"] if codes else []
        if "connect" in target.route.fallback_on:
            conditions.append("connect-failure,refused-stream,reset")
        retry = RetryPolicy(retry_on=",".join(conditions), retriable_status_codes=codes)
    # Each retry goes to the next backend (the next priority of the aggregate cluster).
    priority = previous_priorities_config_pb2.PreviousPrioritiesConfig(update_frequency=1)
    retry.MergeFrom(
        RetryPolicy(
            num_retries=uint32(len(target.attempts) - 1),
            # The next attempt is another backend: no reason to wait Envoy's default 25 ms.
            retry_back_off=RetryPolicy.RetryBackOff(
                base_interval=seconds(0.001), max_interval=seconds(0.005)
            ),
            retry_priority=RetryPolicy.RetryPriority(
                name="envoy.retry_priorities.previous_priorities", typed_config=packed(priority)
            ),
        )
    )
    forwarded.route.retry_policy.CopyFrom(retry)
    return forwarded
