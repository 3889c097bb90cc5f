"""PolicyStore costs and propagation, each figure beside a baseline measured in the same run.

* Hot path: ``await store.get_policy()`` against ``await`` of a trivial coroutine returning
  a cached object; ``store.policy`` against a plain dict lookup. Time per call, loop included,
  median of RUNS runs of N calls.
* Redis: a cold ``backend.load()`` (GET, decode, validate) against a raw redis-py GET of the
  same key, and a write (``switch_mode``: WATCH, GET, MULTI/EXEC). Median and p99.
* Propagation: a second process holds its own store (its own connections) and spins on
  ``store.policy``; the first process switches the mode K times. Delay = first time the
  reader's cache shows the new version - start of ``switch_mode`` in the writer (both on
  CLOCK_MONOTONIC, which processes of one host share). Also with notifications turned off,
  to show what the periodic check alone gives when a notification is lost.

Redis is a redis-server of the benchmark's own on a free port (no persistence).

    .venv/bin/python bench/bench_policy.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import redis
import redis.asyncio as aredis

from quantum_core import configure_logging
from quantum_core.models import RiskMode
from quantum_core.policy import PolicyStore, RedisPolicyBackend

RESULTS = Path(__file__).parent / "results" / "policy.json"
PREFIX = "bench:policy"
NO_PERSISTENCE = ("--save", "", "--appendonly", "no")

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
        seen, last = 0, store.policy.version
        while seen < count:
            policy = await store.get_policy()
            if policy.version != last:
                print(policy.version, time.monotonic_ns(), flush=True)
                last, seen = policy.version, seen + 1
            await asyncio.sleep(0)

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_redis() -> tuple[subprocess.Popen[bytes], str]:
    if shutil.which("redis-server") is None:
        sys.exit("redis-server is not on PATH")
    port = free_port()
    server = subprocess.Popen(
        [*("redis-server", "--port", str(port), "--bind", "127.0.0.1"), *NO_PERSISTENCE],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    for _ in range(500):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.01)
    client.close()
    return server, f"redis://127.0.0.1:{port}/0"


def redis_server_version() -> str:
    out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, check=True)
    return out.stdout.split()[2].removeprefix("v=")


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
        return cached

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
        "baseline_await_trivial_coroutine_ns": await per_call_ns_async(await_trivial, n, runs),
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


async def main(quick: bool) -> dict:
    n, runs, trips, changes = (200_000, 5, 500, 50) if quick else (1_000_000, 7, 2_000, 200)
    configure_logging("bench", "ERROR", stream=io.StringIO())
    server, url = start_redis()
    try:
        async with PolicyStore(RedisPolicyBackend(url, key_prefix=PREFIX)) as store:
            results = {
                "hot_path": await hot_path(store, n, runs),
                "redis": await redis_round_trips(url, store, trips),
                "propagation_pubsub": await propagation(url, store, "pubsub", changes),
                "propagation_periodic_check_only": await propagation(
                    url, store, "poll", 5 if quick else 20
                ),
            }
    finally:
        server.kill()
        server.wait()
    results["environment"] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "redis_server": redis_server_version(),
        "redis_py": redis.__version__,
        "calls_per_run": n,
        "runs": runs,
        "round_trips": trips,
    }
    return results


def table(results: dict) -> str:
    hot, rt = results["hot_path"], results["redis"]
    pub, poll = results["propagation_pubsub"], results["propagation_periodic_check_only"]
    rows = [
        ("await store.get_policy() (cached)", f"{hot['await_get_policy_ns']:.0f} ns",
         f"await trivial coroutine {hot['baseline_await_trivial_coroutine_ns']:.0f} ns"),
        ("store.policy (sync)", f"{hot['sync_policy_property_ns']:.0f} ns",
         f"dict lookup {hot['baseline_dict_lookup_ns']:.0f} ns"),
        ("backend.load() cold, p50 / p99",
         f"{rt['cold_load']['p50_us']:.0f} / {rt['cold_load']['p99_us']:.0f} us",
         f"raw GET {rt['baseline_raw_get']['p50_us']:.0f} / "
         f"{rt['baseline_raw_get']['p99_us']:.0f} us"),
        ("backend.load() unchanged, p50 / p99",
         f"{rt['unchanged_load']['p50_us']:.0f} / {rt['unchanged_load']['p99_us']:.0f} us", ""),
        ("switch_mode() write, p50 / p99",
         f"{rt['switch_mode_write']['p50_us']:.0f} / {rt['switch_mode_write']['p99_us']:.0f} us",
         ""),
        (f"propagation, pub/sub ({pub['samples']}), p50 / p99 / max",
         f"{pub['p50_ms']:.2f} / {pub['p99_ms']:.2f} / {pub['max_ms']:.2f} ms", "target < 250 ms"),
        ("  of which after switch_mode() returned, p50 / p99",
         f"{pub['after_write_returned_p50_ms']:.2f} / {pub['after_write_returned_p99_ms']:.2f} ms",
         ""),
        (f"propagation, check only ({poll['samples']}), p50 / p99",
         f"{poll['p50_ms']:.0f} / {poll['p99_ms']:.0f} ms", "poll_interval 1 s"),
    ]  # fmt: skip
    width = max(len(r[0]) for r in rows)
    lines = [f"{'':{width}}  {'measured':>24}  baseline (same run)"]
    lines += [f"{a:{width}}  {b:>24}  {c}" for a, b, c in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and changes")
    results = asyncio.run(main(parser.parse_args().quick))
    print(table(results))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {RESULTS}")
