"""The import rules of docs/architecture.md, checked on the source: no cycles, no private reach.

A cycle makes the import order matter (a half-loaded module works by luck), and a module
that reads another one's underscore names ties itself to what that module may change
freely. What is shared is a public name (in a private module if it is internal).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "quantum_core"
# Being moved into the new layout by the bus restructuring of issue 17; the private-name
# rule applies to them once that lands (drop them from here then).
NOT_YET = ("bus", "transports", "testing")
# Underscore names that are public by their owner's documentation.
PUBLIC_UNDERSCORES = {"_getframe", "_asdict", "_replace", "_fields", "_make"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported_from(name: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module an ``from ... import`` statement reads from."""
    if not node.level:
        return node.module or ""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    parts = package.split(".")
    base = parts[: len(parts) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def top_level_imports(name: str, path: Path) -> Iterator[tuple[int, str, ast.ImportFrom | None]]:
    """(line, module, statement) for each import run at import time (not TYPE_CHECKING)."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ImportFrom):
            source = imported_from(name, path, node)
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                yield node.lineno, submodule if submodule in MODULES else source, node
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, None


def import_graph() -> dict[str, set[str]]:
    return {
        name: {target for _, target, _ in top_level_imports(name, path) if target in MODULES}
        - {name}
        for name, path in MODULES.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_itself_back_through_another():
    assert cycles(import_graph()) == []


def checked_modules() -> list[tuple[str, Path]]:
    return [
        (name, path)
        for name, path in MODULES.items()
        if path.relative_to(PACKAGE).parts[0].removesuffix(".py") not in NOT_YET
    ]


def private_reach(name: str, path: Path) -> list[str]:
    """Where ``name`` imports or reads another module's (or object's) underscore names."""
    found = []
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = imported_from(name, path, node)
            for alias in node.names:
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                if private and f"{source}.{alias.name}" not in MODULES:  # a private module is ok
                    found.append(f"{path.name}:{node.lineno}: from {source} import {alias.name}")
        elif isinstance(node, ast.Attribute):
            attr = node.attr
            if not attr.startswith("_") or attr.startswith("__") or attr in PUBLIC_UNDERSCORES:
                continue
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue
            found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    return found


@pytest.mark.parametrize(("name", "path"), checked_modules(), ids=[n for n, _ in checked_modules()])
def test_no_module_reads_another_module_s_underscore_names(name, path):
    assert private_reach(name, path) == []
