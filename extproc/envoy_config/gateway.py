"""The routes a gateway needs besides chat completions: GET /v1/models, the operator's
passthrough paths, a 404 for every other path, and with auth the client key check's 401s."""

from __future__ import annotations

import json
from typing import Any

from envoy.config.route.v3 import route_components_pb2

from extproc import headers as h
from extproc.config import MODELS_PATH, Config
from extproc.envoy_config.builders import (
    DISABLED,
    LUA_DISABLED,
    Route,
    data_source,
    header_match,
    header_value,
    lua_per_route,
    make_route,
)
from extproc.envoy_config.filters import client_auth_source
from extproc.envoy_config.forwarding import to_backend
from extproc.envoy_config.names import (
    CLIENT_AUTH_FILTER,
    FAIL_OPEN_FILTER,
    OBSERVE_FILTER,
    ROUTING_FILTER,
    STREAM_USAGE_FILTER,
)

UNPROCESSED = {
    ROUTING_FILTER: DISABLED,
    FAIL_OPEN_FILTER: LUA_DISABLED,
    OBSERVE_FILTER: DISABLED,
    STREAM_USAGE_FILTER: LUA_DISABLED,
}
"""Neither switchyard's routing nor its observing: requests that are not chat completions."""

UNAUTHORIZED = {
    "missing": "No API key provided: send Authorization: Bearer <key> (or x-api-key).",
    "wrong": "Incorrect API key provided.",
}


def _answer(status: int, body: dict[str, Any]) -> Any:
    """A JSON answer from Envoy itself: no backend is asked (a partial Route)."""
    return Route(
        direct_response=route_components_pb2.DirectResponseAction(
            status=status, body=data_source(json.dumps(body, separators=(",", ":")))
        ),
        response_headers_to_add=[
            header_value("content-type", "application/json"),
            header_value(h.BACKEND, "switchyard"),
        ],
        typed_per_filter_config=UNPROCESSED,
    )


def _match(**fields: Any) -> Any:
    return route_components_pb2.RouteMatch(**fields)


def model_names(config: Config) -> list[str]:
    """What GET /v1/models lists: every model a route matches on, then the default route's
    name, which stands for "let switchyard choose" (a model no route matches is routed by
    the other conditions, and each backend gets its own model name in the body)."""
    names = [model for route in config.routes if route.match for model in route.match.model or []]
    if config.default_route is not None:
        names.append(config.default_route)
    return list(dict.fromkeys(names))


def gateway_routes(config: Config) -> list[Any]:
    """GET /v1/models answered here, the operator's passthrough paths, and a 404 for the
    rest: a path nobody opened never reaches a backend (with its provider key)."""
    models = {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "switchyard"}
            for name in model_names(config)
        ],
    }
    get = [header_match(":method", "GET")]
    routes = [make_route("models", _match(path=MODELS_PATH, headers=get), _answer(200, models))]
    for passthrough in config.passthrough:
        routes.append(
            make_route(
                f"passthrough{passthrough.path}",
                _match(path_separated_prefix=passthrough.path),
                to_backend(config, config.backend(passthrough.backend)),
                stat_prefix="passthrough",
                typed_per_filter_config=UNPROCESSED,
            )
        )
    routes = [with_clients(config, passed) for passed in routes]
    opened = [f"POST {path}" for path in config.server.chat_paths]
    opened += [f"GET {MODELS_PATH}", *(p.path for p in config.passthrough)]
    not_found = {
        "error": {
            "message": f"Unknown request URL. This gateway serves {', '.join(opened)}.",
            "type": "invalid_request_error",
            "param": None,
            "code": "unknown_url",
        }
    }
    routes.append(make_route("not_found", _match(prefix="/"), _answer(404, not_found)))
    return routes


def with_clients(config: Config, first: Any) -> Any:
    """A route a request first matches, with the client check's code and key table."""
    if config.auth is not None:
        check = lua_per_route(client_auth_source(config.auth.clients))
        first.typed_per_filter_config[CLIENT_AUTH_FILTER].CopyFrom(check)
    return first


def unauthorized(config: Config) -> list[Any]:
    """The 401s for the requests the client key check refused (first in the table: the
    check marks them, whatever path they were for). The observing filter sees them, so
    switchyard counts them by reason."""
    if config.auth is None:
        return []
    routes = []
    for reason, message in UNAUTHORIZED.items():
        error = {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
        }
        answer = _answer(401, error)
        answer.response_headers_to_add.extend(
            [
                header_value("www-authenticate", "Bearer", action=None),
                header_value(h.AUTH_FAILURE, reason, action=None),
            ]
        )
        answer.ClearField("typed_per_filter_config")
        answer.typed_per_filter_config[ROUTING_FILTER].CopyFrom(DISABLED)
        answer.typed_per_filter_config[STREAM_USAGE_FILTER].CopyFrom(LUA_DISABLED)
        match = _match(prefix="/", headers=[header_match(h.AUTH_FAILURE, reason)])
        routes.append(make_route(f"unauthorized.{reason}", match, answer))
    return routes
