"""``quantum-core dlq``: list, show, replay and purge the dead letters of an event type.

Everything goes through :class:`~quantum_core.EventBus` (``dead_letters``,
``replay_dead_letter``, ``purge_dead_letters``), so the CLI does exactly what a program
would: a replay goes back to the one consumer group that gave up on the event. An event
type with neither a stream nor dead letters is refused as unknown rather than shown as
empty: it is most likely a typo or the wrong ``--prefix``.

What is printed of a dead letter, as a table or as JSON, is the same masked letter
(:func:`_shown`): secret-looking fields of the original event are masked field by field,
before printing. Masking the printed text alone missed them in JSON, where the original
event is an escaped string.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import re
import sys

from .._redaction import redact, redact_text
from ..bus import DeadLetter
from ..bus.abilities import dead_letter_store
from ..bus.dead_letters import parse_dead_letter
from ..bus.envelope import validate_event_type
from ._arguments import Commands, count_option
from ._common import CliError, Context, Output, UsageError, one_line
from ._streams import read_topics

__all__ = ["register"]

_ENTRY_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
_OFFSET_ID = re.compile(r"[0-9]{1,19}")  # on Kafka its offset, on NATS its sequence
_AMQP_ID = re.compile(r"[0-9]{20}-[0-9a-f]{8}")  # on RabbitMQ: a time and a random part


def register(
    commands: Commands,
    common: argparse.ArgumentParser,
) -> None:
    """Add ``dlq list|show|replay|purge``."""
    dlq = commands.add_parser(
        "dlq",
        parents=[common],
        help="list, show, replay or purge dead letters",
        description="Dead letters: events set aside after their handler's last attempt.",
    )
    actions = dlq.add_subparsers(dest="action", metavar="ACTION", required=True)

    def action(name: str, help_text: str, *, optional: bool = False) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, parents=[common], help=help_text, description=help_text)
        nargs = "?" if optional else None
        parser.add_argument("event_type", metavar="EVENT_TYPE", type=_event_type, nargs=nargs)
        return parser

    listing = action(
        "list",
        "list the dead letters of an event type, oldest first; without one, how many dead "
        "letters every event type has",
        optional=True,
    )
    listing.add_argument(
        "--limit", type=count_option("--limit"), default=20, help="at most N (default 20)"
    )
    listing.add_argument("--after", metavar="ID", type=_entry_id, help="the page after this id")
    listing.set_defaults(handler=list_letters)
    show = action("show", "show one dead letter: error, traceback, original event")
    show.add_argument("id", metavar="ID", type=_entry_id)
    show.set_defaults(handler=show_letter)
    replay = action("replay", "claim a dead letter and publish its event again (for its group)")
    replay.add_argument("id", metavar="ID", type=_entry_id)
    replay.set_defaults(handler=replay_letter)
    purge = action("purge", "delete every dead letter of an event type (of every service)")
    purge.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    purge.set_defaults(handler=purge_letters)


def _event_type(value: str) -> str:
    try:
        return validate_event_type(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _entry_id(value: str) -> str:
    if any(form.fullmatch(value) for form in (_ENTRY_ID, _OFFSET_ID, _AMQP_ID)):
        return value
    raise argparse.ArgumentTypeError(
        f"invalid dead-letter id {value!r}: expected a stream entry id such as "
        "'1700000000000-0' (a number such as '42' on Kafka and NATS, "
        "'01700000000000000000-1a2b3c4d' on RabbitMQ; `quantum-core dlq list EVENT_TYPE` "
        "shows them)"
    )


async def _known(context: Context, event_type: str) -> None:
    """Refuse an event type with neither a stream nor dead letters under the prefix."""
    target = context.target
    if target.scheme != "redis":  # one listing of the broker's topics tells
        if event_type not in {topic.event_type for topic in await read_topics(context)}:
            raise CliError(
                f"unknown event type {event_type!r}: no topic and no dead letters of it under "
                f"prefix {target.prefix!r} on {target.address}; `quantum-core topics` lists "
                "the event types (is --prefix right?)"
            )
        return
    client = await context.redis()
    keys = (target.stream_key(event_type), target.dead_letter_key(event_type))
    if not await client.exists(*keys):
        raise CliError(
            f"unknown event type {event_type!r}: no stream {keys[0]!r} and no dead letters "
            f"under prefix {target.prefix!r} on {target.address}; `quantum-core streams` "
            "lists the event types (is --prefix right?)"
        )


def _shown(letter: DeadLetter) -> DeadLetter:
    """``letter`` as the CLI prints it: secrets in its original event and error masked."""
    return dataclasses.replace(
        letter,
        original=_masked_original(letter.original),
        error=redact_text(letter.error),
        traceback=redact_text(letter.traceback),
    )


def _masked_original(original: str) -> str:
    """The original entry with secret-looking fields masked; unchanged when none are."""
    try:
        document = json.loads(original)
    except ValueError:  # not JSON (not our envelope): mask what the text shows
        return redact_text(original)
    masked = redact(document)
    if masked == document:
        return original
    return json.dumps(masked, ensure_ascii=False, separators=(",", ":"))


async def _letter(context: Context, event_type: str, letter_id: str) -> DeadLetter:
    await _known(context, event_type)
    bus = await context.bus()
    store = dead_letter_store(bus.transport, doing="give its dead letters back")
    try:
        found = await store.read_dead_letters(event_type, 1, start=letter_id)
    except ValueError as error:  # an id of another transport's kind
        raise UsageError(str(error)) from None
    if not found or found[0][0] != letter_id:
        raise CliError(
            f"no dead letter {letter_id!r} of {event_type!r}; "
            f"`quantum-core dlq list {event_type}` lists them"
        )
    return _shown(parse_dead_letter(letter_id, found[0][1], event_type))


async def list_letters(args: argparse.Namespace, context: Context, output: Output) -> int:
    """Print a table of dead letters, or a JSON list of them."""
    event_type: str | None = args.event_type
    if event_type is None:
        return await _count_letters(context, output)
    await _known(context, event_type)
    bus = await context.bus()
    letters = await bus.dead_letters(event_type, limit=args.limit, after=args.after)
    if output.json_mode:
        output.json([dataclasses.asdict(_shown(letter)) for letter in letters])
        return 0
    if not letters:
        output.line(f"no dead letters of {event_type!r}")
        return 0
    output.table(
        ["ID", "FAILED AT", "GROUP", "ATTEMPTS", "EVENT ID", "ERROR"],
        [
            [
                letter.id,
                letter.failed_at,
                f"{letter.service}:{letter.handler}",
                letter.attempts,
                letter.event_id,
                one_line(f"{letter.error_type}: {letter.error}", 60),
            ]
            for letter in letters
        ],
    )
    if len(letters) == args.limit:
        output.line(f"(more may follow: --after {letters[-1].id})")
    return 0


async def _count_letters(context: Context, output: Output) -> int:
    """Print how many dead letters every event type under the prefix has."""
    counts = [
        {"event_type": topic.event_type, "dead_letters": topic.dead_letters}
        for topic in await read_topics(context)
    ]
    if output.json_mode:
        output.json(counts)
    elif not counts:
        target = context.target
        output.line(f"no event types under prefix {target.prefix!r} on {target.address}")
    else:
        output.table(["EVENT TYPE", "DEAD"], [[c["event_type"], c["dead_letters"]] for c in counts])
    return 0


async def show_letter(args: argparse.Namespace, context: Context, output: Output) -> int:
    """Print one dead letter in full."""
    letter = await _letter(context, args.event_type, args.id)
    if output.json_mode:
        output.json(dataclasses.asdict(letter))
        return 0
    output.table(
        ["FIELD", "VALUE"],
        [
            ["id", letter.id],
            ["event type", letter.event_type],
            ["event id", letter.event_id],
            ["trace id", letter.trace_id],
            ["group", f"{letter.service}:{letter.handler}"],
            ["attempts", letter.attempts],
            ["failed at", letter.failed_at],
            ["error", one_line(f"{letter.error_type}: {letter.error}", 200)],
        ],
    )
    output.line()
    output.line("traceback:")
    for line in letter.traceback.rstrip().splitlines() or ["-"]:
        output.line(f"  {line}")
    output.line()
    output.line("original event:")
    for line in _pretty(letter.original).splitlines():
        output.line(f"  {line}")
    return 0


def _pretty(original: str) -> str:
    try:
        return json.dumps(json.loads(original), indent=2, ensure_ascii=False)
    except ValueError:
        return original


async def replay_letter(args: argparse.Namespace, context: Context, output: Output) -> int:
    """Claim the dead letter (delete it) and publish its event again, for its group."""
    event_type: str = args.event_type
    letter = await _letter(context, event_type, args.id)
    bus = await context.bus()
    try:
        event_id = await bus.replay_dead_letter(event_type, letter.id)
    except LookupError:  # replayed or purged by someone else since it was read
        raise CliError(f"dead letter {letter.id!r} of {event_type!r} is gone") from None
    except ValueError as error:  # not an envelope: nothing to replay
        raise CliError(str(error)) from None
    group = f"{letter.service}:{letter.handler}"
    if output.json_mode:
        output.json(
            {
                "event_type": event_type,
                "dead_letter_id": letter.id,
                "event_id": event_id,
                "group": group,
            }
        )
    else:
        output.line(
            f"replayed dead letter {letter.id} of {event_type!r} as event {event_id} "
            f"for group {group}"
        )
    return 0


async def purge_letters(args: argparse.Namespace, context: Context, output: Output) -> int:
    """Delete every dead letter of the event type, after confirmation."""
    event_type: str = args.event_type
    await _known(context, event_type)
    count = await _count(context, event_type)
    if count and not args.yes:
        question = (
            f"delete all {count} dead letter(s) of {event_type!r}, of every service, "
            f"on {context.target.address}? [y/N] "
        )
        if not _interactive():
            raise UsageError(
                f"dlq purge would delete {count} dead letter(s) of {event_type!r}: pass --yes "
                "to confirm (stdin is not a terminal, so there is no one to ask)"
            )
        if not await asyncio.to_thread(_confirm, question):
            output.note("not confirmed; nothing deleted")
            return 1
    purged = 0
    if count:
        purged = await (await context.bus()).purge_dead_letters(event_type)
    if output.json_mode:
        output.json({"event_type": event_type, "purged": purged})
    else:
        output.line(f"purged {purged} dead letter(s) of {event_type!r}")
    return 0


async def _count(context: Context, event_type: str) -> int:
    """How many dead letters the event type has (what a purge would delete)."""
    if context.target.scheme != "redis":
        store = dead_letter_store((await context.bus()).transport, doing="count dead letters")
        return len(await store.read_dead_letters(event_type, 10**9))
    client = await context.redis()
    return int(await client.xlen(context.target.dead_letter_key(event_type)))


def _interactive() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, ValueError, OSError):  # closed or replaced stdin
        return False


def _confirm(question: str) -> bool:
    sys.stderr.write(question)
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in {"y", "yes"}
