"""The chart's pre-install/pre-upgrade hook: a config pods would refuse fails the upgrade.

The hook Job's own command runs here on the hook ConfigMap's content, with the Job's
environment (Envoy's key variables), as the kubelet would run it in the image.
"""

from __future__ import annotations

import copy
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.helm.conftest import REPO, is_hook, of_kind, render, tool, write_values

FULL = REPO / "tests" / "helm" / "values-full.yaml"
BASE: dict[str, Any] = yaml.safe_load(FULL.read_text())


def _hook(docs: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """The hook's config and its Job's container."""
    config_map = next(d for d in of_kind(docs, "ConfigMap") if is_hook(d))
    job = next(d for d in of_kind(docs, "Job") if is_hook(d))
    for doc in (config_map, job):
        assert doc["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    spec = job["spec"]["template"]["spec"]
    volume = next(v for v in spec["volumes"] if v["name"] == "config")
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    assert job["spec"]["backoffLimit"] == 0
    return config_map["data"]["switchyard.yaml"], spec["containers"][0]


def _run_hook(tmp_path: Path, values: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    config, check = _hook(render(write_values(tmp_path, "values", values)))
    mount = next(m for m in check["volumeMounts"] if m["name"] == "config")["mountPath"]
    path = tmp_path / "switchyard.yaml"
    # The image's model and the test machine's: the one `make test` built.
    data = yaml.safe_load(config)
    data.setdefault("classifier", {})["model"] = str(REPO / "build" / "model")
    for backend in data.get("backends", []):
        if "tls_ca_file" in backend:  # proxy.volumeMounts' CA, here the system bundle
            backend["tls_ca_file"] = "/etc/ssl/certs/ca-certificates.crt"
    path.write_text(yaml.safe_dump(data))
    args = [str(path) if a == f"{mount}/switchyard.yaml" else a for a in check["args"]]
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    for variable in check.get("env", []):  # Secrets, as the kubelet would resolve them
        env[variable["name"]] = "sk-test"
    return subprocess.run(
        [tool(check["command"][0]), *args],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        check=False,
    )


def test_the_hook_passes_the_chart_example(tmp_path: Path) -> None:
    result = _run_hook(tmp_path, BASE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_a_misspelled_label_in_a_route_fails_the_hook_and_so_the_upgrade(tmp_path: Path) -> None:
    values = copy.deepcopy(BASE)
    route = next(r for r in values["config"]["routes"] if "label" in (r.get("match") or {}))
    wanted = route["match"]["label"]
    route["match"]["label"] = (wanted if isinstance(wanted, str) else wanted[0]) + "x"
    result = _run_hook(tmp_path, values)
    assert result.returncode != 0
    assert "match.label" in result.stderr and "Traceback" not in result.stderr


def test_a_key_variable_envoy_would_not_have_fails_the_hook(tmp_path: Path) -> None:
    values = copy.deepcopy(BASE)
    values["proxy"]["env"] = values["proxy"]["env"][:1]  # one provider's key Secret dropped
    result = _run_hook(tmp_path, values)
    assert result.returncode != 0
    assert "is not set" in result.stderr
