"""One publisher or consumer process of a process benchmark; the runner starts several.

It talks to the runner in JSON lines on stdout. A consumer prints ``ready`` once consuming,
then runs until its stdin closes, and prints what it handled: the count, the CLOCK_MONOTONIC
time of the first and last event (shared by every process of the host) and, for stamped
events, each latency in µs. A publisher prints the time it started and exits when done.

    python bench/_worker.py consume IMPL URL KEY [--from-start]
    python bench/_worker.py publish IMPL URL KEY N [--rate R] [--stamp]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
import time
from typing import Any

import _observability_env  # noqa: F401 - first: what OpenTelemetry/Prometheus there is

# isort: split
from _clients import READ_COUNT, Bus, Raw
from quantum_core import configure_logging


def implementation(name: str) -> Any:
    if name in ("faststream", "faststream-batch"):  # imported only when asked: optional extra
        from _faststream import FastStream, FastStreamBatch

        return FastStream if name == "faststream" else FastStreamBatch
    return {"bus": Bus, "raw": Raw}[name]


def say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


async def consume(impl: Any, url: str, key: str, from_start: bool) -> None:
    now = time.monotonic_ns
    count, first, last = 0, 0, 0
    latencies: list[int] = []

    def record(stamp: int | None) -> None:
        nonlocal count, first, last
        last = now()
        if not count:
            first = last
        count += 1
        if stamp is not None:
            latencies.append((last - stamp) // 1000)

    t0 = now()
    close, resp = await impl.open_consumer(url, key, from_start, record)
    cpu = time.process_time()
    say(ready=True, t0=t0, resp=resp)
    await asyncio.to_thread(sys.stdin.read)  # until the runner closes our stdin
    cpu = time.process_time() - cpu  # this process's CPU seconds while consuming
    await close()
    say(count=count, first=first, last=last, latencies_us=latencies, cpu=cpu)


async def publish(impl: Any, url: str, key: str, n: int, rate: float, stamp: bool) -> None:
    send, close, resp = await impl.open_publisher(url, key)
    await send(1, time.monotonic_ns() if stamp else None)  # connect and warm up, untimed
    n -= 1
    cpu = time.process_time()
    start = time.monotonic_ns()
    say(start=start, resp=resp)
    sent = 0
    while sent < n:
        if rate:  # paced: send what is due, in one call, stamped when it leaves
            due = min(n, int((time.monotonic_ns() - start) * rate / 1e9) + 1) - sent
            if due <= 0:
                await asyncio.sleep(1 / rate)
                continue
            k = min(due, READ_COUNT)
        else:
            k = min(READ_COUNT, n - sent)
        await send(k, time.monotonic_ns() if stamp else None)
        sent += k
    end = time.monotonic_ns()
    cpu = time.process_time() - cpu
    await close()
    say(start=start, end=end, sent=sent + 1, cpu=cpu)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["consume", "publish"])
    parser.add_argument("impl")
    parser.add_argument("url")
    parser.add_argument("key")
    parser.add_argument("n", nargs="?", type=int, default=0)
    parser.add_argument("--from-start", action="store_true")
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--stamp", action="store_true")
    args = parser.parse_args()
    configure_logging("bench-worker", "ERROR", stream=io.StringIO())
    impl = implementation(args.impl)
    if args.role == "consume":
        asyncio.run(consume(impl, args.url, args.key, args.from_start))
    else:
        asyncio.run(publish(impl, args.url, args.key, args.n, args.rate, args.stamp))


if __name__ == "__main__":
    main()
