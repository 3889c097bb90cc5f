"""What observability costs end to end on Redis: OpenTelemetry and Prometheus, on and off.

The end-to-end scenario of ``bench_e2e`` (a publisher process, ``publish_many`` in batches
of 100, one consumer process, a trivial handler, ack after it), once per variant of what the
processes have (``_observability_env.py``):

* without: neither ``opentelemetry`` nor ``prometheus_client`` importable (no extra);
* otel, no SDK: the API and SDK installed, none configured (issue 20: >= 0.97x without);
* SDK, batch span processor exporting nowhere: a send span per batch, a process span per
  event, traceparent in every event (the figure and its ratio; no target);
* Prometheus on: prometheus_client installed, so metrics on (>= 0.95x without).

The variants take turns within a run (in another order each run), so that the machine's
drift hits each alike. Throughput on a shared machine swings by 2x from one minute to the
next, so each variant also reports the CPU time per event of its processes (publisher and
consumer, from ``time.process_time``): the cost itself, which other processes disturb far
less. Its targets are the same claims: 1/0.97 = 1.03x and 1/0.95 = 1.05x the CPU.

    .venv/bin/python bench/run.py --only observability [--quick]
"""

from __future__ import annotations

import itertools

import _procs
from _harness import Context, Row, Stat, Target
from _observability_env import VARIANTS

TITLE = "observability (OpenTelemetry, Prometheus)"
SECTION = "Observability: end to end on Redis, 1 consumer process"
CPU = "Observability: CPU per event (publisher + consumer process), end to end on Redis"
_keys = itertools.count()
_turns = itertools.count()


async def measure(ctx: Context) -> dict[str, float]:
    n = ctx.size(50_000, 10_000)
    out: dict[str, float] = {}
    # untimed: the first scenario of a run pays for the server's and the page cache's warm-up
    await _procs.run("bus", ctx.url, f"obs-warm-{next(_keys)}", n // 5)
    ctx.server and ctx.server.flush()
    turn = next(_turns) % len(VARIANTS)
    for variant in VARIANTS[turn:] + VARIANTS[:turn]:
        outcome = await _procs.run(
            "bus", ctx.url, f"obs-{variant}-{next(_keys)}", n, observability=variant
        )
        out[f"obs_{variant}"] = outcome.rate
        out[f"cpu_{variant}"] = outcome.cpu_us
        ctx.server and ctx.server.flush()
    return out


def rows(stats: dict[str, Stat], ctx: Context) -> list[Row]:
    without = stats["obs_without"]
    baseline = "neither extra"
    return [
        Row(SECTION, "without opentelemetry and prometheus_client", "events/s", without),
        Row(
            SECTION,
            "otel installed, no SDK configured",
            "events/s",
            stats["obs_otel"],
            baseline,
            without,
            Target(">=", 0.97, "ratio"),
        ),
        Row(
            SECTION,
            "SDK + batch span processor exporting nowhere",
            "events/s",
            stats["obs_sdk"],
            baseline,
            without,
            note="a send span per publish_many, a process span per event, traceparent headers",
        ),
        Row(
            SECTION,
            "Prometheus metrics on",
            "events/s",
            stats["obs_prometheus"],
            baseline,
            without,
            Target(">=", 0.95, "ratio"),
        ),
        Row(CPU, "without opentelemetry and prometheus_client", "µs", stats["cpu_without"]),
        Row(
            CPU,
            "otel installed, no SDK configured",
            "µs",
            stats["cpu_otel"],
            baseline,
            stats["cpu_without"],
            Target("<=", 1.03, "ratio"),
        ),
        Row(
            CPU,
            "SDK + batch span processor exporting nowhere",
            "µs",
            stats["cpu_sdk"],
            baseline,
            stats["cpu_without"],
        ),
        Row(
            CPU,
            "Prometheus metrics on",
            "µs",
            stats["cpu_prometheus"],
            baseline,
            stats["cpu_without"],
            Target("<=", 1.05, "ratio"),
        ),
    ]


if __name__ == "__main__":
    from run import main

    main(["--only", "observability"])
