"""Read the Docs builds the same site as `make docs`: mkdocs.yml, with the `docs` extra."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_read_the_docs_builds_mkdocs_strictly_with_the_docs_extra():
    config = yaml.safe_load((ROOT / ".readthedocs.yaml").read_text(encoding="utf-8"))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert config["version"] == 2
    assert config["mkdocs"] == {"configuration": "mkdocs.yml", "fail_on_warning": True}
    assert (ROOT / config["mkdocs"]["configuration"]).is_file()
    (install,) = config["python"]["install"]
    assert install == {"method": "pip", "path": ".", "extra_requirements": ["docs"]}
    assert "docs" in project["optional-dependencies"]
    python = config["build"]["tools"]["python"]
    assert f"Programming Language :: Python :: {python}" in project["classifiers"]


def test_the_project_urls_point_at_the_site_read_the_docs_builds():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    site = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))["site_url"]
    assert set(project["urls"]) == {"Documentation", "Changelog"}  # no invented repository URL
    assert site.startswith(project["urls"]["Documentation"])  # the root redirects to /en/latest/
    assert project["urls"]["Changelog"] == f"{site}changelog/"
    assert (ROOT / "docs" / "changelog.md").is_file()
