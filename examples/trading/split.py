"""Run the trading flow as four processes, one per domain, on a broker every process reaches.

    python -m examples.trading.split --bus redis://127.0.0.1:6379/0

The launcher starts the ai_engine, risk_safety and execution roles (``quantum-core run
examples.trading.roles:<role>``, settings in ``QUANTUM_DEMO_*``), waits until each has
subscribed, then starts market_data.
It is the risk manager (it switches to DEFENSIVE half way through, as the single-process demo
does) and the monitor (a subscription to every event of the flow). When every tick's chain is
done it stops each role with SIGTERM, upstream first, checks that each drained and exited 0,
and prints the summary. Without ``prefix=`` in a Redis URL the run uses keys of its own,
deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import signal
import sys
from pathlib import Path

from quantum_core import (
    configure_logging,
    get_logger,
    initialize_event_bus,
    initialize_policy_store,
    shutdown_event_bus,
    shutdown_policy_store,
)

from .roles import RoleSettings
from .run import (
    CONSUMER_ROLES,
    ROLES,
    SERVICE_NAME,
    WAIT_SECONDS,
    FlowMonitor,
    delete_prefix,
    drive,
    policy_location,
    reset_policy,
    summary,
    with_own_prefix,
    write_decisions,
)

ROOT = Path(__file__).resolve().parents[2]
STOP_SECONDS = 30.0  # a role's bus waits 10 s for handlers in flight; this is the backstop

logger = get_logger("examples.trading.split", domain="demo")


class Roles:
    """The role processes, started and stopped in flow order."""

    def __init__(self, settings: RoleSettings, log_args: list[str]) -> None:
        self.settings = settings
        self.log_args = log_args
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self.exit_codes: dict[str, int | None] = {}

    async def start(self, role: str, **changes: object) -> None:
        """``quantum-core run examples.trading.roles:<role>``, told its settings by env."""
        settings = dataclasses.replace(self.settings, **changes)  # type: ignore[arg-type]
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "quantum_core.cli", "run", f"examples.trading.roles:{role}"),
            *self.log_args,
            cwd=ROOT,
            env={**os.environ, **settings.to_env()},
        )
        self.processes[role] = process
        logger.info("role_process_started", role=role, pid=process.pid)

    def died(self) -> str | None:
        """A role that exited before it was asked to, or None."""
        dead = {r: p.returncode for r, p in self.processes.items() if p.returncode is not None}
        if not dead:
            return None
        return ", ".join(f"role {r} exited with {code}" for r, code in dead.items())

    async def stop(self) -> None:
        """SIGTERM each role, upstream first, and wait for it to drain and exit."""
        for role in ROLES:
            process = self.processes.get(role)
            if process is None:
                continue
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), STOP_SECONDS)
            except TimeoutError:
                logger.error("role_did_not_stop", role=role, pid=process.pid)
                process.kill()
                await process.wait()
            self.exit_codes[role] = process.returncode

    def report(self) -> str:
        codes = ", ".join(f"{role} {code}" for role, code in self.exit_codes.items())
        return f"  roles           {codes or 'none started'} (exit codes after SIGTERM)"


async def launch(
    bus_url: str,
    ticks: int,
    settings: RoleSettings,
    log_args: list[str],
    decisions: str | None,
    policy: str | None,
) -> tuple[str, bool]:
    """Run the four roles once; return the summary and whether everything went right."""
    bus_url, own_prefix = with_own_prefix(bus_url)
    policy_url, key_prefix = policy_location(bus_url, policy)
    await initialize_policy_store(policy_url, key_prefix=key_prefix, snapshot_path=None)
    roles = Roles(dataclasses.replace(settings, bus=bus_url, policy=policy), log_args)
    monitor = FlowMonitor()
    error: Exception | None = None
    try:
        await reset_policy()  # before any role starts, so none of them sees another mode
        bus = await initialize_event_bus(bus_url, service_name=SERVICE_NAME)
        monitor.subscribe(bus)
        await bus.start()  # the monitor's groups exist before anything is published
        for role in CONSUMER_ROLES:
            await roles.start(role)
        await monitor.wait_until(
            lambda: monitor.not_ready(CONSUMER_ROLES), timeout=WAIT_SECONDS, failure=roles.died
        )
        await roles.start("market_data", ticks=ticks, hold_at=ticks // 2)
        await drive(monitor, ticks, failure=roles.died)
    except (TimeoutError, RuntimeError) as exc:
        error = exc
        logger.error("split_run_failed", error=str(exc))
    finally:
        await roles.stop()
        await shutdown_event_bus()
        await shutdown_policy_store()
        if own_prefix:
            await delete_prefix(bus_url, own_prefix)
    write_decisions(decisions, monitor)
    drained = all(code == 0 for code in roles.exit_codes.values())
    chains = monitor.complete_chains() == len(monitor.fills) > 0
    text = summary(bus_url, monitor) + "\n" + roles.report()
    if error is not None:
        text += f"\n  error           {error}"
    return text, error is None and drained and chains and len(roles.exit_codes) == len(ROLES)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--bus",
        default="redis://127.0.0.1:6379/0",
        help="a transport URL every process reaches (default redis://127.0.0.1:6379/0)",
    )
    parser.add_argument("--ticks", type=int, default=36, help="market ticks to publish")
    parser.add_argument("--seed", type=int, default=7, help="seed of the simulated feed")
    parser.add_argument("--interval", type=float, default=0.01, help="seconds between ticks")
    parser.add_argument(
        "--policy",
        help="the Redis URL where the roles share the risk policy (default: the bus's Redis)",
    )
    parser.add_argument("--decisions", help="write every tick's outcome here (JSON)")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--log-format", choices=("json", "console"), default="json")
    args = parser.parse_args(argv)
    if args.bus.startswith("memory:"):
        parser.error("memory:// lives inside one process; use python -m examples.trading.run")
    try:
        policy_location(args.bus, args.policy)
    except ValueError as error:
        parser.error(str(error))

    configure_logging(
        f"{SERVICE_NAME}.launcher", args.log_level, json_output=args.log_format == "json"
    )
    settings = RoleSettings(bus=args.bus, seed=args.seed, interval=args.interval)
    log_args = ["--log-level", args.log_level, "--log-format", args.log_format]
    with contextlib.suppress(KeyboardInterrupt):
        text, ok = asyncio.run(
            launch(args.bus, args.ticks, settings, log_args, args.decisions, args.policy)
        )
        print(text)
        sys.exit(0 if ok else 1)
    sys.exit(130)


if __name__ == "__main__":
    main()
