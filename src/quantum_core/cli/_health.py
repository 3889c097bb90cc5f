"""``quantum-core health``: Redis (and optionally PostgreSQL) checked by the HealthChecker.

The exit code is the verdict, for scripts and cron jobs: 0 HEALTHY, 1 DEGRADED,
3 UNHEALTHY (2 stays the usage error of every command). A server that is down is a report,
not an error: the command prints UNHEALTHY and why, within ``--timeout`` (the Redis client
does not retry). The host's CPU, memory and disk are not checked: they would describe the
operator's machine, not a service.
"""

from __future__ import annotations

import argparse

from ..health import HealthChecker, HealthStatus, PostgresCheck, RedisCheck
from ._arguments import Commands
from ._common import CLI_SERVICE, EXIT_FAILED, EXIT_OK, EXIT_UNHEALTHY, Context, Output, open_client

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
        help="check Redis (and PostgreSQL); exit 0 HEALTHY, 1 DEGRADED, 3 UNHEALTHY",
        description=(
            "Check Redis, and PostgreSQL with --postgres, and print the report. "
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
    client = open_client(target)
    checker = HealthChecker(CLI_SERVICE, default_timeout=target.timeout, cache_ttl=0, system=False)
    try:
        checker.register("redis", RedisCheck(client), critical=True)
        if args.postgres:
            checker.register("postgres", PostgresCheck(args.postgres), critical=True)
        report = await checker.get_health_report(fresh=True)
    finally:
        await checker.close()
        await client.aclose()
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
