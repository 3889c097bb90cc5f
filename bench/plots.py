"""PNG plots of a run for the docs (matplotlib, Agg: no display needed).

* bench-<broker>.png, one per broker (Redis Streams, NATS JetStream, RabbitMQ, Kafka): the
  events/s of each of its throughput rows, ours beside its baseline, and the ratio of the two
  with the 1.0 line (at parity with the baseline) and each row's target;
* bench-scaling.png: events/s against the number of consumer processes (Redis Streams);
* bench-latency.png: p50 / p99 / p99.9 at each rate, bus beside raw redis-py and FastStream.

Labels are wrapped, never cut; every axis says its unit.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from _harness import fmt

# The broker a throughput row belongs to, by a word of its section's title.
BROKERS = {
    "redis": "Redis Streams",
    "nats": "NATS JetStream",
    "rabbitmq": "RabbitMQ",
    "kafka": "Kafka",
}
LABEL_WIDTH = 34


def _save(fig: Any, path: Path) -> Path:
    fig.savefig(path, dpi=110, bbox_inches="tight")  # tight: no label is cut at the edge
    plt.close(fig)
    return path


def label(row: dict[str, Any]) -> str:
    """A row's whole name and its baseline, wrapped to lines of LABEL_WIDTH characters."""
    text = f"{row['name']} vs {row['baseline_name']}"
    return "\n".join(textwrap.wrap(text, LABEL_WIDTH, break_long_words=False))


def broker_rows(rows: list[dict[str, Any]], broker: str) -> list[dict[str, Any]]:
    """The broker's throughput rows that have a baseline (the scaling curve has its own chart)."""
    title = BROKERS[broker]
    return [
        r
        for r in rows
        if r["unit"] == "events/s"
        and r["baseline"]
        and r["ours"]
        and title in r["section"]
        and "Scaling" not in r["section"]
    ]


def broker_figure(rows: list[dict[str, Any]], broker: str) -> Any:
    """Events/s beside the baseline, and the ratio with its 1.0 line, for one broker."""
    picked = broker_rows(rows, broker)
    if not picked:
        return None
    fig, (speed, ratio) = plt.subplots(
        1,
        2,
        figsize=(11, 0.75 * len(picked) + 1.8),
        sharey=True,
        gridspec_kw={"width_ratios": [3, 2]},
    )
    y = list(range(len(picked)))
    ours = [r["ours"]["median"] for r in picked]
    base = [r["baseline"]["median"] for r in picked]
    speed.barh([i - 0.2 for i in y], ours, 0.4, label="quantum_core", color="#3b6ea5")
    speed.barh([i + 0.2 for i in y], base, 0.4, label="baseline (same run)", color="#bbbbbb")
    for i, value in zip(y, ours, strict=True):
        speed.text(value, i - 0.2, " " + fmt(value), va="center", fontsize=7)
    speed.set_yticks(y, [label(r) for r in picked], fontsize=7)
    speed.invert_yaxis()
    speed.set_xlabel("events/s (median)")
    speed.set_xlim(right=max(ours + base) * 1.2)
    speed.legend(fontsize=7, loc="lower right")
    ratios = [r["ratio"] for r in picked]
    ratio.barh(y, ratios, 0.5, color="#3b6ea5")
    for i, (value, row) in enumerate(zip(ratios, picked, strict=True)):
        ratio.text(value, i, f" {value:.2f}x", va="center", fontsize=7)
        target = row["target"]
        if target and target.get("of") == "ratio":
            ratio.plot([target["value"]] * 2, [i - 0.35, i + 0.35], color="#c0392b", lw=1.5)
    parity = "1.0: as fast as the baseline"
    ratio.axvline(1.0, color="black", linestyle="--", linewidth=1, label=parity)
    ratio.plot([], [], color="#c0392b", lw=1.5, label="target")
    ratio.set_xlabel("ratio, quantum_core / baseline (x)")
    ratio.set_xlim(0, max([*ratios, 1.0]) * 1.25)
    ratio.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{BROKERS[broker]}: throughput beside the baseline, same run", fontsize=10)
    fig.tight_layout()
    return fig


def scaling(rows: list[dict[str, Any]], path: Path) -> Path | None:
    picked = [r for r in rows if "Scaling" in r["section"]]
    if not picked:
        return None
    counts = [int(r["name"].split()[0]) for r in picked]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for key, name, style in (("ours", "quantum_core", "o-"), ("baseline", "raw redis-py", "s--")):
        medians = [r[key]["median"] for r in picked]
        low = [m - r[key]["min"] for m, r in zip(medians, picked, strict=True)]
        high = [r[key]["max"] - m for m, r in zip(medians, picked, strict=True)]
        ax.errorbar(counts, medians, yerr=[low, high], fmt=style, capsize=3, label=name)
    ax.set_xticks(counts)
    ax.set_xlabel("consumer processes (one group)")
    ax.set_ylabel("events/s (median, min-max)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    ax.set_title("Redis Streams: consumer processes of one service", fontsize=10)
    fig.tight_layout()
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
    ax.set_xlabel("percentile at a publishing rate (events/s)")
    ax.set_ylabel("µs, publish to handler (log scale)")
    ax.set_title("Redis Streams: latency, separate processes", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def draw(result: dict[str, Any], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    rows = result["rows"]
    made = []
    for broker in BROKERS:
        fig = broker_figure(rows, broker)
        if fig is not None:
            made.append(_save(fig, directory / f"bench-{broker}.png"))
    made += [
        scaling(rows, directory / "bench-scaling.png"),
        latency(rows, directory / "bench-latency.png"),
    ]
    return [p for p in made if p is not None]
