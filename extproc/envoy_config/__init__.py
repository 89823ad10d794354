"""Envoy's configuration, built from the same Config the server runs.

A pure function of the Config: no environment reads, no defaults of its own. Everything
is built as Envoy's own messages (the xds-protos classes of Envoy's v3 API), so a field
Envoy's API does not have, or an enum label it does not know, fails where the message is
made, in a unit test, not when Envoy loads it. Two views of one set of resources:

- `resources(config)`: what changes with the config (the Listener, RouteConfiguration and
  Cluster messages). switchyard serves these to Envoy over xDS (extproc.xds) as they are,
  so a saved change reaches Envoy without a restart, switched together with the request
  path.
- `ads_bootstrap(config)`: the Bootstrap message `switchyard envoy` writes, the static part
  Envoy starts with: admin, the clusters that reach switchyard (ext_proc, observe, xDS),
  the stats listener, and where the rest comes from (ADS on switchyard).
  `static_bootstrap(config)` is the same with the resources inlined, for
  `envoy --mode validate` and for an Envoy run without xDS. A Bootstrap becomes YAML in
  one place (typed.yaml_form, typed.yaml_text); `bootstrap(config)` and `render(config)`
  are the two in that form.

The request path the resources build, filter by filter:

1. a Lua filter (lua/request_guard.lua) answers chat requests whose content-length is
   over server.max_body_bytes with switchyard's JSON 413 (before Envoy buffers anything),
   drops client-sent switchyard headers and clears the route cache, so a request with
   spoofed headers is routed as if it had none (which matters when switchyard is down
   and Envoy fails open), and hands switchyard the client's address (x-switchyard-client)
   for its session fingerprint; it also drops the x-envoy-* headers a client sent;
   with auth, a Lua filter (lua/client_auth.lua) then checks the client's key against the
   table the first-matched route carries, and marks a refused request for the
   `unauthorized.*` routes' 401;
2. the routing ext_proc filter sends request headers and the buffered body to
   switchyard, which picks the route, the cohort and the backend (x-switchyard-route /
   -cohort / -upstream), rewrites the body for that backend and clears the route cache;
   a Lua filter (lua/decision.lua) keeps that decision in the stream's dynamic metadata
   (the router removes switchyard's headers before any backend; the response headers
   and a shadow copy read the decision from there), and one (lua/stream_usage.lua)
   removes from a stream the usage event switchyard asked the backend for on the
   client's behalf;
3. the observing ext_proc filter (observability mode) shows switchyard each response
   without delaying it;
4. the router: one route per (switchyard route, cohort, backend), matched on those three
   headers. Envoy computes no split of its own for a routed request: the backend is the
   one switchyard rewrote the body for, whatever version of the weights either holds.
   A chat request without them (switchyard down: fail-open) goes to the default route's
   split. Besides chat requests (POST on server.chat_paths) the gateway answers
   GET /v1/models itself, forwards the operator's passthrough paths, and answers
   everything else with a 404: no other path reaches a backend with its key. The route
   a chat request first matches tells switchyard which config version
   Envoy matched it with (see routes._unrouted), so the two always decide with one version.
   A route with a shadow has a variant for the sessions switchyard marked with the
   shadow header: it forwards the same way and copies the request
   (request_mirror_policies) to an internal listener, where the same routing filter
   rewrites the copy for the shadow backend and the observing filter records its answer
   as cohort `shadow`. Envoy drops the copy's answer and never waits for it.

Envoy's admin interface stays on loopback (the config refuses anything else); a separate
stats listener passes GET /stats/prometheus and GET /ready on to it for Prometheus and
probes, and answers everything else with 404.

Modules, by job: builders (the small pieces of Envoy's API repeated everywhere), names,
lua (the scripts), filters, forwarding (targets and route actions), routes (the route
tables), gateway (models, passthrough, 404, 401), clusters, listeners, served
(`resources`, its version), startup (the Bootstrap messages) and typed (the xDS type
URLs, a message that refuses a value turned into a ConfigError naming the resource, and
the YAML form).
"""

from extproc.envoy_config.builders import DISABLED
from extproc.envoy_config.filters import observed_headers
from extproc.envoy_config.gateway import model_names
from extproc.envoy_config.names import (
    FAIL_OPEN_ROUTE,
    OBSERVE_FILTER,
    ROUTING_FILTER,
    SHADOW_LISTENER,
    VIRTUAL_HOST,
)
from extproc.envoy_config.served import EnvoyResources, config_version, resources
from extproc.envoy_config.startup import ads_bootstrap, bootstrap, render, static_bootstrap
from extproc.envoy_config.typed import yaml_form, yaml_text

__all__ = [
    "DISABLED",
    "FAIL_OPEN_ROUTE",
    "OBSERVE_FILTER",
    "ROUTING_FILTER",
    "SHADOW_LISTENER",
    "VIRTUAL_HOST",
    "EnvoyResources",
    "ads_bootstrap",
    "bootstrap",
    "config_version",
    "model_names",
    "observed_headers",
    "render",
    "resources",
    "static_bootstrap",
    "yaml_form",
    "yaml_text",
]
