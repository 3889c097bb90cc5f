"""End to end across processes: a publisher process, consumer processes, one Redis.

* end to end: the publisher publishes N events in batches of 100 (``publish_many``; a
  pipeline for the others) while one consumer process handles them with a trivial handler
  and acknowledges after it. Against raw redis-py (XREADGROUP COUNT 100 + one XACK per
  batch) and FastStream's StreamSub subscriber, per message and ``batch=True``.
* drain: the stream is filled first, then one consumer process empties it.
* scaling: the same end to end with 1, 2 and 4 consumer processes of one service (one
  group). On a 2-CPU machine the publisher, Redis and the consumers share two cores, so the
  curve says more about the machine than about the bus above 2 processes.

    .venv/bin/python bench/run.py --only e2e [--quick]
"""

from __future__ import annotations

import itertools

import _procs
from _harness import Context, Row, Stat, Target

TITLE = "end to end (processes)"
SECTION = "End to end, separate processes (Redis Streams)"
SCALING = "Scaling: consumer processes of one service"
CONSUMERS = (1, 2, 4)
IMPLS = ("bus", "raw", "faststream", "faststream-batch")
_keys = itertools.count()


async def measure(ctx: Context) -> dict[str, float]:
    n = ctx.size(50_000, 10_000)
    out: dict[str, float] = {}
    for impl in IMPLS:
        # FastStream per message runs at a few thousand a second: fewer events, same clock.
        count = n // 5 if impl == "faststream" else n
        outcome = await _procs.run(impl, ctx.url, f"e2e-{next(_keys)}", count)
        out[f"e2e_{impl}"] = outcome.rate
        ctx.info.setdefault("resp", {})[impl] = outcome.resp
        ctx.server and ctx.server.flush()
    for impl in ("bus", "raw"):
        outcome = await _procs.run(impl, ctx.url, f"drain-{next(_keys)}", n, drain=True)
        out[f"drain_{impl}"] = outcome.rate
        ctx.server and ctx.server.flush()
        for consumers in CONSUMERS[1:]:
            outcome = await _procs.run(impl, ctx.url, f"sc-{next(_keys)}", n, consumers=consumers)
            out[f"scale_{impl}_{consumers}"] = outcome.rate
            ctx.server and ctx.server.flush()
    for impl in ("bus", "raw"):
        out[f"scale_{impl}_1"] = out[f"e2e_{impl}"]
    return out


def rows(stats: dict[str, Stat], ctx: Context) -> list[Row]:
    ours = stats["e2e_bus"]
    name = "publish_many -> handler -> ack, 1 consumer process"
    out = [
        Row(SECTION, name, "events/s", ours, "", None, Target(">=", 50_000)),
        Row(
            SECTION,
            name,
            "events/s",
            ours,
            "raw redis-py",
            stats["e2e_raw"],
            Target(">=", 0.8, "ratio"),
        ),
        Row(
            SECTION,
            name,
            "events/s",
            ours,
            "FastStream StreamSub",
            stats["e2e_faststream"],
            Target(">=", 10, "ratio"),
            "FastStream on RESP2, logging off",
        ),
        Row(
            SECTION,
            name,
            "events/s",
            ours,
            "FastStream batch=True",
            stats["e2e_faststream-batch"],
            Target(">=", 2, "ratio"),
            "FastStream on RESP2, logging off",
        ),
        Row(
            SECTION,
            "drain a pre-filled stream, 1 consumer process",
            "events/s",
            stats["drain_bus"],
            "raw redis-py",
            stats["drain_raw"],
            Target(">=", 0.6, "ratio"),
        ),
    ]
    for consumers in CONSUMERS:
        out.append(
            Row(
                SCALING,
                f"{consumers} consumer process{'es' if consumers > 1 else ''}",
                "events/s",
                stats[f"scale_bus_{consumers}"],
                "raw redis-py",
                stats[f"scale_raw_{consumers}"],
            )
        )
    return out


if __name__ == "__main__":
    from run import main

    main(["--only", "e2e"])
