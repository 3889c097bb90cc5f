"""Runs one process scenario: consumer processes, a publisher process, and the clock.

End to end: consumers start and say ready, then the publisher publishes N events; the time
is from the publisher's first timed publish to the last event a consumer handled (both on
CLOCK_MONOTONIC, which the processes of one host share). Drain: the stream is filled first,
and the time is from a consumer's start to its last event. The runner knows every event was
handled and acknowledged when the group has delivered the stream's last entry and nothing is
pending; only then does it stop the consumers.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as redis

from _clients import Bus, Raw
from _harness import BENCH_DIR, percentile
from _observability_env import VARIABLE

WORKER = str(BENCH_DIR / "_worker.py")
DEADLINE = 300.0


@dataclass
class Outcome:
    rate: float  # events per second
    handled: int
    resp: dict[str, int | None] = field(default_factory=dict)
    latencies_us: list[int] = field(default_factory=list)
    sent_rate: float = math.nan
    cpu_us: float = math.nan  # CPU µs per event of the publisher and the consumers together

    def latency(self, q: float) -> float:
        return percentile(sorted(self.latencies_us), q)


def stream_info(impl_name: str) -> tuple[Any, str]:
    if impl_name.startswith("faststream"):
        from _faststream import FastStream

        return FastStream, FastStream.group
    impl = {"bus": Bus, "raw": Raw}[impl_name]
    return impl, impl.group


async def _spawn(
    *args: str, stdin: bool = False, observability: str = "without"
) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(BENCH_DIR), os.environ.get("PYTHONPATH", "")]),
        VARIABLE: observability,
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        WORKER,
        *args,
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        env=env,
        limit=64 * 1024 * 1024,
    )


async def _line(proc: asyncio.subprocess.Process) -> dict[str, Any]:
    if proc.stdout is None:
        raise RuntimeError("the worker's stdout is not a pipe")
    raw = await asyncio.wait_for(proc.stdout.readline(), DEADLINE)
    if not raw:
        await proc.wait()
        raise RuntimeError(f"a benchmark worker exited with {proc.returncode} before answering")
    return dict(json.loads(raw))


async def _publish(
    impl: str, url: str, key: str, n: int, rate: float, stamp: bool, observability: str
) -> dict[str, Any]:
    args = [impl, url, key, str(n), "--rate", str(rate)] + (["--stamp"] if stamp else [])
    proc = await _spawn("publish", *args, observability=observability)
    started = await _line(proc)
    done = await _line(proc)
    await proc.wait()
    return {**started, **done}


async def _all_acked(client: redis.Redis, key: str, group: str) -> bool:
    try:
        last = (await client.xinfo_stream(key))["last-generated-id"]
        groups = await client.xinfo_groups(key)
    except redis.ResponseError:
        return False
    for info in groups:
        name = info["name"]
        if (name.decode() if isinstance(name, bytes) else name) == group:
            return bool(info["last-delivered-id"] == last and info["pending"] == 0)
    return False


async def run(
    impl: str,
    url: str,
    key: str,
    n: int,
    *,
    consumers: int = 1,
    rate: float = 0.0,
    stamp: bool = False,
    drain: bool = False,
    observability: str = "without",
) -> Outcome:
    """Publish ``n`` events of ``impl`` to ``key`` and consume them with ``consumers`` processes.

    ``observability``: what OpenTelemetry and Prometheus the processes have
    (``_observability_env.py``); by default neither, as without the extras.
    """
    cls, group = stream_info(impl)
    stream_key = cls.stream_key(key)
    resp: dict[str, int | None] = {}
    published: dict[str, Any] = {}
    if drain:
        published = await _publish(impl, url, key, n, 0.0, False, observability)
    procs = [
        await _spawn(
            "consume",
            impl,
            url,
            key,
            *(["--from-start"] if drain else []),
            stdin=True,
            observability=observability,
        )
        for _ in range(consumers)
    ]
    readies = [await _line(proc) for proc in procs]
    resp["consumer"] = readies[0]["resp"]
    if not drain:
        published = await _publish(impl, url, key, n, rate, stamp, observability)
    resp["publisher"] = published["resp"]
    client = redis.from_url(url)
    try:
        waited = 0.0
        while not await _all_acked(client, stream_key, group):
            await asyncio.sleep(0.02)
            waited += 0.02
            if waited > DEADLINE:
                raise TimeoutError(f"{impl}: events still unhandled after {DEADLINE:.0f} s")
    finally:
        await client.aclose()
        results = []
        for proc in procs:
            if proc.stdin is not None:
                proc.stdin.close()
        for proc in procs:
            results.append(await _line(proc))
            await proc.wait()
    handled = sum(r["count"] for r in results)
    last = max(r["last"] for r in results)
    begin = min(r["t0"] for r in readies) if drain else published["start"]
    latencies = [v for r in results for v in r["latencies_us"]]
    sent_rate = published["sent"] / max(1e-9, (published["end"] - published["start"]) / 1e9)
    cpu = sum(r.get("cpu", math.nan) for r in results) + published.get("cpu", math.nan)
    return Outcome(
        handled / ((last - begin) / 1e9), handled, resp, latencies, sent_rate, cpu / handled * 1e6
    )
