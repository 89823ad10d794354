"""The two Envoy configs the benchmark writes itself: the model backend and the ceiling.

The backend is an Envoy answering every request with a fixed chat completion
(`direct_response`): it costs a fraction of what any Python backend would, so
the numbers measure the proxy path, not the backend. The ceiling is the
smallest Envoy in front of it: one listener, the router, one cluster, no
ext_proc; switchyard's rendered config is measured against it.
"""

from __future__ import annotations

import json
from typing import Any

_TYPE = "type.googleapis.com/envoy.extensions."
_HCM = "envoy.filters.network.http_connection_manager"
_HCM_TYPE = _TYPE + "filters.network.http_connection_manager.v3.HttpConnectionManager"
_ROUTER = {
    "name": "envoy.filters.http.router",
    "typed_config": {"@type": _TYPE + "filters.http.router.v3.Router"},
}

COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1767225600,
        "model": "bench",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "[bench] answered"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 40, "completion_tokens": 2, "total_tokens": 42},
    }
)


def _address(host_port: str) -> dict[str, Any]:
    host, _, port = host_port.rpartition(":")
    return {"socket_address": {"address": host, "port_value": int(port)}}


def _bootstrap(admin: str, listen: str, hcm: dict[str, Any], clusters: list[Any]) -> dict[str, Any]:
    return {
        "admin": {"address": _address(admin)},
        "static_resources": {
            "listeners": [
                {
                    "name": "ingress",
                    "address": _address(listen),
                    "filter_chains": [
                        {"filters": [{"name": _HCM, "typed_config": {"@type": _HCM_TYPE, **hcm}}]}
                    ],
                }
            ],
            "clusters": clusters,
        },
    }


def backend(listen: str, admin: str) -> dict[str, Any]:
    """An OpenAI-compatible backend that answers every request at once, from Envoy itself."""
    hcm = {
        "stat_prefix": "backend",
        "route_config": {
            "virtual_hosts": [
                {
                    "name": "backend",
                    "domains": ["*"],
                    "routes": [
                        {
                            "match": {"prefix": "/"},
                            "direct_response": {
                                "status": 200,
                                "body": {"inline_string": COMPLETION},
                            },
                            "response_headers_to_add": [
                                {"header": {"key": "content-type", "value": "application/json"}}
                            ],
                        }
                    ],
                }
            ]
        },
        "http_filters": [_ROUTER],
    }
    return _bootstrap(admin, listen, hcm, [])


def ceiling(listen: str, admin: str, backend_address: str) -> dict[str, Any]:
    """Envoy straight to the backend: what the proxy path costs without any processor."""
    hcm = {
        "stat_prefix": "ingress",
        "route_config": {
            "virtual_hosts": [
                {
                    "name": "ceiling",
                    "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "backend"}}],
                }
            ]
        },
        "http_filters": [_ROUTER],
    }
    cluster = {
        "name": "backend",
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": "backend",
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _address(backend_address)}}]}],
        },
        # The same limits switchyard's rendered backend clusters have.
        "circuit_breakers": {
            "thresholds": [{"max_requests": 10_000, "max_pending_requests": 10_000}]
        },
    }
    return _bootstrap(admin, listen, hcm, [cluster])
