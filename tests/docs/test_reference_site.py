"""The built API reference, not only the docstrings: what mkdocstrings renders is what users read.

A public method can have a docstring and still be missing from the site (inherited from a
private base class, filtered out by an option), so the site is built (about 2 s) and read.
"""

from __future__ import annotations

import ast
import html as htmllib
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from quantum_core import PolicyStore

ROOT = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT = 120.0


@pytest.fixture(scope="module")
def reference_html(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The API reference page of a strict build of the docs into a temporary folder."""
    site = tmp_path_factory.mktemp("site")
    try:
        import mkdocs  # noqa: F401
    except ImportError:
        pytest.fail("mkdocs is not installed: `make .venv/.installed-docs` (the docs extra)")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(site)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stderr}"
    return (site / "reference" / "index.html").read_text(encoding="utf-8")


def public_members(cls: type) -> list[str]:
    """Methods and properties a user can call, wherever in the class's bases they are."""
    return sorted(
        name
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_") and (callable(member) or isinstance(member, property))
    )


def test_the_reference_shows_every_public_method_of_policy_store(reference_html):
    documented = set(re.findall(r'id="quantum_core\.PolicyStore\.(\w+)"', reference_html))
    members = public_members(PolicyStore)
    assert {"initialize", "refresh", "close", "source", "backend", "switch_mode"} <= set(members)
    missing = [name for name in members if name not in documented]
    assert missing == [], f"PolicyStore members missing from the built reference: {missing}"


def _pre_blocks(html: str) -> list[str]:
    """The text of every code block, tags stripped and entities decoded."""
    return [
        htmllib.unescape(re.sub(r"<[^>]+>", "", block))
        for block in re.findall(r"<pre[^>]*>(.*?)</pre>", html, flags=re.DOTALL)
    ]


def _example_lines() -> dict[str, list[str]]:
    """The first line of every ``>>>`` example in the docstrings under ``src/quantum_core``."""
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "src" / "quantum_core").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                doc = ast.get_docstring(node) or ""
                lines = [line.strip() for line in doc.splitlines()]
                first = [line[4:] for line in lines if line.startswith(">>> ")]
                if first:
                    found[f"{path.name}:{node.name}"] = first[:1]
    return found


def test_docstring_examples_use_the_google_examples_section():
    # "Example:" (singular) renders as an admonition: its ">>>" lines become a blockquote
    # with the code run together into one paragraph.
    singular = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "src" / "quantum_core").rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if line.strip() == "Example:"
    ]
    assert singular == [], "use a Google-style `Examples:` section"


def test_the_reference_renders_every_example_as_a_code_block(reference_html):
    examples = _example_lines()
    assert {"bus.py:EventBus", "tracing.py:TraceContext", "recorder.py:EventRecorder"} <= set(
        examples
    )
    code = "\n".join(_pre_blocks(reference_html))
    prose = re.sub(r"<pre[^>]*>.*?</pre>", "", reference_html, flags=re.DOTALL)
    missing = [name for name, (line,) in examples.items() if f">>> {line}" not in code]
    assert missing == [], f"examples not rendered as code blocks: {missing}"
    assert "&gt;&gt;&gt;" not in prose  # no example outside a code block
    assert "<blockquote>" not in reference_html
    assert "doctest:" not in reference_html  # directives are for doctest, not for readers
