"""A config problem as an operator reads it: the thing's name, its line, what was expected.

pydantic reports `backends[5].credential.env: String should match pattern '^[A-Za-z_]…'`;
this module turns that into `switchyard.yaml:41: backends "clinical-v2".credential.env:
expected an environment variable NAME …`. It also holds the "did you mean" suggestion
for unknown names, so every unknown reference is worded one way.
"""

from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Iterable
from typing import Any, get_args

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from extproc.config.yaml_document import KeyPath, YamlDocument
from extproc.errors import ConfigIssue

_PATTERNS = {
    r"^[A-Za-z_][A-Za-z0-9_]*$": "expected an environment variable NAME (letters, digits and _, "
    "not starting with a digit), not a key value: the key itself goes in that variable",
    r"^[a-z0-9][a-z0-9_-]{0,62}$": "expected a name of lower-case letters, digits, - and _ "
    "(at most 63, starting with a letter or digit)",
    r"^[a-z0-9-]+$": "expected a lower-case header name (letters, digits and -)",
    r"^/": "expected a path starting with /",
    r"^/[^?#]*[^/?#]$": "expected a path starting with / and not ending with / (no ? or #)",
    r"^[A-Za-z0-9_.:-]{1,64}$": "expected 1 to 64 letters, digits or _ . : -",
}
"""What each pattern in the model means. No input is echoed for the variable-name
pattern: what was pasted there may well be a key."""

_ECHO_SAFE = {p for p in _PATTERNS if p != r"^[A-Za-z_][A-Za-z0-9_]*$"}
_KINDS = {
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "string": "text",
    "list": "a list",
    "dict": "a mapping",
    "model": "a mapping",
    "model_attributes": "a mapping",
    "path": "a file path",
}
_BOUNDS = {
    "greater_than": ">",
    "greater_than_equal": ">=",
    "less_than": "<",
    "less_than_equal": "<=",
}


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`; did you mean 'x'?` for a close known name, else the known names."""
    candidates = sorted(set(known))
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; expected one of {', '.join(candidates)}" if candidates else ""


def unknown(kind: str, name: str, known: Iterable[str]) -> str:
    return f"unknown {kind} {name!r}{did_you_mean(name, known)}"


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _fields_at(model: type[BaseModel], loc: KeyPath) -> list[str]:
    """The keys the model accepts at this path (for "did you mean")."""
    current: type[BaseModel] | None = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        info = current.model_fields.get(part)
        current = _model_in(info.annotation) if info is not None else None
    return list(current.model_fields) if current is not None else []


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _kind(error_type: str) -> str | None:
    for suffix in ("_parsing", "_type", "_from_float"):
        if error_type.endswith(suffix):
            return _KINDS.get(error_type.removesuffix(suffix))
    return None


def explain(error: ErrorDetails, model: type[BaseModel]) -> str:
    """pydantic's message for one error, as what was expected."""
    kind, ctx, value = error["type"], error.get("ctx", {}), error.get("input")
    loc = tuple(error["loc"])
    if kind == "extra_forbidden":
        known = _fields_at(model, loc[:-1])
        hint = did_you_mean(str(loc[-1]), known) if known else ""
        return f"unknown key{hint or ' (check its spelling and indentation)'}"
    if kind == "missing":
        return "missing: this key is required here"
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        meaning = _PATTERNS.get(pattern, f"expected text matching {pattern}")
        return f"{meaning}, got {_shown(value)}" if pattern in _ECHO_SAFE else meaning
    if kind == "literal_error":
        return f"expected {ctx.get('expected')}, got {_shown(value)}"
    if kind in _BOUNDS:
        bound = next(iter(ctx.values()), "?")
        return f"expected a number {_BOUNDS[kind]} {bound}, got {_shown(value)}"
    if kind == "too_short":
        least = ctx.get("min_length")
        return f"expected at least {least} {'entry' if least == 1 else 'entries'}"
    if kind == "too_long":
        return f"expected at most {ctx.get('max_length')} entries"
    expected = _kind(kind)
    if expected is not None:
        return f"expected {expected}, got {_shown(value)}"
    return str(error["msg"]).removeprefix("Value error, ")


_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def parse_path(path: str) -> KeyPath:
    """`routes[2].match.label` -> ("routes", 2, "match", "label")."""
    return tuple(int(index) if index else key for key, index in _PART.findall(path))


def named_path(loc: KeyPath, data: Any) -> str:
    """A key path with list items named by their `name` key: `backends "b".tls`."""
    text = ""
    node = data
    for part in loc:
        if isinstance(part, int):
            item = node[part] if isinstance(node, list) and part < len(node) else None
            name = item.get("name") if isinstance(item, dict) else None
            text += f' "{name}"' if isinstance(name, str) and name else f"[{part}]"
            node = item
        else:
            text += f".{part}" if text else part
            node = node.get(part) if isinstance(node, dict) else None
    return text


def located(issue: ConfigIssue, document: YamlDocument) -> ConfigIssue:
    """The issue with its things named and its line, where the document has one."""
    if not issue.path:
        return issue
    loc = parse_path(issue.path)
    return ConfigIssue(
        named_path(loc, document.data),
        issue.message,
        issue.line if issue.line is not None else document.line_of(loc),
    )
