"""The documentation is tested like code: every snippet runs, every public name is documented.

A fenced block whose info string starts with ``python`` (``python``, ``python title="..."``)
is run as a script in a fresh interpreter, from the repository root. A fragment that cannot
run on its own (a FastAPI route, a line out of a larger program) is fenced as ``py`` instead:
it is highlighted the same, and this collector leaves it alone.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

import quantum_core
from service_helpers import REDIS_URL, service_missing

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SNIPPET_TIMEOUT = 60.0  # the transport contract snippet alone takes ~12 s

FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
RUNNABLE_INFO = re.compile(r"^python(\s|$)")
AUTODOC = re.compile(r"^:::\s+quantum_core\.(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*$", re.MULTILINE)
NEEDS_REDIS = re.compile(r"redis://localhost")
NEEDS_POSTGRES = re.compile(r"postgresql://\S*@127\.0\.0\.1:5432/")


# Pages being rewritten elsewhere whose fragments are not fenced as ```py yet. Remove the
# entry once they are: from then on each of their python blocks must run.
@dataclass(frozen=True)
class Snippet:
    """One runnable block: where it is and what it says."""

    path: Path
    line: int  # of the opening fence, 1-based
    code: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT).as_posix()}:{self.line}"


def python_blocks(path: Path) -> list[Snippet]:
    """Every fenced block of ``path`` whose info string starts with ``python``."""
    snippets: list[Snippet] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        body: list[str] = []
        end = index + 1
        while end < len(lines):
            closing = FENCE.match(lines[end])
            if (
                closing is not None
                and closing["fence"][0] == fence[0]
                and len(closing["fence"]) >= len(fence)
                and not closing["info"].strip()
            ):
                break
            body.append(lines[end][indent:] if lines[end][:indent].isspace() else lines[end])
            end += 1
        else:
            raise AssertionError(f"{path}:{index + 1}: the fence opened here is never closed")
        if RUNNABLE_INFO.match(opening["info"].strip()):
            snippets.append(Snippet(path, index + 1, "\n".join(body) + "\n"))
        index = end + 1
    return snippets


def documented_files() -> list[Path]:
    return [*sorted(DOCS.rglob("*.md")), ROOT / "README.md"]


SNIPPETS = [snippet for path in documented_files() for snippet in python_blocks(path)]


def redis_reachable() -> bool:
    parts = urlsplit(REDIS_URL)
    return reachable(parts.hostname or "localhost", parts.port or 6379)


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), 1.0):
            return True
    except OSError:
        return False


def test_snippets_were_found():
    files = {snippet.path.name for snippet in SNIPPETS}
    assert {"index.md", "README.md"} <= files, f"the collector found python blocks in {files}"


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[snippet.where for snippet in SNIPPETS])
def test_snippet_runs(snippet: Snippet):
    if NEEDS_REDIS.search(snippet.code) and not redis_reachable():
        service_missing("Redis", f"{snippet.where} connects to it")
    if NEEDS_POSTGRES.search(snippet.code) and not reachable("127.0.0.1", 5432):
        service_missing("PostgreSQL", f"{snippet.where} connects to it")
    env = {**os.environ, "PYTHONWARNINGS": "error", "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        result = subprocess.run(
            [sys.executable, "-c", snippet.code],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=SNIPPET_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{snippet.where}: still running after {SNIPPET_TIMEOUT} s\n{exc.stderr}")
    assert result.returncode == 0, (
        f"{snippet.where}: the snippet exited with {result.returncode}; fix it, or fence it "
        f"as ```py if it is a fragment that cannot run alone\n"
        f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )


def reference_pages() -> list[Path]:
    return sorted({*DOCS.glob("reference*.md"), *DOCS.glob("reference/**/*.md")})


def test_api_reference_covers_every_public_name():
    pages = reference_pages()
    assert pages, "docs/reference.md (or docs/reference/*.md) is missing"
    documented = {
        match["name"] for page in pages for match in AUTODOC.finditer(page.read_text("utf-8"))
    }
    public = set(quantum_core.__all__) - {"__version__"}
    missing = sorted(public - documented)
    assert not missing, (
        f"public names without a `::: quantum_core.<name>` block in the API reference: "
        f"{', '.join(missing)}; add them to docs/reference.md"
    )
    unknown = sorted(documented - public - {"models", "testing"})
    assert not unknown, f"the API reference documents names that are not public: {unknown}"


def test_api_reference_is_in_the_nav():
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in reference_pages():
        assert page.relative_to(DOCS).as_posix() in config, f"{page} is not in mkdocs.yml's nav"
