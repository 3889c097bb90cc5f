"""``make bench``: every benchmark, several runs each, against its baselines, in one go.

Starts a redis-server of its own (free port, no persistence), runs each module of MODULES
``--runs`` times, prints one table, and writes ``bench/results/bench.json`` and ``.md``
(``bench-quick.*`` with ``--quick``), plots, and, after a full run of everything, the
results part of docs/benchmarks.md.

A module joins by being named in MODULES and exposing ``TITLE``, ``measure(ctx)`` and
``rows(stats, ctx)`` (see _harness.py); a module that is missing or fails is reported and
the others still run.

    .venv/bin/python bench/run.py [--quick] [--only bus,e2e] [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import io
import sys
import time
import traceback
from typing import Any

# First: the in-process rows run without the observability extras, as the process rows do
# (bench_observability measures what the extras cost).
import _observability_env  # noqa: F401
import _report
from _harness import BENCH_DIR, REPO, Context, RedisServer, Row, collect, machine_info
from quantum_core import configure_logging

MODULES = [
    "bench_bus",
    "bench_e2e",
    "bench_observability",
    "bench_latency",
    "bench_inmemory",
    "bench_typed",
    "bench_policy",
    "bench_logging",
    "bench_memory",
    "bench_health",
    "bench_nats",
    "bench_rabbitmq",
    "bench_kafka",
    "bench_outbox",
    "bench_cluster",
]
RESULTS = BENCH_DIR / "results"
DOCS_PAGE = REPO / "docs" / "benchmarks.md"
DOCS_IMG = REPO / "docs" / "img"

PROTOCOLS = (
    "quantum_core and raw redis-py speak RESP3 (redis-py 8's default, also set in the URL); "
    "FastStream speaks RESP2, because its stream subscriber cannot read redis-py's RESP3 "
    "XREADGROUP reply. The `resp` field of the JSON records what each client's connection "
    "reported to the server (CLIENT INFO)."
)


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    names = (
        MODULES
        if not args.only
        else [f"bench_{n.removeprefix('bench_')}" for n in args.only.split(",")]
    )
    server = RedisServer()
    ctx = Context(
        url=server.url, quick=args.quick, runs=args.runs or (1 if args.quick else 5), server=server
    )
    rows: list[Row] = []
    errors: dict[str, str] = {}
    timings: dict[str, float] = {}
    environment = machine_info(server.version)
    try:
        for name in names:
            started = time.perf_counter()
            try:
                module = importlib.import_module(name)
                stats = await collect(module, ctx)
                rows += module.rows(stats, ctx)
            except Exception as exc:
                traceback.print_exc()
                errors[name] = f"{type(exc).__name__}: {exc}"
            timings[name] = round(time.perf_counter() - started, 1)
            server.flush()
    finally:
        server.stop()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "quick": args.quick,
        "runs": ctx.runs,
        "environment": environment,
        "protocols": PROTOCOLS,
        "info": ctx.info,
        "seconds_per_module": timings,
        "errors": errors,
        "rows": _report.as_dicts(rows),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer and shorter runs (< 2 min)")
    parser.add_argument("--only", help="comma-separated modules, e.g. bus,e2e,latency")
    parser.add_argument("--runs", type=int, help="runs per figure (default 5, quick 1)")
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args(argv)
    configure_logging("bench", "ERROR", stream=io.StringIO())
    started = time.perf_counter()
    result = asyncio.run(_run(args))
    print(_report.text_table(result["rows"]))
    stem = "bench-quick" if args.quick else "bench"
    if args.only:
        stem += "-only-" + args.only.replace(",", "-")
    md_path = _report.write(result, RESULTS / f"{stem}.json")
    print(f"\nwritten: {RESULTS / stem}.json, {md_path}", end="")
    if not args.no_plots:
        import plots

        full = not args.quick and not args.only
        written = plots.draw(result, DOCS_IMG if full else RESULTS / f"{stem}-img")
        print(", " + ", ".join(str(p.relative_to(REPO)) for p in written), end="")
        if full and _report.update_docs(DOCS_PAGE, _report.markdown(result)):
            print(f", {DOCS_PAGE.relative_to(REPO)}", end="")
        for name, (page, section) in _report.SECTION_PAGES.items() if full else ():
            body = _report.section_markdown(result, section)
            if _report.update_docs(DOCS_PAGE.parent / page, body, name):
                print(f", docs/{page}", end="")
    print(
        f"\n{time.perf_counter() - started:.0f} s; not met: "
        f"{sum(r['met'] is False for r in result['rows'])} of "
        f"{sum(r['met'] is not None for r in result['rows'])} targets"
    )
    if result["errors"]:
        print(f"FAILED: {', '.join(result['errors'])}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
