"""docs/HELM.md's example values and the Dockerfile agree with the chart."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import yaml

from tests.helm.conftest import CHART, REPO, render, switchyard_yaml, tool

MARKER = "<!-- values-example:"


def _example_values() -> str:
    text = (REPO / "docs" / "HELM.md").read_text()
    after = text[text.index(MARKER) :]
    match = re.search(r"```yaml\n(.*?)```", after, re.S)
    assert match, "no ```yaml block after the values-example marker"
    return match.group(1)


def test_docs_example_renders_and_passes_switchyard_check(tmp_path: Path) -> None:
    values = tmp_path / "example.yaml"
    values.write_text(_example_values())
    config_text = switchyard_yaml(render(values))
    config = tmp_path / "switchyard.yaml"
    config.write_text(config_text)
    cfg = yaml.safe_load(config_text)
    # Checked with what Envoy's container gets: the keys named in proxy.env.
    proxy_env = yaml.safe_load(values.read_text())["proxy"]["env"]
    keys = {e["name"] for e in proxy_env}
    assert keys == {b["credential"]["env"] for b in cfg["backends"] if "credential" in b}
    result = subprocess.run(
        [tool("switchyard"), "check", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **dict.fromkeys(keys, "a-key")},
    )
    assert result.returncode == 0, result.stderr
    assert len(cfg["labels"]) == 2
    general = next(r for r in cfg["routes"] if r["name"] == cfg["default_route"])
    assert [b["weight"] for b in general["backends"]] == [70, 20, 10]
    tls = {b["name"] for b in cfg["backends"] if b.get("tls")}
    assert tls == {b["backend"] for b in general["backends"][1:]}, "the two API models use TLS"
    canary = next(r["canary"] for r in cfg["routes"] if "canary" in r)
    assert canary["percent"] == 5 and canary["steps"][0] == 5 and len(canary["steps"]) > 1


def _dockerfile() -> str:
    return (REPO / "Dockerfile").read_text()


def test_dockerfile_builds_the_model_where_the_chart_looks() -> None:
    model_dir = yaml.safe_load((CHART / "values.yaml").read_text())["config"]["classifier"]["model"]
    assert f"switchyard build-model --out {model_dir}" in _dockerfile()
    assert f"COPY --from=build {model_dir} {model_dir}" in _dockerfile()
    assert re.search(r"pip install '\.\[model\]'", _dockerfile())


def test_dockerfile_runs_as_the_charts_non_root_user() -> None:
    pod = yaml.safe_load((CHART / "values.yaml").read_text())["podSecurityContext"]
    (user,) = re.findall(r"^USER (\S+)$", _dockerfile(), re.M)
    assert user == f"{pod['runAsUser']}:{pod['runAsGroup']}", (
        "numeric, so runAsNonRoot can check it"
    )
    assert pod["runAsUser"] != 0
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim", _dockerfile(), re.M)
    assert re.search(r'^ENTRYPOINT \["switchyard"\]$', _dockerfile(), re.M)


def test_dockerignore_lets_the_package_sources_in() -> None:
    lines = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "an allowlist: nothing enters the context unless listed"
    for needed in ("pyproject.toml", "extproc/", "classifier/", "proto/"):
        assert f"!{needed}" in lines, needed
