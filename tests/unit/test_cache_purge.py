"""`switchyard cache purge` through the admin HTTP API, which authorizes it like /rollout."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from extproc.cli import main
from extproc.http_api import HttpApi
from extproc.metrics import Metrics
from extproc.tools.devstack import free_port

TOKEN = "purge-token"


@pytest.fixture
def api() -> Iterator[tuple[str, list[tuple[str | None, str | None]]]]:
    calls: list[tuple[str | None, str | None]] = []

    def purge(route: str | None, partition: str | None) -> int:
        calls.append((route, partition))
        return 3

    def unused(*args: object) -> object:
        raise AssertionError("not part of this test")

    address = f"127.0.0.1:{free_port()}"
    server = HttpApi(
        address, Metrics(), unused, unused, unused, lambda: True, TOKEN, purge_cache=purge
    )  # type: ignore[arg-type]
    server.start()
    try:
        yield f"http://{address}", calls
    finally:
        server.stop()


def test_purge_needs_the_admin_token(
    api: tuple[str, list[tuple[str | None, str | None]]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, calls = api
    monkeypatch.delenv("SWITCHYARD_ADMIN_TOKEN", raising=False)
    assert main(["cache", "purge", "--route", "support", "--url", url]) == 1
    assert calls == [] and "Bearer" in capsys.readouterr().err
    monkeypatch.setenv("SWITCHYARD_ADMIN_TOKEN", TOKEN)
    assert main(["cache", "purge", "--route", "support", "--partition", "acme", "--url", url]) == 0
    assert calls == [("support", "acme")]
    assert json.loads(capsys.readouterr().out)["purged"] == 3
    assert main(["cache", "purge", "--url", url]) == 0
    assert calls[-1] == (None, None)
