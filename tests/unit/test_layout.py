"""The README's layout table matches the tree: a newcomer finds every room of extproc/ there,
and every place the table names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def layout_rows() -> dict[str, str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        match = re.match(r"\| `([^`]+)` \| (.+) \|$", line)
        if match:
            rows[match.group(1)] = match.group(2)
    return rows


def test_every_path_the_table_names_exists() -> None:
    rows = layout_rows()
    assert rows, "no layout table found under '## Layout' in README.md"
    missing = [path for path in rows if not (ROOT / path).exists()]
    assert not missing, f"README's layout table names paths that do not exist: {missing}"


def test_every_module_and_package_of_extproc_is_in_the_table() -> None:
    rows = layout_rows()
    described: set[str] = set()
    for path, what in rows.items():
        described.add(path.rstrip("/"))
        parent = path.rstrip("/")
        for name in re.findall(r"`([^`]+)`", what):
            described.add(f"{parent}/{name.rstrip('/')}")
    rooms = [
        child
        for child in sorted((ROOT / "extproc").iterdir())
        if (child.is_dir() and (child / "__init__.py").exists())
        or (child.suffix == ".py" and child.name != "__init__.py")
    ]
    unnamed = [
        str(room.relative_to(ROOT))
        for room in rooms
        if str(room.relative_to(ROOT)) not in described
    ]
    assert not unnamed, (
        "README's layout table does not say what these are (name them in the extproc/ row, "
        f"or give them a row): {unnamed}"
    )


def test_every_module_a_subpackage_row_names_exists() -> None:
    rows = layout_rows()
    stale = [
        f"{path}{name}"
        for path, what in rows.items()
        if path.startswith("extproc/") and path.endswith("/") and path != "extproc/"
        for name in re.findall(r"`([^`/]+\.py)`", what)
        if not (ROOT / path / name).exists()
    ]
    assert not stale, f"README's layout table names modules that do not exist: {stale}"
