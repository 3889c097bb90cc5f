"""``quantum-core streams``: every stream under the prefix, its groups and their consumers.

What an operator asks first when events seem stuck: which topics exist, how long they are,
which service's group is behind (``lag``: not yet delivered; ``pending``: delivered but not
acknowledged), which consumer holds the pending entries and how long it has been silent.
Two pipelined round trips however many streams there are, read-only.
"""

from __future__ import annotations

import argparse
from typing import Any

from ._arguments import Commands
from ._common import Context, Output

__all__ = ["register"]


def register(
    commands: Commands,
    common: argparse.ArgumentParser,
) -> None:
    """Add the ``streams`` command, also called ``topics`` (the word of the other brokers)."""
    parser = commands.add_parser(
        "streams",
        aliases=["topics"],
        parents=[common],
        help="list streams, consumer groups and consumers (pending, lag, idle)",
        description=(
            "List every stream under the bus prefix: its length and dead letters, its "
            "consumer groups (pending: delivered, not acknowledged; lag: not yet delivered) "
            "and each group's consumers (pending, idle time)."
        ),
    )
    parser.set_defaults(handler=streams)


async def streams(args: argparse.Namespace, context: Context, output: Output) -> int:
    """Print the streams table, or a JSON list of streams."""
    found = await read_streams(context)
    if output.json_mode:
        output.json(found)
        return 0
    if not found:
        target = context.target
        output.line(f"no streams under prefix {target.prefix!r} on {target.address}")
        return 0
    rows: list[list[object]] = []
    for stream in found:
        rows.append([stream["event_type"], stream["length"], stream["dead_letters"]])
        if not stream["groups"]:
            rows.append(["", "", "", "  (no consumer group)"])
        for group in stream["groups"]:
            rows.append(["", "", "", f"  {group['name']}", group["pending"], group["lag"]])
            for consumer in group["consumers"]:
                idle = _duration(consumer["idle_ms"])
                rows.append(["", "", "", f"    {consumer['name']}", consumer["pending"], "", idle])
    output.table(
        ["EVENT TYPE", "LENGTH", "DEAD", "GROUP / CONSUMER", "PENDING", "LAG", "IDLE"],
        [row + [""] * (7 - len(row)) for row in rows],
    )
    return 0


async def read_streams(context: Context) -> list[dict[str, Any]]:
    """Every stream under the prefix, sorted by event type, with groups and consumers."""
    client = await context.redis()
    target = context.target
    names = target.names
    pattern = names.stream_pattern()  # on a cluster, SCAN runs on every master
    keys = sorted(
        {str(key) async for key in client.scan_iter(match=pattern, count=1000, _type="stream")}
    )
    async with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.xlen(key)
            pipe.xinfo_groups(key)
            pipe.xlen(target.dead_letter_key(names.topic_of(key)))
        replies = await pipe.execute(raise_on_error=False)
    found: list[dict[str, Any]] = []
    for index, key in enumerate(keys):
        length, groups, dead = replies[3 * index : 3 * index + 3]
        if isinstance(length, Exception) or isinstance(groups, Exception):
            continue  # deleted between SCAN and now
        found.append(
            {
                "event_type": names.topic_of(key),
                "stream": key,
                "length": length,
                "dead_letters": 0 if isinstance(dead, Exception) else dead,
                "groups": [_group(info) for info in groups],
            }
        )
    await _add_consumers(context, found)
    return found


def _group(info: dict[str, Any]) -> dict[str, Any]:
    lag = info.get("lag")
    return {
        "name": str(info.get("name")),
        "pending": int(info.get("pending") or 0),
        "lag": None if lag is None else int(lag),  # None: Redis cannot tell (before 7.0)
        "last_delivered_id": info.get("last-delivered-id"),
        "consumers": [],
    }


async def _add_consumers(context: Context, found: list[dict[str, Any]]) -> None:
    groups = [(stream["stream"], group) for stream in found for group in stream["groups"]]
    if not groups:
        return
    client = await context.redis()
    async with client.pipeline(transaction=False) as pipe:
        for key, group in groups:
            pipe.xinfo_consumers(key, group["name"])
        replies = await pipe.execute(raise_on_error=False)
    for (_, group), consumers in zip(groups, replies, strict=True):
        if isinstance(consumers, Exception):
            continue
        group["consumers"] = [
            {
                "name": str(info.get("name")),
                "pending": int(info.get("pending") or 0),
                "idle_ms": int(info.get("idle") or 0),
            }
            for info in consumers
        ]


def _duration(milliseconds: int) -> str:
    seconds = milliseconds / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
