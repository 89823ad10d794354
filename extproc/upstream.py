"""Which backend answers a routed request: one rule for Envoy's router and for switchyard.

Envoy's weighted_clusters with header_name takes the sticky header's value
modulo the total weight and walks the clusters in order, the first owning the
lowest range. The renderer gives Envoy the clusters in stable_split's order and
the request path predicts Envoy's pick with backend_for, so the body switchyard
rewrites for a backend (its model name) is the body that backend receives.
"""

from __future__ import annotations

from extproc import headers as h
from extproc.config import Config, RouteConfig


def stable_split(route: RouteConfig) -> list[tuple[str, int]]:
    """The stable cohort's (backend, weight) pairs, in the order Envoy is given them."""
    return [(weighted.backend, weighted.weight) for weighted in route.backends]


def backend_for(route: RouteConfig, cohort: str, sticky: int) -> str:
    """The backend Envoy forwards to for this route, cohort and sticky header value."""
    if cohort == h.CANARY and route.canary is not None:
        return route.canary.backend
    split = stable_split(route)
    value = sticky % sum(weight for _, weight in split)
    for backend, weight in split:
        if value < weight:
            return backend
        value -= weight
    raise AssertionError("unreachable: value is below the total weight")


def upstream_mapping(config: Config) -> tuple[object, ...]:
    """Where each route's requests may go and how each body is rewritten for it: what an
    Envoy whose routes switchyard does not serve (envoy.xds false) must agree with."""
    routes = tuple(
        (
            route.name,
            tuple(stable_split(route)),
            route.canary.backend if route.canary else None,
            route.shadow.backend if route.shadow else None,
        )
        for route in config.routes
    )
    backends = tuple(
        (b.name, b.model, b.path_prefix, tuple(sorted(b.query.items()))) for b in config.backends
    )
    return (config.default_route, routes, backends)
