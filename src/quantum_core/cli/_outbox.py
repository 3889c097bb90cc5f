"""``quantum-core outbox status``: the backlog of a PostgreSQL outbox, and whether it moves.

What an operator asks when events seem late: how many committed events wait, how old the
oldest is, whether a relay holds the table's lock, and when the cursor last moved. The DSN's
password is never printed: the target shows as ``host:port/database``, and the password is
scrubbed from every line, errors included.
"""

from __future__ import annotations

import argparse
from urllib.parse import urlsplit

from ..health._secrets import dsn_secrets
from ..outbox import Outbox
from ..outbox.schema import DEFAULT_TABLE, check_table
from ._arguments import Commands
from ._common import CliError, Context, Output

__all__ = ["register"]


def register(commands: Commands, common: argparse.ArgumentParser) -> None:
    """Add ``outbox status``."""
    outbox = commands.add_parser(
        "outbox",
        parents=[common],
        help="the transactional outbox on PostgreSQL: backlog and relay",
        description="The transactional outbox on PostgreSQL (see docs/outbox.md).",
    )
    actions = outbox.add_subparsers(dest="action", metavar="ACTION", required=True)
    status = actions.add_parser(
        "status",
        parents=[common],
        help="events waiting, the oldest's age, whether a relay is active",
        description="Show the outbox's backlog, what it keeps, and whether a relay is active.",
    )
    status.add_argument(
        "--dsn",
        required=True,
        help="postgresql://user:password@host:5432/db (the password is never printed)",
    )
    status.add_argument(
        "--table", type=_table, default=DEFAULT_TABLE, help=f"default {DEFAULT_TABLE}"
    )
    status.set_defaults(handler=show_status)


def _table(value: str) -> str:
    try:
        return check_table(value, "--table")
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


async def show_status(args: argparse.Namespace, context: Context, output: Output) -> int:
    """Print the status as a table (or JSON); exit 1 when PostgreSQL or the table is missing."""
    output.scrubber.add(dsn_secrets(args.dsn))
    where = _address(args.dsn)
    outbox = Outbox(args.dsn, args.table, connect_timeout=context.target.timeout)
    try:
        status = await outbox.status()
    except Exception as error:
        raise _failure(error, where, args.table) from None
    if output.json_mode:
        output.json({"postgres": where, **status.to_dict()})
        return 0
    oldest = status.oldest_unsent_seconds
    output.table(
        ["FIELD", "VALUE"],
        [
            ["postgres", where],
            ["table", status.table],
            ["backlog", status.backlog],
            ["oldest unsent", None if oldest is None else f"{oldest:.1f} s"],
            ["relay active", "yes" if status.relay_active else "no"],
            ["last advance", f"{status.last_advance_seconds:.1f} s ago"],
            ["sent (total)", status.sent_total],
            ["sent (kept)", status.sent_kept],
        ],
    )
    return 0


def _address(dsn: str) -> str:
    """``host:port/database`` of a DSN: what may be shown of it."""
    try:
        parts = urlsplit(dsn)
        return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or '/'}"
    except ValueError:
        return "the --dsn given"


def _failure(error: Exception, where: str, table: str) -> CliError:
    name = type(error).__name__
    if name == "UndefinedTableError":
        return CliError(
            f"no outbox table {table!r} at {where}: check --table, or run `await "
            "Outbox(...).install()` first"
        )
    text = str(error).rstrip(". ") or name
    return CliError(f"cannot read the outbox at {where}: {text}; check --dsn and the server")
