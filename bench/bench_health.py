"""How long a health report takes when every dependency is down: the timeouts must hold.

A HealthChecker with Redis, PostgreSQL and HTTP (exchange) checks, each with its own timeout,
against addresses on free ports: nothing listening (connection refused), and a listener that
accepts and never answers (the hung case, where only the timeout ends the check). The
report must come within the largest check timeout plus 50 ms.

    .venv/bin/python bench/run.py --only health [--quick]
"""

from __future__ import annotations

import socket
import time
from contextlib import ExitStack

import redis.asyncio as redis

from _harness import Context, Row, Stat, Target, free_port
from quantum_core import HealthChecker
from quantum_core.health import BinanceRestCheck, PostgresCheck, RedisCheck

TITLE = "health"
SECTION = "Health report, every dependency down"
TIMEOUTS = {"redis": 0.25, "postgres": 0.5, "exchange": 1.0}
LIMIT_MS = max(TIMEOUTS.values()) * 1000 + 50


def _silent_listener(stack: ExitStack) -> int:
    """A port that completes the TCP handshake (the kernel's backlog) and never answers."""
    sock = stack.enter_context(socket.socket())
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return int(sock.getsockname()[1])


async def _report_ms(ports: dict[str, int]) -> float:
    checker = HealthChecker("bench", system=False, cache_ttl=0)
    client = redis.Redis(port=ports["redis"], socket_connect_timeout=10, socket_timeout=10)
    checker.register("redis", RedisCheck(client), critical=True, timeout=TIMEOUTS["redis"])
    checker.register(
        "postgres",
        PostgresCheck(f"postgresql://bench@127.0.0.1:{ports['postgres']}/x"),
        critical=True,
        timeout=TIMEOUTS["postgres"],
    )
    checker.register(
        "exchange",
        BinanceRestCheck(base_url=f"http://127.0.0.1:{ports['exchange']}"),
        timeout=TIMEOUTS["exchange"],
    )
    try:
        start = time.perf_counter()
        report = await checker.get_health_report(fresh=True)
        elapsed = (time.perf_counter() - start) * 1000
        if report.status.name == "HEALTHY":
            raise RuntimeError("the health report says HEALTHY with every dependency down")
        return elapsed
    finally:
        await checker.close()
        await client.aclose()


async def measure(ctx: Context) -> dict[str, float]:
    refused = {name: free_port() for name in TIMEOUTS}
    with ExitStack() as stack:
        hung = {name: _silent_listener(stack) for name in TIMEOUTS}
        return {"refused_ms": await _report_ms(refused), "hung_ms": await _report_ms(hung)}


def rows(stats: dict[str, Stat], ctx: Context) -> list[Row]:
    limits = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in TIMEOUTS.items())
    return [
        Row(
            SECTION,
            "connection refused (nothing listening)",
            "ms",
            stats["refused_ms"],
            target=Target("<=", LIMIT_MS),
            note=f"timeouts: {limits}",
        ),
        Row(
            SECTION,
            "hung (accepts, never answers)",
            "ms",
            stats["hung_ms"],
            target=Target("<=", LIMIT_MS),
            note=f"timeouts: {limits}",
        ),
    ]


if __name__ == "__main__":
    from run import main

    main(["--only", "health"])
