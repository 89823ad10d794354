"""Where Envoy's messages meet the rest: the resource types switchyard serves, a building
mistake turned into a config error that names the resource, and the one place a Bootstrap
message becomes the YAML Envoy reads."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import yaml
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from extproc.errors import ConfigError, ConfigIssue

CLUSTERS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
LISTENERS = "type.googleapis.com/envoy.config.listener.v3.Listener"
ROUTES = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
KIND = {CLUSTERS: "clusters", LISTENERS: "listeners", ROUTES: "routes"}

T = TypeVar("T")


def built(what: str, where: str, build: Callable[[], T]) -> T:
    """What `build` makes; a ConfigError naming `what` and `where` when a message refuses
    a field or a value (a value out of a field's range comes from the config)."""
    try:
        return build()
    except (ValueError, TypeError) as exc:
        raise ConfigError(what, [ConfigIssue(where, f"not a valid Envoy message: {exc}")]) from None


def yaml_form(message: Message) -> dict[str, Any]:
    """`message` as Envoy's YAML reads it: proto field names, enums by name, durations as
    "1.5s"; a field left at its default is left out (Envoy reads the same default), a set
    message stays even when empty (`ads: {}`), and so does a set wrapper (UInt32Value 0)."""
    return _plain(MessageToDict(message, preserving_proto_field_name=True))


def yaml_text(message: Message) -> str:
    """`message` as the YAML file Envoy reads (`switchyard envoy`)."""
    return yaml.safe_dump(yaml_form(message), sort_keys=False, width=120)


def _plain(value: Any) -> Any:
    """Plain dicts and lists (MessageToDict gives an Any's content as an OrderedDict, which
    yaml.safe_dump refuses)."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value
