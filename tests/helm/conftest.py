"""Helpers for the chart tests: find helm, render the chart, pick documents out.

helm comes from PATH or build/tools/helm/helm (scripts/system-deps.sh puts it
there); without either the tests fail, they do not skip. Renders are cached:
the same values render once per session.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "switchyard"
HERE = Path(__file__).resolve().parent
FULL = HERE / "values-full.yaml"
EXTPROC_ONLY = HERE / "values-extproc-only.yaml"
VENV_BIN = REPO / ".venv" / "bin"
RELEASE = "sy"
NAMESPACE = "llm"


@functools.cache
def helm() -> str:
    found = shutil.which("helm") or str(REPO / "build" / "tools" / "helm" / "helm")
    if not Path(found).is_file():
        pytest.fail(
            "helm not found on PATH nor at build/tools/helm/helm: run scripts/system-deps.sh"
        )
    return found


def tool(name: str) -> str:
    """A command from the virtualenv, else from PATH; fails the test when missing."""
    candidate = VENV_BIN / name
    found = str(candidate) if candidate.is_file() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found in .venv/bin nor on PATH (make install / make system-deps)")
    return found


def run_helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm(), *args], capture_output=True, text=True, timeout=60, check=False)


def template_result(*values: Path | str) -> subprocess.CompletedProcess[str]:
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for path in values:
        args += ["-f", str(path)]
    return run_helm(*args)


@functools.cache
def _render(values: tuple[str, ...]) -> tuple[dict[str, Any], ...]:
    result = template_result(*values)
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def render(*values: Path | str) -> list[dict[str, Any]]:
    return list(_render(tuple(str(v) for v in values)))


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = of_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def is_hook(doc: dict[str, Any]) -> bool:
    return "helm.sh/hook" in (doc["metadata"].get("annotations") or {})


def switchyard_yaml(docs: list[dict[str, Any]]) -> str:
    """The config running pods read (not the pre-upgrade check's copy)."""
    return one([d for d in docs if not is_hook(d)], "ConfigMap")["data"]["switchyard.yaml"]


def pod_spec(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return one(docs, "Deployment")["spec"]["template"]["spec"]


def container(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    spec = pod_spec(docs)
    for item in spec.get("initContainers", []) + spec["containers"]:
        if item["name"] == name:
            return item
    raise AssertionError(f"no container {name!r}")


def write_values(tmp_path: Path, name: str, values: dict[str, Any]) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path
