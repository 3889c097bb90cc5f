"""JSON log lines per second: quantum_core's whole pipeline beside the usual alternatives.

Every contender writes one flushed JSON line per call, with the event, three fields and the
current trace id, to /dev/null and to a file:

* quantum_core: ``configure_logging`` then ``get_logger(...).info(...)`` (level filter,
  redaction, fixed keys, timestamp, JSON by pydantic_core into a bytes stream);
* stdlib ``logging`` with a hand-written ``json.dumps`` formatter;
* structlog's default configuration with ``JSONRenderer`` in place of the console renderer;
* structlog's fastest documented configuration ("Performance" in its docs): orjson if
  installed (else json) into a ``BytesLogger``, ``make_filtering_bound_logger``,
  ``cache_logger_on_first_use=True``.

    .venv/bin/python bench/run.py --only logging [--quick]
"""

from __future__ import annotations

import io
import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import structlog

from _harness import Context, Row, Stat, Target
from quantum_core import configure_logging, get_logger, trace_context

TITLE = "logging"
SECTION = "Logging: JSON lines per second"
SINKS = ("devnull", "file")

try:
    import orjson  # type: ignore[import-not-found]
except ImportError:  # structlog's docs: orjson if you can, else the standard library
    orjson = None


class JsonFormatter(logging.Formatter):
    """A typical hand-written stdlib JSON formatter."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "event": record.getMessage(),
                "level": record.levelname.lower(),
                "timestamp": self.formatTime(record, "%Y-%m-%dT%H:%M:%S")
                + f".{int(record.msecs):03d}Z",
                "logger": record.name,
                "trace_id": trace_context.get(),
                **record.__dict__.get("fields", {}),
            }
        )


def _rate(log_once: Callable[[int], None], n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        log_once(i)
    return n / (time.perf_counter() - start)


def _open(ctx: Context, sink: str, binary: bool = False) -> Any:
    path = os.devnull if sink == "devnull" else ctx.tmp / "bench.log"
    return open(path, "wb" if binary else "w", encoding=None if binary else "utf-8")


def ours(ctx: Context, sink: str, n: int) -> float:
    with _open(ctx, sink) as out:
        configure_logging("bench", stream=out)
        log = get_logger("bench.orders", domain="execution")
        rate = _rate(
            lambda i: log.info("order_submitted", symbol="BTCUSDT", quantity=0.5, attempt=i), n
        )
    configure_logging("bench", "ERROR", stream=io.StringIO())
    return rate


def stdlib(ctx: Context, sink: str, n: int) -> float:
    with _open(ctx, sink) as out:
        handler = logging.StreamHandler(out)
        handler.setFormatter(JsonFormatter())
        log = logging.getLogger("bench.baseline")
        log.addHandler(handler)
        log.propagate, log.level = False, logging.INFO
        rate = _rate(
            lambda i: log.info(
                "order_submitted",
                extra={"fields": {"symbol": "BTCUSDT", "quantity": 0.5, "attempt": i}},
            ),
            n,
        )
        log.removeHandler(handler)
    return rate


def structlog_default(ctx: Context, sink: str, n: int) -> float:
    with _open(ctx, sink) as out:
        structlog.configure(
            processors=[
                structlog.contextvars.merge_contextvars,
                structlog.processors.add_log_level,
                structlog.processors.StackInfoRenderer(),
                structlog.dev.set_exc_info,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.JSONRenderer(),
            ],
            logger_factory=structlog.WriteLoggerFactory(out),
        )
        return _structlog_rate(n)


def structlog_fastest(ctx: Context, sink: str, n: int) -> float:
    with _open(ctx, sink, binary=orjson is not None) as out:
        structlog.configure(
            cache_logger_on_first_use=True,
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
            processors=[
                structlog.contextvars.merge_contextvars,
                structlog.processors.add_log_level,
                structlog.processors.format_exc_info,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.JSONRenderer(serializer=orjson.dumps)
                if orjson
                else structlog.processors.JSONRenderer(),
            ],
            logger_factory=structlog.BytesLoggerFactory(out)
            if orjson
            else structlog.WriteLoggerFactory(out),
        )
        return _structlog_rate(n)


def _structlog_rate(n: int) -> float:
    structlog.contextvars.bind_contextvars(trace_id=trace_context.get())
    log = structlog.get_logger("bench.structlog")
    try:
        return _rate(
            lambda i: log.info("order_submitted", symbol="BTCUSDT", quantity=0.5, attempt=i), n
        )
    finally:
        structlog.contextvars.clear_contextvars()
        structlog.reset_defaults()


async def measure(ctx: Context) -> dict[str, float]:
    n = ctx.size(100_000, 20_000)
    out: dict[str, float] = {}
    with trace_context.scope():
        for sink in SINKS:
            for name, run in (
                ("ours", ours),
                ("stdlib", stdlib),
                ("structlog_default", structlog_default),
                ("structlog_fastest", structlog_fastest),
            ):
                out[f"{name}_{sink}"] = run(ctx, sink, n)
    # ours again last: structlog's global configuration was changed and reset meanwhile
    configure_logging("bench", "ERROR", stream=io.StringIO())
    return out


def rows(stats: dict[str, Stat], ctx: Context) -> list[Row]:
    out = []
    fastest = f"structlog fastest ({'orjson' if orjson else 'json, orjson not installed'})"
    for sink, label in (("devnull", "to /dev/null"), ("file", "to a file")):
        ours_stat = stats[f"ours_{sink}"]
        name = f"configure_logging + get_logger().info, {label}"
        out += [
            Row(SECTION, name, "lines/s", ours_stat, "", None, Target(">=", 150_000)),
            Row(
                SECTION,
                name,
                "lines/s",
                ours_stat,
                "stdlib + json formatter",
                stats[f"stdlib_{sink}"],
            ),
            Row(
                SECTION,
                name,
                "lines/s",
                ours_stat,
                "structlog default JSON",
                stats[f"structlog_default_{sink}"],
            ),
            Row(SECTION, name, "lines/s", ours_stat, fastest, stats[f"structlog_fastest_{sink}"]),
        ]
    return out


if __name__ == "__main__":
    from run import main

    main(["--only", "logging"])
