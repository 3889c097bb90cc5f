"""The benchmark harness's table, Markdown, JSON and plots, on made-up figures (nothing timed)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import _report
from _harness import Row, Stat, Target

ENVIRONMENT = {
    "cpus": 2,
    "cpu_model": "test",
    "load_average": (0.5, 0.5, 0.5),
    "python": "3.11",
    "redis_py": "8",
    "hiredis": None,
    "redis_server": "7",
    "faststream": "0.7",
    "structlog": "26",
    "git_commit": "abc",
}


def result() -> dict:
    rows = [
        Row(
            "Bus",
            "publish",
            "events/s",
            Stat.of([9.0, 10.0, 11.0]),
            "raw",
            Stat.of([10.0] * 3),
            Target(">=", 0.8, "ratio"),
        ),
        Row("Bus", "alone", "events/s", Stat.of([40_000.0]), target=Target(">=", 50_000)),
        Row(
            "Scaling: consumers",
            "2 consumer processes",
            "events/s",
            Stat.of([5.0]),
            "raw",
            Stat.of([6.0]),
        ),
        Row("Latency", "p50 at 2,000/s", "µs", Stat.of([100.0]), "raw", Stat.of([90.0])),
    ]
    return {
        "date": "today",
        "quick": True,
        "runs": 3,
        "environment": ENVIRONMENT,
        "protocols": "RESP3",
        "errors": {},
        "rows": _report.as_dicts(rows),
    }


def test_targets_are_judged_on_medians() -> None:
    rows = result()["rows"]
    assert rows[0]["ratio"] == pytest.approx(1.0)
    assert rows[0]["met"] is True
    assert rows[1]["met"] is False
    assert rows[2]["met"] is None


def test_table_markdown_and_json(tmp_path: Path) -> None:
    data = result()
    table = _report.text_table(data["rows"])
    assert "== Bus" in table
    assert "NOT MET" in table
    assert "10.0 (9.00-11.0) events/s" in table
    md_path = _report.write(data, tmp_path / "bench-quick.json")
    assert json.loads((tmp_path / "bench-quick.json").read_text())["rows"][0]["name"] == "publish"
    assert "| publish | 10.0 (9.00-11.0) events/s |" in md_path.read_text()


def test_docs_page_is_updated_between_its_markers(tmp_path: Path) -> None:
    page = tmp_path / "benchmarks.md"
    page.write_text(f"intro\n{_report.MARK_START}\nold\n{_report.MARK_END}\noutro\n")
    assert _report.update_docs(page, "new table")
    text = page.read_text()
    assert "new table" in text
    assert "old" not in text
    assert text.startswith("intro")
    assert text.endswith("outro\n")
    (tmp_path / "plain.md").write_text("no markers")
    assert not _report.update_docs(tmp_path / "plain.md", "x")


def _broker_rows() -> list[dict]:
    rows = [
        Row(
            "Event bus on Redis Streams",
            "publish one at a time (`await bus.publish` vs one `XADD`), a long name on purpose",
            "events/s",
            Stat.of([9.0, 10.0, 11.0]),
            "raw XADD",
            Stat.of([10.0] * 3),
            Target(">=", 0.8, "ratio"),
        ),
        Row(
            "End to end, separate processes (Redis Streams)",
            "publish_many -> handler -> ack, 1 consumer process",
            "events/s",
            Stat.of([30.0]),
            "FastStream",
            Stat.of([2.0]),
        ),
        Row(
            "Event bus on NATS JetStream",
            "publish one at a time",
            "events/s",
            Stat.of([7.0]),
            "raw js.publish",
            Stat.of([8.0]),
        ),
    ]
    return _report.as_dicts(rows)


def test_plots_are_written(tmp_path: Path) -> None:
    import plots  # matplotlib comes with the dev extra, so the docs' plots are tested

    data = result()
    data["rows"] += _broker_rows()
    written = plots.draw(data, tmp_path)
    assert {p.name for p in written} == {
        "bench-redis.png",
        "bench-nats.png",
        "bench-scaling.png",
        "bench-latency.png",
    }
    assert all(p.stat().st_size > 1000 for p in written)


def test_one_chart_per_broker_with_whole_labels_units_and_the_parity_line() -> None:
    import plots

    rows = _broker_rows()
    fig = plots.broker_figure(rows, "redis")
    speed, ratio = fig.axes
    labels = [" ".join(t.get_text().split()) for t in speed.get_yticklabels()]
    assert labels == [  # only Redis's rows, each name whole (wrapped, not cut)
        f"{rows[0]['name']} vs raw XADD",
        f"{rows[1]['name']} vs FastStream",
    ]
    assert all(
        len(line) <= plots.LABEL_WIDTH + 10
        for t in speed.get_yticklabels()
        for line in t.get_text().splitlines()
    )
    assert "events/s" in speed.get_xlabel()
    assert "(x)" in ratio.get_xlabel()
    parity = [line for line in ratio.get_lines() if set(line.get_xdata()) == {1.0}]
    assert parity, "the ratio chart has no 1.0 line"
    assert "Redis Streams" in fig._suptitle.get_text()
    assert plots.broker_figure(rows, "rabbitmq") is None  # no rows, no chart
