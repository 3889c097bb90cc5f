"""What the package metadata says is supported is what the version matrix tests (noxfile.py)."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

from quantum_core._redis import TESTED_REDIS_PY

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _nox_constant(name: str):
    tree = ast.parse((ROOT / "noxfile.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise AssertionError(f"noxfile.py has no {name}")


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def test_the_classifiers_name_exactly_the_pythons_the_matrix_runs():
    pythons = _nox_constant("PYTHONS")
    assert pythons == ["3.11", "3.12", "3.13"]
    declared = [
        c.rsplit(" :: ", 1)[1]
        for c in PROJECT["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    ]
    assert declared == pythons
    assert PROJECT["requires-python"] == f">={pythons[0]}"


def test_the_matrix_runs_both_ends_of_the_declared_redis_py_range():
    ends = _nox_constant("REDIS_PY")
    (spec,) = [d for d in PROJECT["dependencies"] if d.startswith("redis")]
    lowest, below = re.fullmatch(r"redis>=([\d.]+),<(\d+)", spec).groups()
    assert _version(ends["lowest"])[:2] == _version(lowest)
    assert _version(ends["highest"])[0] < int(below)
    # the releases whose private parser the Redis transport subclasses are the ones tested
    assert (_version(ends["lowest"])[:2], _version(ends["highest"])[:2]) == TESTED_REDIS_PY


def test_ci_runs_every_session_of_the_matrix():
    """.ci/run calls ``make test-matrix`` (a command, not a comment), which runs every session."""
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    commands = [line.strip() for line in ci if line.strip() and not line.lstrip().startswith("#")]
    assert "make test-matrix" in commands
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = re.search(r"^test-matrix:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert recipe, "the Makefile has no test-matrix target"
    nox = [line for line in recipe.group(1).splitlines() if "$(BIN)/nox" in line]
    # nox with no -s/-k/-p runs every session the noxfile defines: the whole matrix
    assert nox
    assert all(line.rstrip().endswith("$(BIN)/nox") for line in nox), nox
    assert "nox.options.sessions" not in (ROOT / "noxfile.py").read_text(encoding="utf-8")
