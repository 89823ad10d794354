"""No import cycle inside extproc: between modules, or between its subpackages.

Every import counts, wherever it is written: at module level, under
`if TYPE_CHECKING:` and inside function bodies. A deferred or type-only import
still ties the two modules together; it only hides the knot from the interpreter.
Subpackages (extproc.cache, extproc.request, ...) are one node each; a top-level
module (extproc.app) is its own node.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterable
from pathlib import Path

import extproc

ROOT = Path(extproc.__file__).parent
MAX_CYCLES_SHOWN = 40


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def imported_names(tree: ast.AST, module: str, is_package: bool) -> Iterable[tuple[str, int]]:
    """Every dotted name an import statement anywhere in the tree may bind to a module,
    with the statement's line."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # A relative import is resolved from the module's package.
                base = module.split(".")
                drop = node.level - 1 if is_package else node.level
                base = base[: len(base) - drop] if drop else base
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            yield prefix, node.lineno
            yield from ((f"{prefix}.{alias.name}", node.lineno) for alias in node.names)


def resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The extproc module a dotted name lives in (its longest known prefix)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


Graph = dict[str, set[str]]
Evidence = dict[tuple[str, str], str]
"""(importer, imported) -> where the import is written."""


def module_graph() -> tuple[Graph, Evidence]:
    modules = all_modules()
    graph: Graph = {}
    evidence: Evidence = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        lines: dict[str, int] = {}
        for imported, line in imported_names(tree, name, path.name == "__init__.py"):
            target = resolve(imported, modules)
            if target is not None and target != name:
                lines.setdefault(target, line)
        # `from extproc.cache.x import y` names the package extproc.cache on the way
        # to its module; only the deepest module a statement reaches is its target.
        graph[name] = {t for t in lines if not any(o.startswith(t + ".") for o in lines)}
        for target in graph[name]:
            evidence[name, target] = f"{path.relative_to(ROOT.parent)}:{lines[target]}"
    return graph, evidence


def group_of(module: str) -> str:
    """extproc.cache.service -> extproc.cache; extproc.app -> extproc.app."""
    return ".".join(module.split(".")[:2])


def group_graph(graph: Graph, evidence: Evidence) -> tuple[Graph, Evidence]:
    groups: Graph = {}
    why: dict[tuple[str, str], list[str]] = {}
    for source, targets in sorted(graph.items()):
        edges = groups.setdefault(group_of(source), set())
        for target in sorted(targets):
            key = (group_of(source), group_of(target))
            if key[0] != key[1]:
                edges.add(key[1])
                why.setdefault(key, []).append(f"{target} at {evidence[source, target]}")
    return groups, {key: _some(found) for key, found in why.items()}


def _some(found: list[str], shown: int = 3) -> str:
    more = f" and {len(found) - shown} more" if len(found) > shown else ""
    return "; ".join(found[:shown]) + more


def strongly_connected(graph: Graph) -> list[list[str]]:
    """Tarjan's components with more than one node, each sorted, in sorted order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def simple_cycles(graph: Graph, component: list[str]) -> list[list[str]]:
    """Every elementary cycle of a component, each starting at its smallest node
    (a depth-first search per start node, through larger nodes only: each cycle once)."""
    members = set(component)
    cycles: list[list[str]] = []

    def walk(start: str, path: list[str]) -> None:
        for nxt in sorted(graph[path[-1]] & members):
            if nxt == start:
                cycles.append([*path, start])
            elif nxt > start and nxt not in path and len(cycles) < MAX_CYCLES_SHOWN:
                walk(start, [*path, nxt])

    for start in component:
        walk(start, [start])
    return sorted(cycles, key=lambda c: (len(c), c))[:MAX_CYCLES_SHOWN]


def describe(graph: Graph, evidence: Evidence) -> list[str]:
    """Each cycle, and for each of its edges the import that makes it."""
    lines = []
    for component in strongly_connected(graph):
        for cycle in simple_cycles(graph, component):
            lines.append(" -> ".join(cycle))
            lines += [f"    {a} -> {b}: {evidence[a, b]}" for a, b in itertools.pairwise(cycle)]
    return lines


# -- the checker itself ------------------------------------------------------------------


def test_imports_are_found_under_type_checking_in_functions_and_relative() -> None:
    source = """
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    from extproc.b import B
def later():
    import extproc.c.d
from . import e
"""
    names = {name for name, _ in imported_names(ast.parse(source), "extproc.a", False)}
    assert {"extproc.b.B", "extproc.c.d", "extproc.e"} <= names
    relative = "from .store import Entry\nfrom .. import headers\n"
    names = {n for n, _ in imported_names(ast.parse(relative), "extproc.cache.service", False)}
    assert {"extproc.cache.store.Entry", "extproc.headers"} <= names
    init = {n for n, _ in imported_names(ast.parse("from .memory import X"), "extproc.store", True)}
    assert "extproc.store.memory.X" in init


def test_every_cycle_of_a_component_is_listed_with_its_imports() -> None:
    graph = {"a": {"b"}, "b": {"a", "c"}, "c": {"a"}, "d": {"a"}}
    evidence = {(x, y): f"{x}.py imports {y}" for x, ys in graph.items() for y in ys}
    assert strongly_connected(graph) == [["a", "b", "c"]]
    assert simple_cycles(graph, ["a", "b", "c"]) == [["a", "b", "a"], ["a", "b", "c", "a"]]
    lines = describe(graph, evidence)
    assert lines[:3] == ["a -> b -> a", "    a -> b: a.py imports b", "    b -> a: b.py imports a"]
    assert "a -> b -> c -> a" in lines and not any(line.startswith("d") for line in lines)


def test_the_graph_sees_every_module_and_known_edges() -> None:
    graph, evidence = module_graph()
    assert "extproc.cache.service" in graph and "extproc.app" in graph
    assert "extproc.headers" in graph["extproc.cache.key"]
    # Under `if TYPE_CHECKING:` (processor) and inside a method (app's shared cache).
    assert "extproc.request.cache_lookup" in graph["extproc.request.processor"]
    assert "extproc.cache.shared" in graph["extproc.app"]
    assert evidence["extproc.cache.key", "extproc.headers"].startswith("extproc/cache/key.py:")
    groups, _ = group_graph(graph, evidence)
    assert groups["extproc.cache"] >= {"extproc.headers", "extproc.config"}


# -- extproc -----------------------------------------------------------------------------


def test_no_import_cycle_between_modules() -> None:
    cycles = describe(*module_graph())
    assert not cycles, "import cycles between modules:\n" + "\n".join(cycles)


def test_no_import_cycle_between_subpackages() -> None:
    cycles = describe(*group_graph(*module_graph()))
    assert not cycles, "import cycles between subpackages:\n" + "\n".join(cycles)
