"""Log lines per second: quantum_core's JSON path against stdlib logging with a JSON formatter.

Both write one flushed line per call to /dev/null through a text stream (the bytes path for
ours), with a current trace id and three fields. Median of 5 runs of N lines each.

    .venv/bin/python bench/bench_logging.py [N]
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable

from quantum_core import configure_logging, get_logger, trace_context

RUNS = 5


class JsonFormatter(logging.Formatter):
    """A typical hand-written stdlib JSON formatter: the baseline."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "event": record.getMessage(),
            "level": record.levelname.lower(),
            "timestamp": self.formatTime(record, "%Y-%m-%dT%H:%M:%S")
            + f".{int(record.msecs):03d}Z",
            "service": "bench",
            "logger": record.name,
            "trace_id": trace_context.get(),
            **record.__dict__.get("fields", {}),
        }
        return json.dumps(line)


def lines_per_second(log_once: Callable[[int], None], n: int) -> float:
    results = []
    for _ in range(RUNS):
        start = time.perf_counter()
        for i in range(n):
            log_once(i)
        results.append(n / (time.perf_counter() - start))
    return statistics.median(results)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    with open(os.devnull, "w", encoding="utf-8") as sink, trace_context.scope():
        configure_logging("bench", stream=sink)
        ours = get_logger("bench.orders", domain="execution")

        def ours_info(i: int) -> None:
            ours.info("order_submitted", symbol="BTCUSDT", quantity=0.5, attempt=i)

        def ours_filtered(i: int) -> None:
            ours.debug("order_submitted", symbol="BTCUSDT", quantity=0.5, attempt=i)

        stdlib_via_ours = logging.getLogger("bench.stdlib")

        def stdlib_ours(i: int) -> None:
            stdlib_via_ours.info("order %s submitted", "BTCUSDT")

        figures = {
            "quantum_core JSON (info, 3 fields, trace id)": lines_per_second(ours_info, n),
            "quantum_core below level (debug at INFO)": lines_per_second(ours_filtered, n),
            "stdlib record through quantum_core's handler": lines_per_second(stdlib_ours, n),
        }

        root = logging.getLogger()
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        baseline_handler = logging.StreamHandler(sink)
        baseline_handler.setFormatter(JsonFormatter())
        baseline = logging.getLogger("bench.baseline")
        baseline.addHandler(baseline_handler)
        baseline.propagate = False
        baseline.setLevel(logging.INFO)

        def stdlib_json(i: int) -> None:
            baseline.info(
                "order_submitted",
                extra={"fields": {"symbol": "BTCUSDT", "quantity": 0.5, "attempt": i}},
            )

        figures["baseline: stdlib logging + json.dumps formatter"] = lines_per_second(
            stdlib_json, n
        )

    print(f"{n} lines per run, median of {RUNS} runs, Python {sys.version.split()[0]}")
    for label, rate in figures.items():
        print(f"  {label:<50} {rate:>12,.0f} lines/s")


if __name__ == "__main__":
    main()
