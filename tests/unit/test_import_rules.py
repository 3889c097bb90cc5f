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
# Underscore names that are public by their owner's documentation.
PUBLIC_UNDERSCORES = {"_getframe", "_asdict", "_replace", "_fields", "_make"}
# A dependency's private parts, used on purpose: the Redis fast path leans on redis-py's
# parser and connection internals, only on the releases it was tested with
# (quantum_core._redis.TESTED_REDIS_PY, both ends run by `make test-matrix`).
KNOWN_DEBTS = {
    "quantum_core.transports.redis.parser": {"from redis._parsers import _AsyncRESP3Parser"},
    "quantum_core.transports.redis.reader": {
        "from redis._parsers import _AsyncRESP2Parser",
        "from redis._parsers import _AsyncRESP3Parser",
    },
    "quantum_core.transports.redis.wire": {"connection._parser"},
}


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
    return list(MODULES.items())


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
    debts = KNOWN_DEBTS.get(name, set())
    found = [where for where in private_reach(name, path) if where.split(": ", 1)[1] not in debts]
    assert found == []


# -- the bus and its transports ------------------------------------------------------------------

BUS = "quantum_core.bus"
TRANSPORTS = "quantum_core.transports"
BROKER_LIBRARIES = ("redis", "nats", "aio_pika", "aiormq", "pamqp", "aiokafka", "confluent_kafka")
# What a transport's package may import besides its own modules and the standard library:
# the interface, the registry and the helpers every broker may share.
FOR_EVERY_TRANSPORT = {
    "quantum_core.bus.abilities",
    "quantum_core.bus.registry",
    "quantum_core.bus.transport",
    "quantum_core._backoff",
    "quantum_core._checks",
    "quantum_core._batching",
    "quantum_core._redaction",
    "quantum_core._redis",
    "quantum_core._url_options",
    "quantum_core.errors",
    "quantum_core.logs",
    "quantum_core.tracing",
}


def every_import(name: str, path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) of every import of a module, in functions and TYPE_CHECKING blocks too."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            source = imported_from(name, path, node)
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                yield node.lineno, submodule if submodule in MODULES else source
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(f"{package}.")


def modules_under(package: str) -> list[tuple[str, Path]]:
    return [(name, path) for name, path in MODULES.items() if within(name, package)]


def transport_of(module: str) -> str:
    """``quantum_core.transports.redis`` for any module of the Redis transport."""
    return ".".join(module.split(".")[:3])


@pytest.mark.parametrize(
    ("name", "path"), modules_under(BUS), ids=[n for n, _ in modules_under(BUS)]
)
def test_the_bus_core_imports_no_broker_library_and_no_transport(name, path):
    found = [
        f"{path.name}:{line}: {module}"
        for line, module in every_import(name, path)
        if within(module, TRANSPORTS)
        or within(module, "quantum_core._redis")
        or any(within(module, library) for library in BROKER_LIBRARIES)
    ]
    assert found == []


@pytest.mark.parametrize(
    ("name", "path"), modules_under(TRANSPORTS), ids=[n for n, _ in modules_under(TRANSPORTS)]
)
def test_a_transport_imports_the_interface_and_shared_helpers_never_another_transport(name, path):
    own = transport_of(name)
    found = [
        f"{path.name}:{line}: {module}"
        for line, module in every_import(name, path)
        if within(module, "quantum_core")
        and module not in FOR_EVERY_TRANSPORT
        and not within(module, own)
    ]
    assert found == []


def test_every_transport_package_has_the_same_roles_in_the_same_files():
    packages = sorted({transport_of(name) for name, _ in modules_under(TRANSPORTS)} - {TRANSPORTS})
    assert packages, "no transport packages found"
    for package in packages:
        files = {path.name for name, path in modules_under(package)}
        assert {"__init__.py", "transport.py", "subscription.py"} <= files, package
