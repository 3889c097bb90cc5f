"""PolicyStore costs and propagation, each figure beside a baseline measured in the same run.

* Hot path: ``await store.get_policy()`` against ``await`` of an async function returning a
  dict entry; ``store.policy`` against a plain dict lookup. Time per call, loop included,
  median of RUNS runs of N calls.
* Redis: a cold ``backend.load()`` (GET, decode, validate) against a raw redis-py GET of the
  same key, and a write (``switch_mode``: WATCH, GET, MULTI/EXEC). Median and p99.
* Propagation: a second process holds its own store (its own connections) and spins on
  ``store.policy``; the first process switches the mode K times. Delay = first time the
  reader's cache shows the new version - start of ``switch_mode`` in the writer (both on
  CLOCK_MONOTONIC, which processes of one host share). Also with notifications turned off,
  to show what the periodic check alone gives when a notification is lost.

Redis is a redis-server of the benchmark's own on a free port (no persistence).

    .venv/bin/python bench/run.py --only policy [--quick]
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import time

import redis.asyncio as aredis

from _harness import Context, Row, Stat, Target
from quantum_core.models import RiskMode
from quantum_core.policy import PolicyStore, RedisPolicyBackend

PREFIX = "bench:policy"

READER = r"""
import asyncio, sys, time
from quantum_core import configure_logging
from quantum_core.policy import PolicyBackend, PolicyStore, RedisPolicyBackend

class PollOnly(RedisPolicyBackend):
    async def watch(self, on_change):
        return await PolicyBackend.watch(self, on_change)

async def main(url, prefix, mode, count):
    configure_logging("bench-reader", "WARNING", stream=sys.stderr)
    kind = PollOnly if mode == "poll" else RedisPolicyBackend
    async with PolicyStore(kind(url, key_prefix=prefix)) as store:
        await asyncio.sleep(0.2)
        print("ready", flush=True)
        last = store.policy.version
        final = last + count  # a cache may skip a version that was replaced at once: no hang
        while last < final:
            policy = await store.get_policy()
            if policy.version != last:
                print(policy.version, time.monotonic_ns(), flush=True)
                last = policy.version
            await asyncio.sleep(0)

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
"""


def per_call_ns(run, n: int, runs: int) -> float:
    """Median over ``runs`` of the time per call of a loop of ``n`` calls."""
    results = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        run(n)
        results.append((time.perf_counter_ns() - start) / n)
    return statistics.median(results)


async def per_call_ns_async(run, n: int, runs: int) -> float:
    results = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        await run(n)
        results.append((time.perf_counter_ns() - start) / n)
    return statistics.median(results)


def summary_us(samples: list[float]) -> dict[str, float]:
    samples = sorted(samples)
    return {"p50_us": statistics.median(samples), "p99_us": samples[int(len(samples) * 0.99)]}


async def interleaved_us(calls: dict, n: int) -> dict[str, dict[str, float]]:
    """Time each call n times, taking turns, so all see the same machine and server state."""
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(n):
        for name, call in calls.items():
            start = time.perf_counter_ns()
            await call()
            samples[name].append((time.perf_counter_ns() - start) / 1000)
    return {name: summary_us(values) for name, values in samples.items()}


async def hot_path(store: PolicyStore, n: int, runs: int) -> dict[str, float]:
    cached = store.policy
    table = {"policy": cached}

    async def trivial():
        return table["policy"]

    async def await_trivial(k: int) -> None:
        for _ in range(k):
            await trivial()

    async def await_get_policy(k: int) -> None:
        get_policy = store.get_policy
        for _ in range(k):
            await get_policy()

    def dict_lookup(k: int) -> None:
        for _ in range(k):
            table["policy"]

    def sync_accessor(k: int) -> None:
        for _ in range(k):
            store.policy  # noqa: B018 - the property read is what is measured

    return {
        "baseline_await_dict_entry_ns": await per_call_ns_async(await_trivial, n, runs),
        "await_get_policy_ns": await per_call_ns_async(await_get_policy, n, runs),
        "baseline_dict_lookup_ns": per_call_ns(dict_lookup, n, runs),
        "sync_policy_property_ns": per_call_ns(sync_accessor, n, runs),
    }


async def redis_round_trips(url: str, store: PolicyStore, n: int) -> dict[str, dict[str, float]]:
    backend = RedisPolicyBackend(url, key_prefix=PREFIX)
    raw = aredis.Redis.from_url(url)
    key = backend.key
    await raw.get(key)  # connect both before timing
    await backend.load()

    async def cold_load() -> None:
        backend._parsed = None  # what a changed document costs: GET, decode, validate
        await backend.load()

    modes = [RiskMode.DEFENSIVE, RiskMode.NORMAL]

    async def switch() -> None:
        await store.switch_mode(modes[store.policy.version % 2], updated_by="bench")

    await interleaved_us({"get": lambda: raw.get(key), "load": cold_load}, n // 10)  # warm up
    result = await interleaved_us(
        {
            "baseline_raw_get": lambda: raw.get(key),
            "cold_load": cold_load,
            "unchanged_load": backend.load,
        },
        n,
    )
    result |= await interleaved_us({"switch_mode_write": switch}, n // 4)
    await raw.aclose()
    await backend.close()
    return result


async def propagation(url: str, store: PolicyStore, mode: str, count: int) -> dict[str, float]:
    reader = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        READER,
        url,
        PREFIX,
        mode,
        str(count),
        stdout=asyncio.subprocess.PIPE,
    )
    if reader.stdout is None or (await reader.stdout.readline()).strip() != b"ready":
        sys.exit("the reader process did not start")
    started: dict[int, tuple[int, int]] = {}
    for _ in range(count):
        target = RiskMode.DEFENSIVE if store.policy.active_mode is RiskMode.NORMAL else "NORMAL"
        begin = time.monotonic_ns()
        policy = await store.switch_mode(target, updated_by="bench")
        started[policy.version] = (begin, time.monotonic_ns())
        if mode == "poll":  # wait until seen, so each change is measured on its own
            await asyncio.sleep(1.2)
        else:
            await asyncio.sleep(random.uniform(0.005, 0.015))
    out, _ = await reader.communicate()
    seen = [(int(v), int(t)) for v, t in (line.split() for line in out.decode().splitlines())]
    delays = sorted((at - started[version][0]) / 1e6 for version, at in seen)
    after_write = sorted((at - started[version][1]) / 1e6 for version, at in seen)
    return {
        "samples": len(delays),
        "p50_ms": statistics.median(delays),
        "p99_ms": delays[min(len(delays) - 1, int(len(delays) * 0.99))],
        "max_ms": delays[-1],
        "after_write_returned_p50_ms": statistics.median(after_write),
        "after_write_returned_p99_ms": after_write[min(len(delays) - 1, int(len(delays) * 0.99))],
    }


TITLE = "policy store"
SECTION = "Policy store"


async def measure(ctx: Context) -> dict[str, float]:
    """One run of everything; the runner repeats it."""
    n, runs, trips = ctx.size(1_000_000, 200_000), ctx.size(3, 1), ctx.size(2_000, 500)
    changes, polls = ctx.size(200, 50), ctx.size(5, 2)
    async with PolicyStore(RedisPolicyBackend(ctx.url, key_prefix=PREFIX)) as store:
        hot = await hot_path(store, n, runs)
        trip = await redis_round_trips(ctx.url, store, trips)
        pub = await propagation(ctx.url, store, "pubsub", changes)
        poll = await propagation(ctx.url, store, "poll", polls)
    out = dict(hot)
    for name, figures in trip.items():
        out |= {f"{name}_{k}": v for k, v in figures.items()}
    out |= {f"pubsub_{k}": v for k, v in pub.items() if k != "samples"}
    out |= {f"poll_{k}": v for k, v in poll.items() if k != "samples"}
    return out


def rows(stats: dict[str, Stat], ctx: Context) -> list[Row]:
    s = stats
    return [
        Row(
            SECTION,
            "`await store.get_policy()` (cached)",
            "ns",
            s["await_get_policy_ns"],
            "async def returning a dict entry",
            s["baseline_await_dict_entry_ns"],
            Target("<", 1000),
        ),
        Row(
            SECTION,
            "`store.policy` (sync)",
            "ns",
            s["sync_policy_property_ns"],
            "dict lookup",
            s["baseline_dict_lookup_ns"],
            Target("<", 100),
        ),
        Row(
            SECTION,
            "cold `backend.load()` (GET, decode, validate), p50",
            "µs",
            s["cold_load_p50_us"],
            "raw GET",
            s["baseline_raw_get_p50_us"],
            Target("<", 1000),
        ),
        Row(
            SECTION,
            "cold `backend.load()`, p99",
            "µs",
            s["cold_load_p99_us"],
            "raw GET",
            s["baseline_raw_get_p99_us"],
            Target("<", 1000),
        ),
        Row(
            SECTION, "`switch_mode()` write (WATCH/MULTI), p50", "µs", s["switch_mode_write_p50_us"]
        ),
        Row(SECTION, "propagation to another process, p50", "ms", s["pubsub_p50_ms"]),
        Row(
            SECTION,
            "propagation to another process, p99",
            "ms",
            s["pubsub_p99_ms"],
            target=Target("<=", 250),
        ),
        Row(
            SECTION,
            "propagation after `switch_mode()` returned, p99",
            "ms",
            s["pubsub_after_write_returned_p99_ms"],
        ),
        Row(
            SECTION,
            "propagation, notifications lost (periodic check only), p50",
            "ms",
            s["poll_p50_ms"],
            note="poll_interval 1 s",
        ),
    ]


if __name__ == "__main__":
    from run import main

    main(["--only", "policy"])
