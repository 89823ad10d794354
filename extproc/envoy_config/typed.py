"""Envoy's own messages (the xds-protos package) for what this package renders: a field
Envoy's API does not have, or a value of the wrong kind, fails here, before Envoy sees it."""

from __future__ import annotations

import copy
import importlib
from typing import Any, TypeVar

from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from google.protobuf.json_format import ParseDict, ParseError
from google.protobuf.message import Message

from extproc.envoy_config.served import EnvoyResources
from extproc.errors import ConfigError, ConfigIssue

CLUSTERS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
LISTENERS = "type.googleapis.com/envoy.config.listener.v3.Listener"
ROUTES = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
KIND = {CLUSTERS: "clusters", LISTENERS: "listeners", ROUTES: "routes"}

_TYPED_CONFIGS = (
    "envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2",
    "envoy.extensions.filters.http.ext_proc.v3.ext_proc_pb2",
    "envoy.extensions.filters.http.lua.v3.lua_pb2",
    "envoy.extensions.filters.http.router.v3.router_pb2",
    "envoy.extensions.transport_sockets.tls.v3.tls_pb2",
    "envoy.extensions.upstreams.http.v3.http_protocol_options_pb2",
    "envoy.extensions.bootstrap.internal_listener.v3.internal_listener_pb2",
    "envoy.extensions.clusters.aggregate.v3.cluster_pb2",
    "envoy.extensions.filters.http.upstream_codec.v3.upstream_codec_pb2",
    "envoy.extensions.retry.priority.previous_priorities.v3.previous_priorities_config_pb2",
)
"""The modules whose messages the rendered config carries in typed_config (Any) fields:
loading them registers the types, so that ParseDict can build those fields."""
for _module in _TYPED_CONFIGS:
    importlib.import_module(_module)

M = TypeVar("M", bound=Message)


def typed(message_class: type[M], item: dict[str, Any], what: str, where: str) -> M:
    """`item` as Envoy's message; a ConfigError naming `what` and `where` if it is not one."""
    try:
        return ParseDict(item, message_class())
    except ParseError as exc:
        raise ConfigError(what, [ConfigIssue(where, f"not a valid Envoy {exc}")]) from None


def checked_bootstrap(rendered: dict[str, Any]) -> dict[str, Any]:
    """The rendered bootstrap, once Envoy's Bootstrap message has taken it."""
    # A copy: ParseDict moves each Any's "@type" key to the end of its dict, and the
    # written YAML keeps it first.
    typed(bootstrap_pb2.Bootstrap, copy.deepcopy(rendered), "envoy bootstrap", "bootstrap")
    return rendered


def typed_resources(served: EnvoyResources) -> dict[str, dict[str, Message]]:
    """Envoy's messages for `served`, per type URL, per resource name."""
    parts: dict[str, tuple[type[Message], dict[str, dict[str, Any]]]] = {
        CLUSTERS: (cluster_pb2.Cluster, served.clusters),
        LISTENERS: (listener_pb2.Listener, served.listeners),
        ROUTES: (route_pb2.RouteConfiguration, served.route_configs),
    }
    messages: dict[str, dict[str, Message]] = {}
    for type_url, (message_class, items) in parts.items():
        messages[type_url] = {
            name: typed(message_class, item, "envoy resources", f"{KIND[type_url]}.{name}")
            for name, item in items.items()
        }
    return messages
