"""Reading a config's YAML: duplicate keys refused, and where each key was written.

PyYAML keeps the last of two equal keys without a word, so a second top-level
`routes:` block silently replaced the first. Here the document is composed into
nodes first, checked for duplicates, then constructed; the nodes' marks give the
line of every key path, which the config's errors then cite.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from extproc.errors import ConfigError, ConfigIssue

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class YamlDocument:
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)
    """1-based line of each key (mapping entries) and item (sequence entries)."""

    def line_of(self, loc: KeyPath) -> int | None:
        """The line of the deepest part of `loc` that the document has."""
        for end in range(len(loc), 0, -1):
            line = self.lines.get(loc[:end])
            if line is not None:
                return line
        return None


def _walk(
    node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], issues: list[ConfigIssue]
) -> None:
    if isinstance(node, yaml.MappingNode):
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                _walk(value_node, path, {}, issues)
                continue
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in first_line:
                where = ".".join(str(part) for part in (*path, key))
                issues.append(
                    ConfigIssue(
                        where,
                        f"duplicate key {key!r} (first at line {first_line[key]}): YAML would "
                        "keep only the last one; merge the two",
                        line,
                    )
                )
                continue
            first_line[key] = line
            lines[(*path, key)] = line
            _walk(value_node, (*path, key), lines, issues)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            _walk(item, (*path, index), lines, issues)


def read_yaml(text: str, source: str) -> YamlDocument:
    """Parses one YAML document; raises ConfigError on bad syntax or a duplicated key."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlDocument(None)
        lines: dict[KeyPath, int] = {}
        issues: list[ConfigIssue] = []
        _walk(node, (), lines, issues)
        if issues:
            raise ConfigError(source, issues)
        return YamlDocument(loader.construct_document(node), lines)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        line = mark.line + 1 if mark else None
        column = f"column {mark.column + 1}: " if mark else ""
        raise ConfigError(
            source, [ConfigIssue("", f"{column}invalid YAML: {problem}", line)]
        ) from None
    finally:
        loader.dispose()
