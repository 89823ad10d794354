"""The switchyard config in the ConfigMap is valid, renders an Envoy bootstrap that
Envoy accepts (with the chart's own Envoy arguments), and the restart checksum
changes exactly when that bootstrap changes."""

from __future__ import annotations

import copy
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from extproc.config import parse_config
from extproc.envoy_config import bootstrap as render_envoy
from tests.helm.conftest import (
    EXTPROC_ONLY,
    FULL,
    container,
    one,
    render,
    switchyard_yaml,
    tool,
    write_values,
)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize(
    "values", [(), (FULL,), (EXTPROC_ONLY,)], ids=["default", "full", "extproc-only"]
)
def test_configmap_passes_switchyard_check(values: tuple[Path, ...], tmp_path: Path) -> None:
    config = tmp_path / "switchyard.yaml"
    config.write_text(switchyard_yaml(render(*values)))
    # What Envoy will have: its environment's keys, the CA files mounted for it.
    cfg = yaml.safe_load(config.read_text())
    env = {**os.environ}
    for backend in cfg.get("backends", []):
        if "credential" in backend:
            env[backend["credential"]["env"]] = "a-key"
        if "tls_ca_file" in backend:
            ca = tmp_path / Path(backend["tls_ca_file"]).name
            ca.write_text("PEM")
            backend["tls_ca_file"] = str(ca)
    config.write_text(yaml.safe_dump(cfg))
    result = subprocess.run(
        [tool("switchyard"), "check", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert ": OK (" in result.stdout


def test_provider_keys_reach_envoy_from_secrets_and_only_by_name() -> None:
    docs = render(FULL)
    envoy = container(docs, "envoy")
    assert {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in envoy["env"]} == {
        "OPENAI_API_KEY": "provider-keys",
        "ANTHROPIC_API_KEY": "provider-keys",
    }
    assert {"name": "internal-ca", "mountPath": "/etc/switchyard/ca", "readOnly": True} in envoy[
        "volumeMounts"
    ]
    assert "env" not in container(docs, "switchyard") or all(
        e["name"] != "OPENAI_API_KEY" for e in container(docs, "switchyard")["env"]
    )
    cfg = yaml.safe_load(switchyard_yaml(docs))
    gpt = next(b for b in cfg["backends"] if b["name"] == "gpt")
    assert gpt["credential"] == {
        "header": "authorization",
        "env": "OPENAI_API_KEY",
        "prefix": "Bearer ",
    }


@pytest.mark.parametrize("values", [(), (FULL,)], ids=["default", "full"])
def test_rendered_envoy_bootstrap_passes_envoy_validate(
    values: tuple[Path, ...], tmp_path: Path
) -> None:
    docs = render(*values)
    config = tmp_path / "switchyard.yaml"
    config.write_text(switchyard_yaml(docs))
    bootstrap = tmp_path / "envoy.yaml"
    # What the init container runs, with the pod's paths mapped into tmp_path.
    args = container(docs, "render-envoy-config")["args"]
    args = [
        str(config)
        if a.endswith("/switchyard.yaml")
        else str(bootstrap)
        if a.endswith("/envoy.yaml")
        else a
        for a in args
    ]
    result = _run(tool("switchyard"), *args)
    assert result.returncode == 0, result.stderr
    # The CA files mounted into Envoy (proxy.volumeMounts): Envoy checks they exist.
    text = bootstrap.read_text()
    for backend in yaml.safe_load(config.read_text()).get("backends", []):
        if "tls_ca_file" in backend:
            text = text.replace(backend["tls_ca_file"], "/etc/ssl/certs/ca-certificates.crt")
    bootstrap.write_text(text)
    # Envoy with the chart's arguments, in validate mode.
    envoy_args = container(docs, "envoy")["args"]
    envoy_args = [str(bootstrap) if a.endswith("/envoy.yaml") else a for a in envoy_args]
    result = _run(tool("envoy"), "--mode", "validate", *envoy_args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "configuration" in result.stdout and "OK" in result.stdout


# -- the restart checksum -------------------------------------------------------------

BASE: dict[str, Any] = yaml.safe_load(FULL.read_text())


def _mutate(path: str, value: Any) -> dict[str, Any]:
    values = copy.deepcopy(BASE)
    node: Any = values
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    return values


def _rendered(tmp_path: Path, name: str, values: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    docs = render(write_values(tmp_path, name, values))
    checksum = one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"][
        "checksum/restart"
    ]
    bootstrap = render_envoy(parse_config(yaml.safe_load(switchyard_yaml(docs)), "configmap"))
    return checksum, bootstrap


HOT = {
    "a label's examples": ("config.labels.1.examples", ["Fix this Rust borrow error"]),
    "a new label": (
        "config.labels",
        [*BASE["config"]["labels"], {"name": "legal", "examples": ["Is this contract valid?"]}],
    ),
    "a route's match": ("config.routes.1.match", {"keywords": ["premium"]}),
    "a header route's value": ("config.routes.2.match.header.value", "gold"),
    "the canary's percent": ("config.routes.0.canary.percent", 25),
    "the canary's steps": ("config.routes.0.canary.steps", [5, 100]),
    "the canary's hold": ("config.routes.0.canary.hold", {"seconds": 60, "requests": 10}),
    "the classifier threshold": ("config.classifier.threshold", 0.6),
    "analysis": ("config.analysis.window_s", 30),
    "session sources": ("config.session.sources", ["user"]),
    "the header a route matches": ("config.routes.2.match.header.name", "x-plan"),
    # Served to Envoy over xDS: no new pods.
    "a weight": ("config.routes.3.backends.0.weight", 60),
    "a backend address": ("config.backends.0.address", "vllm-2.llm.svc.cluster.local:8000"),
    "a backend's tls": ("config.backends.3.tls", True),
    "the canary's backend": ("config.routes.0.canary.backend", "llama-local"),
    "a route's backends": ("config.routes.1.backends", [{"backend": "gpt"}]),
    "a new route": (
        "config.routes",
        [
            {"name": "extra", "match": {"keywords": ["x"]}, "backends": [{"backend": "gpt"}]},
            *BASE["config"]["routes"],
        ],
    ),
    "a shadow": ("config.routes.3.shadow", {"backend": "med-v2", "percent": 10}),
    "a response cache": ("config.routes.3.cache", {"enabled": True}),
}
RESTART = {
    "the chat paths": ("config.server.chat_paths", ["/v1/chat/completions"]),
    "envoy's message timeout": ("config.envoy.message_timeout_ms", 500),
    "server.max_body_bytes": ("config.server.max_body_bytes", 4194304),
    "the listener port": ("ports.http", 10001),
    "the stats port": ("ports.stats", 9911),
    "the analysis source": ("config.analysis.source", "envoy"),
}


@pytest.fixture(scope="module")
def base_render(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    return _rendered(tmp_path_factory.mktemp("base"), "base", BASE)


@pytest.mark.parametrize("change", HOT)
def test_hot_reloadable_change_keeps_the_pods(
    change: str, tmp_path: Path, base_render: tuple[str, dict[str, Any]]
) -> None:
    checksum, bootstrap = _rendered(tmp_path, "hot", _mutate(*HOT[change]))
    assert bootstrap == base_render[1], f"{change} changes Envoy's bootstrap: it must roll the pods"
    assert checksum == base_render[0], f"{change} is hot-reloaded: it must not roll the pods"


@pytest.mark.parametrize("change", RESTART)
def test_a_change_switchyard_reads_only_at_start_rolls_the_pods(
    change: str, tmp_path: Path, base_render: tuple[str, dict[str, Any]]
) -> None:
    checksum, _ = _rendered(tmp_path, "restart", _mutate(*RESTART[change]))
    assert checksum != base_render[0], f"{change} needs new pods but not checksum/restart"
