"""The headers switchyard sets for Envoy's router; clients may never set them.

The Envoy renderer strips every header named here from incoming requests, so
one list keeps the two in step. header_map reads Envoy's header lists (both
ext_proc streams receive them).
"""

from __future__ import annotations

from proto import core_pb2

ROUTE = "x-switchyard-route"
COHORT = "x-switchyard-cohort"
STICKY = "x-switchyard-sticky"
"""The session's sticky value: for an Envoy whose routes split by weight themselves
(envoy.xds false: weighted_clusters.header_name), so they pick the backend switchyard picked."""
UPSTREAM = "x-switchyard-upstream"
"""Request only: the backend switchyard routed to and rewrote the body for; Envoy's routes
(served by switchyard) forward on it, so the two never disagree."""
RETRY_ON = "x-switchyard-retry-on"
"""Request only, canary requests: the stable backend the session would have had, where Envoy
retries a canary answer that fails (canary.retry_on_stable)."""
LABEL = "x-switchyard-label"
BACKEND = "x-switchyard-backend"
"""Response only: the cluster that answered (added by Envoy's route)."""

STRIP_USAGE = "x-switchyard-strip-usage"
"""Request only: switchyard asked the backend for a stream's usage on the client's behalf;
Envoy removes the usage event from the response (and this header before the backend)."""

OBSERVE = "x-switchyard-observe"
"""Request only: show this response to switchyard (envoy.observe_sample below 1 picks the
stable responses that are observed; extproc.response.sampling)."""

SHADOW = "x-switchyard-shadow"
"""Request only: this session's request is copied to the route's shadow backend. Its value is
the client's path (before any backend's rewrite), from which the copy is rewritten for the
shadow (extproc.request.shadow)."""

CACHE = "x-switchyard-cache"
"""hit, miss or bypass on routes with a cache (extproc.cache); on the request, Envoy's
route copies it into the response."""
CACHE_FILL = "x-switchyard-cache-fill"
"""Request only: the token of a pending cache fill; Envoy's route copies it into the
response headers for the observing filter and removes it before the client."""


CLIENT_NAME = "x-switchyard-client-name"
"""Request only: the client's name from auth.keys_file, set by Envoy's key check (after the
request guard dropped any a client sent); a session and partition source (`client`)."""

AUTH_FAILURE = "x-switchyard-auth"
"""Why Envoy's key check refused a request (missing or wrong): set on the request, where
the 401 routes match it, and copied into their answer."""


INTERNAL = (
    ROUTE,
    COHORT,
    STICKY,
    UPSTREAM,
    LABEL,
    BACKEND,
    STRIP_USAGE,
    OBSERVE,
    SHADOW,
    CACHE,
    CACHE_FILL,
    CLIENT_NAME,
    AUTH_FAILURE,
)

CONFIG_VERSION = "x-switchyard-config"
"""gRPC metadata on a routing stream: the config version of the route table Envoy matched the
request with (extproc.envoy_config); switchyard decides with the same version."""

CLIENT = "x-switchyard-client"
"""Request only: the client's address as Envoy established it (see envoy.trusted_proxy_hops).
Envoy's request filter always overwrites it and the router drops it before forwarding."""

CANARY = "canary"
STABLE = "stable"

REQUEST_ID = "x-request-id"
"""Envoy's id for each request; every routed response carries it back (POST /feedback)."""

RETRIED_COHORT = "retried"
"""Canary requests whose canary answer failed and that stable answered instead: counted
apart (the canary's failure is counted on the canary), never in the canary analysis."""
FALLBACK_COHORT = "fallback"
"""Requests a route's fallback answered: counted apart, never in the canary analysis."""
ATTEMPT_COUNT = "x-envoy-attempt-count"
"""Envoy's count of attempts (retries included), on routes that try several backends."""

SHADOW_COHORT = "shadow"
"""The cohort of the copies a shadow backend answers: observed, never shown to a client."""


def header_map(headers: core_pb2.HeaderMap) -> dict[str, str]:
    """Envoy's headers as a dict; Envoy sends lower-case names, values in raw_value."""
    out: dict[str, str] = {}
    for header in headers.headers:
        # Each read of a protobuf field makes a new object: read each once.
        key, raw = header.key, header.raw_value
        value = raw.decode("utf-8", "replace") if raw else header.value
        # Repeated headers (cookie, mostly) are joined the way HTTP allows.
        out[key] = f"{out[key]}; {value}" if key in out else value
    return out
