"""Every benchmark figure the docs quote comes from bench/results/bench.json.

Tables are generated into the pages between markers by `make bench` (checked here to be what
the results file renders to, so a hand edit fails); the few figures quoted in prose are
listed below and must agree with the file to the digits they show. The plots in docs/img are
the ones bench/plots.py draws from the same file, one chart per broker.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import _report  # noqa: E402

RESULTS = json.loads((ROOT / "bench" / "results" / "bench.json").read_text(encoding="utf-8"))
DOCS = ROOT / "docs"

E2E = "End to end, separate processes (Redis Streams)"
E2E_ONE = "publish_many -> handler -> ack, 1 consumer process"
RABBIT_E2E = (
    "Event bus on RabbitMQ",
    "end to end, default `read_count` 100, concurrency 64 (publish -> handler -> ack)",
)


def _row(section: str, name: str, baseline: str | None = None) -> dict:
    (row,) = [
        r
        for r in RESULTS["rows"]
        if r["section"] == section
        and r["name"] == name
        and (baseline is None or r["baseline_name"] == baseline)
    ]
    return row


def _ratio(section: str, name: str, baseline: str | None = None) -> float:
    return _row(section, name, baseline)["ratio"]


def _cached_policy_read_us() -> float:
    return _row("Policy store", "`await store.get_policy()` (cached)")["ours"]["median"] / 1000


# (page, a regular expression whose group 1 is the quoted figure, the figure in the file)
QUOTED = [
    ("README.md", r"process memory \(about ([\d.]+) µs\)", _cached_policy_read_us),
    ("docs/policy.md", r"# cached: ~([\d.]+) µs", _cached_policy_read_us),
    (
        "docs/comparison.md",
        r"about ([\d.]+)x FastStream's per-message subscriber",
        lambda: _ratio(E2E, E2E_ONE, "FastStream StreamSub"),
    ),
    (
        "docs/comparison.md",
        r"and ([\d.]+)x its `batch=True` subscriber",
        lambda: _ratio(E2E, E2E_ONE, "FastStream batch=True"),
    ),
    (
        "docs/comparison.md",
        r"end to end, ([\d.]+)x raw redis-py",
        lambda: _ratio(E2E, E2E_ONE, "raw redis-py"),
    ),
    (
        "docs/benchmarks.md",
        r"The RabbitMQ end-to-end row is one: ([\d.]+)x of raw aio-pika in this run",
        lambda: _ratio(*RABBIT_E2E),
    ),
]


@pytest.mark.parametrize(("page", "pattern", "measured"), QUOTED)
def test_a_figure_quoted_in_prose_agrees_with_the_results_file(page, pattern, measured):
    found = re.search(pattern, (ROOT / page).read_text(encoding="utf-8"))
    assert found, f"{page} no longer quotes {pattern!r}: update QUOTED"
    quoted = found.group(1)
    decimals = len(quoted.partition(".")[2])
    assert float(quoted) == round(measured(), decimals), (
        f"{page} quotes {quoted}, the results file says {measured():.4g}"
    )


def test_the_benchmarks_page_shows_the_results_file():
    page = (DOCS / "benchmarks.md").read_text(encoding="utf-8")
    assert _report.generated(page) == _report.markdown(RESULTS)


@pytest.mark.parametrize("name", sorted(_report.SECTION_PAGES))
def test_a_page_quoting_a_section_shows_the_results_file(name):
    page, section = _report.SECTION_PAGES[name]
    text = (DOCS / page).read_text(encoding="utf-8")
    assert _report.generated(text, name) == _report.section_markdown(RESULTS, section)


def test_the_docs_show_the_plots_drawn_from_the_results_file(tmp_path):
    import plots  # matplotlib: the dev extra

    drawn = {path.name for path in plots.draw(RESULTS, tmp_path)}
    assert {"bench-redis.png", "bench-nats.png", "bench-rabbitmq.png"} <= drawn
    assert {path.name for path in (DOCS / "img").glob("bench-*.png")} == drawn
    shown = set(re.findall(r"\]\(img/(bench-[\w-]+\.png)\)", (DOCS / "benchmarks.md").read_text()))
    assert shown == drawn
