"""``quantum-core topics`` (or ``streams``): every event type, its groups and how far behind.

What an operator asks first when events seem stuck: which topics exist, how many events
they keep, which service's group is behind (``lag``: not yet delivered; ``pending``:
delivered but not acknowledged) and, on Redis, which consumer holds the pending entries and
how long it has been silent. Every broker answers through its transport's ``list_topics``
(:class:`~quantum_core.bus.abilities.TopicLister`); ``-`` marks what a broker cannot tell.
Read-only.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from ..bus.abilities import TopicSummary, topic_lister
from ._arguments import Commands
from ._common import CliError, Context, Output

__all__ = ["read_topics", "register"]


def register(
    commands: Commands,
    common: argparse.ArgumentParser,
) -> None:
    """Add the ``streams`` command, also called ``topics`` (the word of the other brokers)."""
    parser = commands.add_parser(
        "streams",
        aliases=["topics"],
        parents=[common],
        help="list event types, consumer groups and consumers (pending, lag, idle)",
        description=(
            "List every event type under the bus prefix: the events its topic keeps and its "
            "dead letters, its consumer groups (pending: delivered, not acknowledged; lag: "
            "not yet delivered) and, on Redis, each group's consumers (pending, idle time). "
            "'-' marks what the broker cannot tell."
        ),
    )
    parser.set_defaults(handler=streams)


async def streams(args: argparse.Namespace, context: Context, output: Output) -> int:
    """Print the topics table, or a JSON list of topics."""
    found = await read_topics(context)
    if output.json_mode:
        output.json([_as_json(context, topic) for topic in found])
        return 0
    if not found:
        target = context.target
        output.line(f"no event types under prefix {target.prefix!r} on {target.address}")
        return 0
    rows: list[list[object]] = []
    for topic in found:
        rows.append([topic.event_type, topic.length, topic.dead_letters])
        if not topic.groups:
            rows.append(["", "", "", "  (no consumer group)"])
        for group in topic.groups:
            rows.append(["", "", "", f"  {group.name}", group.pending, group.lag])
            for consumer in group.consumers:
                idle = None if consumer.idle_ms is None else _duration(consumer.idle_ms)
                rows.append(["", "", "", f"    {consumer.name}", consumer.pending, "", idle])
    output.table(
        ["EVENT TYPE", "LENGTH", "DEAD", "GROUP / CONSUMER", "PENDING", "LAG", "IDLE"],
        [row + [""] * (7 - len(row)) for row in rows],
    )
    return 0


async def read_topics(context: Context) -> list[TopicSummary]:
    """Every topic under the prefix, sorted by event type, from the broker's transport."""
    bus = await context.bus()
    try:
        lister = topic_lister(bus.transport)
    except NotImplementedError as error:  # a transport of someone else's, without the ability
        raise CliError(str(error)) from None
    return list(await lister.list_topics())


def _as_json(context: Context, topic: TopicSummary) -> dict[str, Any]:
    """A topic as JSON; on Redis with its stream's key, as before other brokers were listed."""
    shown = dataclasses.asdict(topic)
    if context.target.scheme == "redis":
        shown = {
            "event_type": topic.event_type,
            "stream": context.target.stream_key(topic.event_type),
            **shown,
        }
    return shown


def _duration(milliseconds: int) -> str:
    seconds = milliseconds / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
