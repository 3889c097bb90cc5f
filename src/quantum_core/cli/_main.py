"""The command line: options, dispatch, and the one place where failures become exit codes.

Exit codes: 0 success; 1 an operational failure (the broker unreachable, an unknown event type
or dead-letter id, no policy stored, a purge not confirmed); 2 a usage error (a bad option,
argument, mode or URL). ``health`` exits with the report's verdict: 0 HEALTHY, 1 DEGRADED,
3 UNHEALTHY. Every error is one line on stderr, its secrets masked.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, NoReturn, TextIO, cast

from redis.exceptions import RedisError

from .._version import DISTRIBUTION, __version__
from ..errors import QuantumCoreError
from ..health._secrets import Scrubber, dsn_secrets
from ..logs import configure_logging, get_logger, logging_restored
from ..policy import DEFAULT_KEY_PREFIX
from . import _asyncapi, _dlq, _health, _outbox, _policy, _run, _streams
from ._arguments import seconds_option
from ._common import (
    CLI_SERVICE,
    DEFAULT_PREFIX,
    DEFAULT_URL,
    EXIT_FAILED,
    EXIT_USAGE,
    CliError,
    Context,
    Output,
    UsageError,
    resolve_target,
)

__all__ = ["build_parser", "main"]

Handler = Callable[[argparse.Namespace, Context, Output], Awaitable[int]]

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_EXIT_INTERRUPTED = 130
_log = get_logger("quantum_core.cli")

_EPILOG = f"""\
The bus's broker comes from --url (redis://, redis+cluster://, nats://, amqp://, kafka://),
else the REDIS_URL environment variable, else {DEFAULT_URL}; a ?prefix= in the URL sets the
bus prefix unless --prefix is given. The policy commands use the Redis of --policy-url
(default: --url when it is a Redis, else REDIS_URL). Options may also follow the command
(quantum-core topics --json).

exit codes: 0 success; 1 operational failure (broker unreachable, unknown event type or
dead-letter id, no policy stored); 2 usage error (bad option, argument, mode or URL).
health: 0 HEALTHY, 1 DEGRADED, 3 UNHEALTHY."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are exceptions: one line, and no exit in-process."""

    def error(self, message: str) -> NoReturn:
        # "argument --limit: --limit must be ...": our checks name the option already
        message = re.sub(r"^argument (\S+): (?=\1 )", "", message)
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _common_options() -> argparse.ArgumentParser:
    """The options every command takes, before or after its name.

    Their defaults are SUPPRESS so that a subcommand's parser never overwrites a value given
    before the command with its default; :func:`_option` supplies the defaults.
    """
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("connection and output")
    group.add_argument(
        "--url",
        default=argparse.SUPPRESS,
        help="the bus's broker: a Redis, Redis Cluster, NATS, RabbitMQ or Kafka URL "
        f"(default: $REDIS_URL, else {DEFAULT_URL})",
    )
    group.add_argument(
        "--prefix",
        default=argparse.SUPPRESS,
        help=f"the bus's key prefix (default: the URL's ?prefix=, else {DEFAULT_PREFIX})",
    )
    group.add_argument(
        "--policy-url",
        default=argparse.SUPPRESS,
        help="the Redis of the risk policy, for `policy` (default: --url when it is a Redis, "
        f"else $REDIS_URL, else {DEFAULT_URL})",
    )
    group.add_argument(
        "--policy-prefix",
        default=argparse.SUPPRESS,
        help=f"the policy store's key prefix (default {DEFAULT_KEY_PREFIX})",
    )
    group.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON for scripts"
    )
    group.add_argument(
        "--timeout",
        type=seconds_option("--timeout", most=300),
        default=argparse.SUPPRESS,
        help="seconds to connect and to wait for a reply (default 2)",
    )
    group.add_argument(
        "--log-level",
        type=str.upper,
        choices=_LOG_LEVELS,
        default=argparse.SUPPRESS,
        help="quantum_core's own log lines, on stderr, from this level (default ERROR)",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    """The ``quantum-core`` parser, with every command."""
    common = _common_options()
    parser = _Parser(
        prog="quantum-core",
        description="Operate a quantum_core deployment: streams, dead letters, policy, health.",
        epilog=_EPILOG,
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{DISTRIBUTION} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (_streams, _dlq, _policy, _health, _outbox, _run, _asyncapi):
        module.register(commands, common)
    return parser


def _option(args: argparse.Namespace, name: str, default: Any) -> Any:
    return getattr(args, name, default)


def main(argv: list[str] | None = None) -> int:
    """Run ``quantum-core`` with ``argv`` (the process's arguments if None); return the exit code.

    Usable in-process (tests, other tools): it never calls ``sys.exit`` and puts the
    previous logging configuration back when it returns. The console script exits with
    the returned code.
    """
    scrubber = Scrubber()
    scrubber.add(dsn_secrets(os.environ.get("REDIS_URL")))
    output = Output(scrubber)
    try:
        args = build_parser().parse_args(argv)
    except UsageError as error:
        output.error(str(error))
        return EXIT_USAGE
    except SystemExit as done:  # --help and --version print, then exit
        return done.code if isinstance(done.code, int) else 0
    url = _option(args, "url", None) or os.environ.get("REDIS_URL") or DEFAULT_URL
    policy_url = _option(args, "policy_url", None)
    for secret_bearing in (url, policy_url, _option(args, "postgres", None)):
        scrubber.add(dsn_secrets(secret_bearing))
    output.json_mode = _option(args, "json", False)
    handler: Handler = args.handler
    with _library_logs_on_stderr(_option(args, "log_level", "ERROR")):
        try:
            target = resolve_target(
                url,
                prefix=_option(args, "prefix", None),
                policy_prefix=_option(args, "policy_prefix", DEFAULT_KEY_PREFIX),
                timeout=_option(args, "timeout", 2.0),
            )
            context = Context(target, policy_url)
            return asyncio.run(_with_context(handler, args, context, output))
        except CliError as error:
            output.error(str(error))
            return error.exit_code
        except (QuantumCoreError, RedisError, OSError) as error:
            output.error(str(error) or type(error).__name__)
            return EXIT_FAILED
        except KeyboardInterrupt:
            output.error("interrupted")
            return _EXIT_INTERRUPTED
        except Exception as error:  # a bug: one line; --log-level DEBUG logs the traceback
            _log.debug("cli_failed", exc_info=True)
            output.error(f"unexpected {type(error).__name__}: {error}")
            return EXIT_FAILED


async def _with_context(
    handler: Handler, args: argparse.Namespace, context: Context, output: Output
) -> int:
    try:
        return await handler(args, context, output)
    finally:
        await context.aclose()


class _CurrentStderr:
    """Write to whatever ``sys.stderr`` is at the time: test runners swap it."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


@contextlib.contextmanager
def _library_logs_on_stderr(level: str) -> Iterator[None]:
    """Send quantum_core's log lines to stderr while a command runs, then restore logging.

    stdout carries the command's output (a table, JSON a script parses), so log lines must
    not land there, where they go by default. Only quantum_core's own lines: a broker
    client's (aiormq's "error when creating transport") would repeat the command's one-line
    error, unless ``--log-level DEBUG`` asks for everything. The previous configuration
    comes back afterwards, so calling :func:`main` in-process changes nothing for the caller.
    """
    stream = cast(TextIO, _CurrentStderr())
    root = logging.getLogger()
    with logging_restored():
        others = list(root.handlers)
        configure_logging(CLI_SERVICE, level, json_output=False, stream=stream)
        if level != "DEBUG":  # a broker client's own errors repeat ours, in its words
            for handler in root.handlers:
                if handler not in others:
                    handler.addFilter(logging.Filter("quantum_core"))
        yield
