"""The names switchyard gives Envoy's clusters, listeners, route tables and filters."""

# Also read back from Envoy's stats by extproc.rollout, hence kept in a neutral module.
from extproc.envoy_stat_names import FAIL_OPEN_ROUTE as FAIL_OPEN_ROUTE
from extproc.envoy_stat_names import VIRTUAL_HOST as VIRTUAL_HOST

EXT_PROC_CLUSTER = "_switchyard_ext_proc"
OBSERVE_CLUSTER = "_switchyard_observe"
XDS_CLUSTER = "_switchyard_xds"
ADMIN_CLUSTER = "_switchyard_admin"
STATS_PATHS = ("/stats/prometheus", "/ready")
"""The admin paths the stats listener passes on, GET only: read-only and free of secrets."""
ROUTING_FILTER = "switchyard.route"
STREAM_USAGE_FILTER = "switchyard.stream_usage"
FAIL_OPEN_FILTER = "switchyard.fail_open"
OBSERVE_FILTER = "switchyard.observe"
DECISION_FILTER = "switchyard.decision"
CLIENT_AUTH_FILTER = "switchyard.client_auth"
HCM_STAT_PREFIX = "ingress"
INGRESS_LISTENER = "ingress"
INGRESS_ROUTES = "switchyard"
SHADOW_ROUTES = "shadow"
SHADOW_LISTENER = "_switchyard_shadow"
"""Internal listener (no socket) and the cluster that reaches it: where shadow copies go."""
BUFFER_FACTOR = 2
"""Envoy buffers up to twice server.max_body_bytes, so that switchyard answers a
body of unannounced length up to that size with its own 413; beyond it, Envoy's
buffer limit answers with a plain 413."""
NODE_CLUSTER = "switchyard"
RETRY_CLUSTER = "_retry"
"""The prefix of a canary-then-stable cluster: _retry.<route>.<canary>.<stable>."""
FALLBACK_CLUSTER = "_fallback"
"""The prefix of a backend-then-fallbacks cluster: _fallback.<route>.<backend>.<fallback>..."""
