"""The `switchyard` command as an operator meets it: check's warnings and errors, one way
to resolve paths, and one error line (never a traceback) for bad input."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from extproc.tools.devstack import free_port

REPO = Path(__file__).resolve().parents[2]
SWITCHYARD = str(Path(sys.executable).parent / "switchyard")
MODEL = REPO / "build" / "model"
KEY_VARIABLES = ("API_A_KEY", "API_B_KEY")


def run(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in KEY_VARIABLES}
    return subprocess.run(
        [SWITCHYARD, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**environ, **env},
        check=False,
    )


def test_check_on_the_shipped_example_without_keys_warns_and_passes() -> None:
    result = run("check", "-c", str(REPO / "switchyard.yaml"))
    assert result.returncode == 0, result.stderr
    for variable in KEY_VARIABLES:
        assert re.search(
            rf"^WARNING: .*credential\.env: environment variable {variable} is not set",
            result.stderr,
            re.M,
        ), result.stderr
    assert "OK" in result.stdout and "check --env" in result.stdout


def test_check_env_refuses_what_check_only_warns_about() -> None:
    result = run("check", "--env", "-c", str(REPO / "switchyard.yaml"))
    assert result.returncode == 2
    assert "API_A_KEY is not set" in result.stderr and "Traceback" not in result.stderr
    keys = dict.fromkeys(KEY_VARIABLES, "a-key")
    assert run("check", "--env", "-c", str(REPO / "switchyard.yaml"), **keys).returncode == 0


def test_check_values_validates_the_config_part_of_the_charts_values(tmp_path: Path) -> None:
    values = REPO / "helm" / "switchyard" / "values.yaml"
    result = run("check", "--values", str(values))
    assert result.returncode == 0, result.stderr
    assert f"{values}: OK" in result.stdout
    docs = (REPO / "docs" / "HELM.md").read_text()
    marked = docs[docs.index("<!-- values-example:") :]
    example = tmp_path / "example.yaml"
    start = marked.index("```yaml\n") + len("```yaml\n")
    example.write_text(marked[start : marked.index("```", start)])
    result = run("check", "--values", str(example))
    assert result.returncode == 0, result.stderr


def test_check_values_names_the_values_line(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(
        "replicaCount: 2\nconfig:\n  backends:\n    - name: b\n      address: nowhere\n"
        "  routes: [{name: r, backends: [{backend: b}]}]\n  default_route: r\n"
    )
    result = run("check", "--values", str(values))
    assert result.returncode == 2
    assert f'{values} (config:):5: backends "b".address: expected host:port' in result.stderr


def test_a_duplicated_top_level_block_is_refused_by_check(tmp_path: Path) -> None:
    config = tmp_path / "s.yaml"
    config.write_text(
        "backends: [{name: a, address: '127.0.0.1:1'}]\nroutes: []\n"
        "default_route: r\nroutes: [{name: r, backends: [{backend: a}]}]\n"
    )
    result = run("check", "-c", str(config))
    assert result.returncode == 2
    assert f"{config}:4: routes: duplicate key 'routes' (first at line 2)" in result.stderr


LABELLED = """
classifier: {{model: {model}, encoder: minilm}}
labels:
  - {{name: billing, examples: [refund my invoice, my card was charged twice]}}
backends: [{{name: a, address: '127.0.0.1:{port}'}}]
routes:
  - {{name: money, match: {{label: billing}}, backends: [{{backend: a}}]}}
  - {{name: rest, backends: [{{backend: a}}]}}
default_route: rest
"""


def test_check_and_the_model_commands_agree_on_a_relative_model_path(tmp_path: Path) -> None:
    here = tmp_path / "conf"
    elsewhere = tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    (here / "models").mkdir()
    (here / "models" / "enc").symlink_to(MODEL)
    config = here / "switchyard.yaml"
    config.write_text(LABELLED.format(model="models/enc", port=free_port()))
    checked = run("check", "-c", str(config), cwd=elsewhere)
    assert checked.returncode == 0 and "classifier.model" not in checked.stderr, checked.stderr
    classified = run("classify", "-c", str(config), "refund my invoice please", cwd=elsewhere)
    assert classified.returncode == 0, classified.stderr
    assert classified.stdout.startswith("billing ")


def test_a_missing_model_is_one_line_naming_the_resolved_path(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    config = tmp_path / "conf" / "switchyard.yaml"
    config.write_text(LABELLED.format(model="build/model", port=free_port()))
    missing = tmp_path / "conf" / "build" / "model"
    checked = run("check", "-c", str(config), cwd=tmp_path)
    assert checked.returncode == 0
    assert f"classifier.model: {missing} does not exist" in checked.stderr
    assert "resolved from the config file's folder" in checked.stderr
    assert f"switchyard build-model --out {missing}" in checked.stderr
    assert run("check", "--env", "-c", str(config), cwd=tmp_path).returncode == 2
    for command in (["classify", "-c", str(config), "hi"], ["serve", "-c", str(config)]):
        result = run(*command, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert f"classifier.model: {missing} does not exist" in result.stderr
        assert "Traceback" not in result.stderr


def _bad_inputs(tmp: Path) -> dict[str, list[str]]:
    bad = tmp / "bad.yaml"
    bad.write_text("routes:\n  - name: r\n    backends: [{backend: nowhere}]\n")
    unlabelled = tmp / "no-model.yaml"
    unlabelled.write_text(LABELLED.format(model="absent", port=free_port()))
    good = REPO / "switchyard.yaml"
    nowhere = f"http://127.0.0.1:{free_port()}"
    (tmp / "a-file").write_text("")
    return {
        "check": ["check", "-c", str(bad)],
        "check --values": ["check", "--values", str(good)],
        "serve": ["serve", "-c", str(bad)],
        "envoy": ["envoy", "-c", str(bad)],
        "classify": ["classify", "-c", str(unlabelled), "hello"],
        "eval": ["eval", "-c", str(good), str(tmp / "no-such.jsonl")],
        "eval garbage": ["eval", "-c", str(good), str(bad)],
        "tune": ["tune", "-c", str(good), str(tmp / "no-such.jsonl")],
        "rollout": ["rollout", "status", "--url", nowhere],
        "rollout action": ["rollout", "promote", "clinical", "--url", nowhere],
        "report": ["report", "--admin", nowhere, "--switchyard", nowhere],
        "cache": ["cache", "purge", "--url", nowhere],
        "build-model": ["build-model", "--out", str(tmp / "a-file" / "model")],
        "demo": ["demo", "-c", str(bad)],
        "fake-backend": ["fake-backend", "--name", "x", "--port", "70000"],
        "envoy output": ["envoy", "-c", str(good), "-o", str(tmp / "no-dir" / "envoy.yaml")],
    }


@pytest.mark.parametrize("case", list(_bad_inputs(Path("/tmp"))))
def test_no_command_prints_a_traceback_on_bad_input(case: str, tmp_path: Path) -> None:
    result = run(*_bad_inputs(tmp_path)[case], cwd=tmp_path, **dict.fromkeys(KEY_VARIABLES, "k"))
    assert result.returncode != 0, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last and not last.startswith("  File "), result.stderr
