"""Names that switchyard gives Envoy's routes and then reads back in Envoy's stats.

A neutral module: extproc.envoy_config writes these names into the route table, and
extproc.rollout (envoy_stats, report) parses the stats Envoy counts under them, so
neither of the two has to import the other.
"""

VIRTUAL_HOST = "switchyard"
"""The ingress virtual host: its routes' stats are vhost.<VIRTUAL_HOST>.route.<stat_prefix>.*"""
FAIL_OPEN_ROUTE = "unrouted."
"""The stat prefix of the fail-open routes, before the backend's name."""
