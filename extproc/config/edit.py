"""Set `classifier.threshold` in a config file's text, keeping everything else as written.

Re-dumping the YAML would drop the operator's comments and reorder keys, so the one line
is edited in place (block style) or the key is added to the `classifier:` mapping (block or
flow style). The result is parsed again and must validate before anything is written.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

from extproc.config.loading import parse_config
from extproc.errors import ConfigError, ConfigIssue

_TOP_KEY = re.compile(r"^(?P<key>[A-Za-z_][\w-]*)\s*:(?P<rest>.*)$")
_CHILD = re.compile(r"^(?P<indent>[ \t]+)(?P<key>[A-Za-z_][\w-]*)\s*:")
_THRESHOLD = re.compile(r"^(?P<head>[ \t]+threshold\s*:\s*)(?P<value>[^#\s]*)(?P<tail>\s*(#.*)?)$")
_FLOW_THRESHOLD = re.compile(r"(\bthreshold\s*:\s*)([^,}\s]+)")


def set_threshold(text: str, value: float, source: str) -> str:
    """The config text with `classifier.threshold: value`; raises ConfigError when the
    text has no `classifier` key this edit can find, or the result does not validate."""
    rendered = f"{value:.3f}"
    lines = text.splitlines(keepends=True)
    start = next(
        (
            i
            for i, line in enumerate(lines)
            if (m := _TOP_KEY.match(line)) and m["key"] == "classifier"
        ),
        None,
    )
    if start is None:
        # No classifier section yet: add one at the end.
        tail = "" if not text or text.endswith("\n") else "\n"
        edited = f"{text}{tail}classifier:\n  threshold: {rendered}\n"
    else:
        rest = _TOP_KEY.match(lines[start])["rest"]  # type: ignore[index]
        if "{" in rest:
            line = lines[start]
            if _FLOW_THRESHOLD.search(line):
                line = _FLOW_THRESHOLD.sub(lambda m: f"{m[1]}{rendered}", line, count=1)
            else:
                line = re.sub(r"\{\s*", lambda m: f"{{threshold: {rendered}, ", line, count=1)
            lines[start] = line
        else:
            end = start + 1
            indent = "  "
            found = None
            while end < len(lines) and (not lines[end].strip() or lines[end][0] in " \t#"):
                child = _CHILD.match(lines[end])
                if child:
                    indent = child["indent"]
                    if child["key"] == "threshold":
                        found = end
                end += 1
            if found is not None:
                m = _THRESHOLD.match(lines[found].rstrip("\r\n"))
                if m is None:
                    raise ConfigError(
                        source,
                        [ConfigIssue("classifier.threshold", "cannot edit this line in place")],
                    )
                newline = lines[found][len(lines[found].rstrip("\r\n")) :]
                lines[found] = f"{m['head']}{rendered}{m['tail']}{newline}"
            else:
                lines.insert(start + 1, f"{indent}threshold: {rendered}\n")
        edited = "".join(lines)
    try:
        data = yaml.safe_load(edited)
    except yaml.YAMLError as exc:
        raise ConfigError(
            source, [ConfigIssue("classifier.threshold", f"edit broke the YAML: {exc}")]
        ) from None
    config = parse_config(data, source)
    if config.classifier.threshold is None or abs(config.classifier.threshold - value) > 5e-4:
        raise ConfigError(
            source, [ConfigIssue("classifier.threshold", "the edit did not take effect")]
        )
    return edited


def write_threshold(path: Path, value: float) -> None:
    """Edit the file in place, atomically: a running switchyard reloads either version."""
    edited = set_threshold(path.read_text(encoding="utf-8"), value, str(path))
    temporary = path.with_name(f".{path.name}.tune")
    temporary.write_text(edited, encoding="utf-8")
    os.replace(temporary, path)
