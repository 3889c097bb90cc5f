"""``quantum-core health``: the bus's broker (and PostgreSQL) checked by the HealthChecker.

Redis is checked by :class:`~quantum_core.health.RedisCheck` (cluster state too); NATS,
RabbitMQ and Kafka by :class:`~quantum_core.health.EventBusCheck` on a bus of the CLI's own,
which pings the broker through its transport.

The exit code is the verdict, for scripts and cron jobs: 0 HEALTHY, 1 DEGRADED,
3 UNHEALTHY (2 stays the usage error of every command). A server that is down is a report,
not an error: the command prints UNHEALTHY and why, within ``--timeout`` (the Redis client
does not retry). The host's CPU, memory and disk are not checked: they would describe the
operator's machine, not a service.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..bus import EventBus
from ..health import EventBusCheck, HealthChecker, HealthStatus, PostgresCheck, RedisCheck
from ._arguments import Commands
from ._common import (
    CLI_SERVICE,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNHEALTHY,
    Context,
    Output,
    broker_transport,
    open_client,
)

_CHECK_NAMES = {"nats": "nats", "amqp": "rabbitmq", "kafka": "kafka"}
_EXIT_CODES = {
    HealthStatus.HEALTHY: EXIT_OK,
    HealthStatus.DEGRADED: EXIT_FAILED,
    HealthStatus.UNHEALTHY: EXIT_UNHEALTHY,
}

__all__ = ["register"]


def register(
    commands: Commands,
    common: argparse.ArgumentParser,
) -> None:
    """Add the ``health`` command."""
    parser = commands.add_parser(
        "health",
        parents=[common],
        help="check the broker (and PostgreSQL); exit 0 HEALTHY, 1 DEGRADED, 3 UNHEALTHY",
        description=(
            "Check the bus's broker (--url: Redis, NATS, RabbitMQ or Kafka), and PostgreSQL "
            "with --postgres, and print the report. "
            "Exit code: 0 HEALTHY, 1 DEGRADED, 3 UNHEALTHY (2: a usage error)."
        ),
    )
    parser.add_argument(
        "--postgres",
        metavar="DSN",
        help="also check PostgreSQL (postgresql://user:password@host:5432/db); its "
        "password is never printed",
    )
    parser.set_defaults(handler=health)


async def health(args: argparse.Namespace, context: Context, output: Output) -> int:
    """Run the checks once and print the report; the exit code is its severity."""
    target = context.target
    checker = HealthChecker(CLI_SERVICE, default_timeout=target.timeout, cache_ttl=0, system=False)
    client: Any = None
    bus: EventBus | None = None
    try:
        if target.scheme == "redis":
            client = open_client(target)
            checker.register("redis", RedisCheck(client), critical=True)
        else:
            bus = EventBus(broker_transport(target), service_name=CLI_SERVICE)
            checker.register(_CHECK_NAMES[target.scheme], EventBusCheck(bus), critical=True)
        if args.postgres:
            checker.register("postgres", PostgresCheck(args.postgres), critical=True)
        report = await checker.get_health_report(fresh=True)
    finally:
        await checker.close()
        if client is not None:
            await client.aclose()
        if bus is not None:
            await bus.transport.close()
    if output.json_mode:
        output.json(report.to_dict())
    else:
        output.line(f"{report.status.value} ({report.duration_ms:.1f} ms)")
        output.table(
            ["CHECK", "STATUS", "LATENCY", "CRITICAL", "ERROR"],
            [
                [
                    name,
                    result.status.value,
                    None if result.latency_ms is None else f"{result.latency_ms:.1f} ms",
                    "yes" if result.critical else "no",
                    result.error or "",
                ]
                for name, result in report.dependencies.items()
            ],
        )
    return _EXIT_CODES[report.status]
