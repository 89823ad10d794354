"""`switchyard tune --write`: the threshold line is edited in the text, comments survive."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from extproc.config.edit import set_threshold, write_threshold
from extproc.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
BODY = """\
backends:
- {name: cheap, address: 127.0.0.1:8000}
routes:
- name: general
  backends: [{backend: cheap}]
default_route: general
"""


def _threshold(text: str) -> float | None:
    return yaml.safe_load(text)["classifier"].get("threshold")


def test_an_existing_threshold_line_is_replaced_with_its_comment() -> None:
    text = "# top comment\nclassifier:\n  model: m\n  threshold: 0.5   # was hand tuned\n" + BODY
    edited = set_threshold(text, 0.25, "x.yaml")
    assert "\n  threshold: 0.250   # was hand tuned\n" in edited
    assert edited.replace(edited.splitlines()[3], "") == text.replace(text.splitlines()[3], "")


def test_a_missing_threshold_is_added_to_the_classifier_block() -> None:
    text = "classifier:\n    # the model\n    model: m\n    fallback: other\n" + BODY
    edited = set_threshold(text, 0.31, "x.yaml")
    assert _threshold(edited) == 0.31
    assert "    # the model\n" in edited and edited.count("\n") == text.count("\n") + 1


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("classifier: {model: m, fallback: other}\n", "classifier: {threshold: 0.300, model: m"),
        ("classifier: {model: m, threshold: 0.1}\n", "classifier: {model: m, threshold: 0.300}"),
    ],
)
def test_flow_style_classifier_mappings_are_edited(line: str, expected: str) -> None:
    edited = set_threshold(line + BODY, 0.3, "x.yaml")
    assert edited.startswith(expected) and _threshold(edited) == 0.3


def test_a_config_without_classifier_section_gets_one() -> None:
    assert _threshold(set_threshold(BODY, 0.25, "x.yaml")) == 0.25


def test_the_example_config_keeps_every_other_line(tmp_path: Path) -> None:
    path = tmp_path / "switchyard.yaml"
    original = (REPO / "switchyard.yaml").read_text(encoding="utf-8")
    path.write_text(original, encoding="utf-8")
    write_threshold(path, 0.27)
    edited = path.read_text(encoding="utf-8")
    assert _threshold(edited) == 0.27
    assert [line for line in edited.splitlines() if "threshold: 0.270" not in line] == (
        original.splitlines()
    )
    assert not list(tmp_path.glob(".*.tune"))


def test_an_out_of_range_value_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    path = tmp_path / "switchyard.yaml"
    path.write_text("classifier:\n  model: m\n" + BODY, encoding="utf-8")
    before = path.read_text(encoding="utf-8")
    with pytest.raises(ConfigError, match=r"classifier\.threshold"):
        write_threshold(path, 1.5)
    assert path.read_text(encoding="utf-8") == before
