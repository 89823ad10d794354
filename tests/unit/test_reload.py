"""Config reloads when another controller owns Envoy's routes (envoy.xds false)."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import pytest
import yaml

from extproc.app import Switchyard
from extproc.config import load_config

CONFIG: dict[str, Any] = {
    "envoy": {"xds": False},
    "backends": [
        {"name": "a", "address": "127.0.0.1:1", "model": "m-a"},
        {"name": "b", "address": "127.0.0.1:2", "model": "m-b"},
    ],
    "routes": [
        {
            "name": "chat",
            "match": {"keywords": ["hello"]},
            "backends": [{"backend": "a", "weight": 70}, {"backend": "b", "weight": 30}],
        },
        {"name": "rest", "backends": [{"backend": "a"}]},
    ],
    "default_route": "rest",
}


def _app(tmp_path: Path) -> tuple[Switchyard, Path]:
    path = tmp_path / "switchyard.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    return Switchyard(path, load_config(path)), path


def _reloads(app: Switchyard, result: str) -> float:
    return (
        app.metrics.registry.get_sample_value("switchyard_config_reloads_total", {"result": result})
        or 0.0
    )


async def test_a_change_the_gateways_routes_would_not_follow_is_refused(tmp_path: Path) -> None:
    app, path = _app(tmp_path)
    changed = copy.deepcopy(CONFIG)
    changed["routes"][0]["backends"] = [
        {"backend": "a", "weight": 30},
        {"backend": "b", "weight": 70},
    ]
    path.write_text(yaml.safe_dump(changed))
    assert await app.reloader.reload() is False
    assert _reloads(app, "refused_external_envoy") == 1
    assert app.config.routes[0].backends[0].weight == 70  # the running config stays


async def test_a_change_that_keeps_every_request_where_it_goes_reloads(tmp_path: Path) -> None:
    app, path = _app(tmp_path)
    changed = copy.deepcopy(CONFIG)
    changed["routes"][0]["match"] = {"keywords": ["hello", "bonjour"]}
    path.write_text(yaml.safe_dump(changed))
    assert await app.reloader.reload() is True
    assert _reloads(app, "success") == 1
    assert app.config.routes[0].match is not None
    assert app.config.routes[0].match.keywords == ["hello", "bonjour"]


async def test_a_reload_logs_what_check_would_warn_of(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app, path = _app(tmp_path)
    changed = copy.deepcopy(CONFIG)
    changed["routes"][0]["match"] = {"keywords": ["hello", "hi"]}
    changed["routes"].insert(
        0, {"name": "everything", "match": {"regex": ".*"}, "backends": [{"backend": "a"}]}
    )
    path.write_text(yaml.safe_dump(changed))
    with caplog.at_level(logging.WARNING, logger="switchyard"):
        assert await app.reloader.reload() is False  # moves requests: refused, warned first
    assert "no request reaches this route: route 'everything' before it" in caplog.text
