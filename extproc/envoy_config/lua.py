"""The Lua filters' scripts (extproc/lua/*.lua), with their {{slots}} filled."""

from __future__ import annotations

from importlib import resources as package_files


def lua(name: str, **values: str) -> str:
    """A Lua filter's source (extproc/lua/NAME.lua) with its {{value}} slots filled."""
    source = (package_files.files("extproc") / "lua" / f"{name}.lua").read_text()
    for key, value in values.items():
        source = source.replace("{{" + key + "}}", value)
    return source


def lua_string(value: str) -> str:
    """Text for a double-quoted Lua string."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def lua_table(fields: dict[str, str]) -> str:
    """A Lua table literal of string fields."""
    return "{" + ", ".join(f'{k} = "{lua_string(v)}"' for k, v in fields.items()) + "}"


def lua_list(values: list[str] | tuple[str, ...]) -> str:
    """The items of a Lua list of strings (the caller's braces around them)."""
    return ", ".join(f'"{value}"' for value in values)
