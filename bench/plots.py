"""PNG plots of a run for the docs (matplotlib, Agg: no display needed).

* bench-throughput.png: events/s of every throughput row, ours beside its baseline;
* bench-scaling.png: events/s against the number of consumer processes;
* bench-latency.png: p50 / p99 / p99.9 at each rate, bus beside raw redis-py and FastStream.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from _harness import fmt


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def throughput(rows: list[dict[str, Any]], path: Path) -> Path | None:
    picked = [
        r
        for r in rows
        if r["unit"] == "events/s"
        and r["baseline"]
        and "Scaling" not in r["section"]
        and not r["section"].startswith("In-memory")
    ]
    if not picked:
        return None
    labels = [f"{r['name'][:40]}\nvs {r['baseline_name']}" for r in picked]
    fig, ax = plt.subplots(figsize=(9, 0.55 * len(picked) + 1.2))
    y = range(len(picked))
    ours = [r["ours"]["median"] for r in picked]
    base = [r["baseline"]["median"] for r in picked]
    ax.barh([i + 0.2 for i in y], ours, 0.4, label="quantum_core", color="#3b6ea5")
    ax.barh([i - 0.2 for i in y], base, 0.4, label="baseline (same run)", color="#bbbbbb")
    for i, value in zip(y, ours, strict=True):
        ax.text(value, i + 0.2, " " + fmt(value), va="center", fontsize=7)
    ax.set_yticks(list(y), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("events per second (median)")
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def scaling(rows: list[dict[str, Any]], path: Path) -> Path | None:
    picked = [r for r in rows if "Scaling" in r["section"]]
    if not picked:
        return None
    counts = [int(r["name"].split()[0]) for r in picked]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for key, label, style in (("ours", "quantum_core", "o-"), ("baseline", "raw redis-py", "s--")):
        medians = [r[key]["median"] for r in picked]
        low = [m - r[key]["min"] for m, r in zip(medians, picked, strict=True)]
        high = [r[key]["max"] - m for m, r in zip(medians, picked, strict=True)]
        ax.errorbar(counts, medians, yerr=[low, high], fmt=style, capsize=3, label=label)
    ax.set_xticks(counts)
    ax.set_xlabel("consumer processes (one group)")
    ax.set_ylabel("events per second")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    return _save(fig, path)


def latency(rows: list[dict[str, Any]], path: Path) -> Path | None:
    picked = [r for r in rows if r["section"].startswith("Latency") and r["baseline"]]
    if not picked:
        return None
    points: dict[str, dict[str, float]] = {}
    for r in picked:
        points.setdefault(r["name"], {})["quantum_core"] = r["ours"]["median"]
        points[r["name"]][r["baseline_name"]] = r["baseline"]["median"]
    names = list(points)
    series = sorted({s for p in points.values() for s in p}, key=lambda s: s != "quantum_core")
    fig, ax = plt.subplots(figsize=(9, 3.8))
    width = 0.8 / len(series)
    for index, name in enumerate(series):
        xs = [i + index * width for i in range(len(names))]
        ax.bar(xs, [points[n].get(name, 0) for n in names], width, label=name)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(names))], names, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("µs, publish to handler (log scale)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def draw(result: dict[str, Any], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    rows = result["rows"]
    made = [
        throughput(rows, directory / "bench-throughput.png"),
        scaling(rows, directory / "bench-scaling.png"),
        latency(rows, directory / "bench-latency.png"),
    ]
    return [p for p in made if p is not None]
