"""Latency from publish to handler at a steady rate, across processes, with percentiles.

A publisher process sends at 2,000 and 10,000 events/s (what is due every tick goes in one
call, stamped with CLOCK_MONOTONIC as it leaves); a consumer process takes the difference
when its handler runs. The bus, raw redis-py and FastStream's per-message StreamSub.

    .venv/bin/python bench/run.py --only latency [--quick]
"""

from __future__ import annotations

import itertools

import _procs
from _harness import Context, Row, Stat, Target

TITLE = "latency (processes)"
SECTION = "Latency, publish to handler, separate processes (Redis Streams)"
RATES = (2_000, 10_000)
IMPLS = ("bus", "raw", "faststream")
QUANTILES = {"p50": 0.5, "p99": 0.99, "p99.9": 0.999}
_keys = itertools.count()


async def measure(ctx: Context) -> dict[str, float]:
    seconds = ctx.size(5, 1)
    out: dict[str, float] = {}
    for rate in RATES:
        for impl in IMPLS:
            outcome = await _procs.run(
                impl, ctx.url, f"lat-{next(_keys)}", rate * seconds, rate=rate, stamp=True
            )
            for label, q in QUANTILES.items():
                out[f"{impl}_{rate}_{label}"] = outcome.latency(q)
            out[f"{impl}_{rate}_sent"] = outcome.sent_rate
            ctx.server and ctx.server.flush()
    return out


def rows(stats: dict[str, Stat], ctx: Context) -> list[Row]:
    out = []
    for rate in RATES:
        for label in QUANTILES:
            ours = stats[f"bus_{rate}_{label}"]
            name = f"{label} at {rate:,}/s"
            target = None
            if label == "p50":
                target = Target("<=", 1.3, "ratio")
            out.append(
                Row(SECTION, name, "µs", ours, "raw redis-py", stats[f"raw_{rate}_{label}"], target)
            )
            if label == "p99" and rate == 2_000:
                out.append(Row(SECTION, name, "µs", ours, "", None, Target("<", 1000)))
            out.append(
                Row(
                    SECTION,
                    name,
                    "µs",
                    ours,
                    "FastStream StreamSub",
                    stats[f"faststream_{rate}_{label}"],
                )
            )
    return out


if __name__ == "__main__":
    from run import main

    main(["--only", "latency"])
