"""``quantum-core run pkg.module:app [--workers N]``: run a service until SIGTERM or SIGINT.

What every service's ``main()`` did by hand: import the App (or EventBus), start it (a broker
that does not answer, or a policy that cannot load, is one clear line and exit 1), log one
ready line, and on SIGTERM or SIGINT stop taking events, drain the handlers in flight within
the bus's ``stop_timeout`` and exit 0. ``--workers N`` runs N replica processes of it (they
share the work, as replicas of a service do) and starts again one that dies.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Iterator

from .._backoff import backoff
from ..app import App
from ..bus.dead_letters import describe_error
from ..logs import configure_logging, get_logger
from ._app_target import load_app
from ._arguments import Commands, count_option
from ._common import CliError, Context, Output

__all__ = ["register"]

_log = get_logger("quantum_core.run")
_KILL_AFTER = 5.0  # seconds past the app's stop_timeout before a worker that hangs is killed
_STEADY = 10.0  # seconds a worker must live for its next death to restart it at once


def register(commands: Commands, common: argparse.ArgumentParser) -> None:
    """Add ``run``."""
    run = commands.add_parser(
        "run",
        parents=[common],
        help="run a service (an App or EventBus) until SIGTERM or SIGINT",
        description=(
            "Import pkg.module:obj (an App, an EventBus, or a function returning one), start "
            "it, log one ready line; on SIGTERM or SIGINT stop taking events, drain the "
            "handlers in flight and exit 0."
        ),
    )
    run.add_argument("app", metavar="pkg.module:obj", help="such as myservice.main:app")
    run.add_argument(
        "--workers",
        type=count_option("--workers", most=64),
        default=None,
        help="run N replica processes and start again one that dies",
    )
    run.add_argument(
        "--log-format",
        choices=("json", "console"),
        default="json",
        help="the service's log lines on stdout (default json)",
    )
    run.set_defaults(handler=run_app)


async def run_app(args: argparse.Namespace, context: Context, output: Output) -> int:
    """Run the app (or ``--workers`` replicas of it) until asked to stop; return 0."""
    app = await load_app(args.app)
    configure_logging(
        app.name,
        getattr(args, "log_level", "INFO"),
        json_output=args.log_format == "json",
    )
    with _stop_signals() as stop:
        if args.workers is not None:
            return await _supervise(app, args, stop)
        try:
            await app.start()
        except Exception as error:
            why = describe_error(error) or type(error).__name__
            raise CliError(f"cannot start {app.name!r}: {why}") from None
        try:
            _log.info(
                "app_ready",
                app=args.app,
                pid=os.getpid(),
                subscriptions=[f"{r.event_type} -> {r.name}" for r in app.bus.routes],
            )
            await stop.wait()
        finally:
            await app.stop()
    _log.info("app_stopped", app=args.app, pid=os.getpid())
    return 0


@contextlib.contextmanager
def _stop_signals() -> Iterator[asyncio.Event]:
    """An event set by SIGTERM or SIGINT while the block runs."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    try:
        yield stop
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)


async def _supervise(app: App, args: argparse.Namespace, stop: asyncio.Event) -> int:
    """Keep ``--workers`` replicas running until ``stop``; then SIGTERM them, and wait."""
    command = [sys.executable, "-m", "quantum_core.cli", "run", args.app]
    command += ["--log-level", getattr(args, "log_level", "INFO")]
    command += ["--log-format", args.log_format]
    workers: dict[int, asyncio.subprocess.Process] = {}
    started: dict[int, float] = {}
    deaths: dict[int, int] = {}
    loop = asyncio.get_running_loop()

    async def spawn(number: int) -> None:
        env = {**os.environ, "QUANTUM_CORE_WORKER": str(number)}
        workers[number] = await asyncio.create_subprocess_exec(*command, env=env)
        started[number] = loop.time()
        _log.info("worker_started", worker=number, pid=workers[number].pid)

    for number in range(args.workers):
        await spawn(number)
    _log.info("app_ready", app=args.app, pid=os.getpid(), workers=args.workers)
    stopping = asyncio.create_task(stop.wait())
    try:
        while not stop.is_set():
            waits = {asyncio.create_task(p.wait()): n for n, p in workers.items()}
            done, _ = await asyncio.wait({*waits, stopping}, return_when=asyncio.FIRST_COMPLETED)
            for task in waits:
                task.cancel()
            for task in done & waits.keys():
                number = waits[task]
                steady = loop.time() - started[number] >= _STEADY
                deaths[number] = 1 if steady else deaths.get(number, 0) + 1
                delay = backoff(deaths[number], 0.5, 30.0)
                _log.error(
                    "worker_died",
                    worker=number,
                    exit_code=workers[number].returncode,
                    restart_in=round(delay, 2),
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(stopping), delay)
                if not stop.is_set():
                    await spawn(number)
    finally:
        stopping.cancel()
        codes = await _stop_workers(workers, app.bus.stop_timeout + _KILL_AFTER)
    _log.info("workers_stopped", exit_codes=codes)
    return 0 if all(code == 0 for code in codes.values()) else 1


async def _stop_workers(
    workers: dict[int, asyncio.subprocess.Process], timeout: float
) -> dict[int, int | None]:
    for process in workers.values():
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
    waiting = [asyncio.create_task(p.wait()) for p in workers.values()]
    if waiting:
        _, late = await asyncio.wait(waiting, timeout=timeout)
        if late:
            for process in workers.values():
                if process.returncode is None:
                    _log.error("worker_killed", pid=process.pid, after_seconds=timeout)
                    process.kill()
            await asyncio.wait(waiting)
    return {number: p.returncode for number, p in workers.items()}
