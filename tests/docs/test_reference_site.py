"""The built API reference, not only the docstrings: what mkdocstrings renders is what users read.

A public method can have a docstring and still be missing from the site (inherited from a
private base class, filtered out by an option), so the site is built (about 2 s) and read.
"""

from __future__ import annotations

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
