"""What switchyard serves Envoy over xDS (extproc.xds): the listeners, their route tables
and the clusters they name, for one config version, as Envoy's own messages."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import partial
from typing import Any

from extproc.config import Config
from extproc.envoy_config.clusters import attempts_cluster, backend_cluster, shadow_cluster
from extproc.envoy_config.filters import ingress_filters
from extproc.envoy_config.forwarding import targets
from extproc.envoy_config.listeners import ingress_listener, shadow_listener
from extproc.envoy_config.names import (
    INGRESS_LISTENER,
    INGRESS_ROUTES,
    SHADOW_LISTENER,
    SHADOW_ROUTES,
)
from extproc.envoy_config.routes import ingress_routes, shadow_routes
from extproc.envoy_config.typed import CLUSTERS, KIND, LISTENERS, ROUTES, built
from extproc.errors import ConfigError, ConfigIssue

WHAT = "envoy resources"


@dataclass(frozen=True)
class EnvoyResources:
    """What Envoy takes from switchyard over xDS, by resource name: Cluster, Listener and
    RouteConfiguration messages."""

    version: str
    clusters: dict[str, Any]
    listeners: dict[str, Any]
    route_configs: dict[str, Any]

    def keeping(self, older: EnvoyResources) -> EnvoyResources:
        """This version, plus what only `older` has: requests Envoy matched with the older
        route table are still on their way to the clusters (and the shadow listener) it
        names."""
        return EnvoyResources(
            self.version,
            clusters={**older.clusters, **self.clusters},
            listeners={**older.listeners, **self.listeners},
            route_configs={**older.route_configs, **self.route_configs},
        )

    def by_type(self) -> dict[str, dict[str, Any]]:
        """The messages per xDS type URL, per resource name."""
        return {
            CLUSTERS: self.clusters,
            LISTENERS: self.listeners,
            ROUTES: self.route_configs,
        }


def config_version(config: Config) -> str:
    """A short digest of the validated config: replicas with the same config agree on it."""
    return hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:12]


def resources(config: Config) -> EnvoyResources:
    """The listeners, routes and clusters for this config."""
    if not config.routes:
        raise ConfigError(
            "config",
            [ConfigIssue("routes", "expected at least one route to render Envoy config")],
        )
    version = config_version(config)
    # A message that refuses a value fails here, naming the resource (a value out of a
    # field's range comes from the config; a field Envoy's API lacks, from a bug).
    listeners = {
        INGRESS_LISTENER: built(
            WHAT,
            f"{KIND[LISTENERS]}.{INGRESS_LISTENER}",
            lambda: ingress_listener(config, ingress_filters(config)),
        )
    }
    clusters = {
        backend.name: built(
            WHAT, f"{KIND[CLUSTERS]}.{backend.name}", partial(backend_cluster, config, backend)
        )
        for backend in config.backends
    }
    for route in config.routes:
        for target in targets(route):
            if len(target.attempts) > 1:
                clusters[target.cluster] = built(
                    WHAT,
                    f"{KIND[CLUSTERS]}.{target.cluster}",
                    partial(attempts_cluster, config, target),
                )
    tables = {
        INGRESS_ROUTES: built(
            WHAT, f"{KIND[ROUTES]}.{INGRESS_ROUTES}", partial(ingress_routes, config, version)
        )
    }
    if any(route.shadow for route in config.routes):
        listeners[SHADOW_LISTENER] = built(
            WHAT, f"{KIND[LISTENERS]}.{SHADOW_LISTENER}", partial(shadow_listener, config)
        )
        clusters[SHADOW_LISTENER] = shadow_cluster()
        tables[SHADOW_ROUTES] = built(
            WHAT, f"{KIND[ROUTES]}.{SHADOW_ROUTES}", partial(shadow_routes, config, version)
        )
    return EnvoyResources(version, clusters, listeners, tables)
