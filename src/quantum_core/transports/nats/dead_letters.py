"""Dead letters on NATS JetStream: a stream of their own, a subject per topic.

A dead letter's id is its stream sequence. Reading is a ``next_by_subj`` message get per
letter, deleting a message delete (a replay's claim) or a purge filtered on the topic's
subject. See ``transport.py`` for where they live on the server.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

from ...errors import TransportError
from .connection import STREAM_NOT_FOUND
from .names import Names

__all__ = ["delete_dead_letters", "read_dead_letters", "sequence_id"]


async def read_dead_letters(
    js: JetStreamContext, names: Names, topic: str, limit: int, first: int
) -> list[tuple[str, bytes]]:
    """Up to ``limit`` (sequence, record) of the topic's dead letters, from ``first`` on.

    One ``next_by_subj`` message get per letter: dead letters are few and read rarely.
    """
    subject = names.dead_subject(topic)
    letters: list[tuple[str, bytes]] = []
    sequence = first
    while len(letters) < limit:
        try:
            raw = await js.get_msg(names.dead_stream, seq=sequence, subject=subject, next=True)
        except nats.js.errors.NotFoundError:  # no more, or no dead letters at all
            break
        if raw.seq is None:
            break
        letters.append((str(raw.seq), raw.data or b""))
        sequence = raw.seq + 1
    return letters


async def delete_dead_letters(
    client: Client,
    js: JetStreamContext,
    names: Names,
    topic: str,
    sequences: Sequence[int] | None,
    timeout: float,
) -> int:
    """Delete these sequences of the topic's dead letters (a purge for None); count them.

    A sequence holding another topic's dead letter is left alone: it is not this topic's.
    """
    stream, subject = names.dead_stream, names.dead_subject(topic)
    if sequences is None:  # nats-py's purge_stream does not say how many went
        reply = await client.request(
            f"$JS.API.STREAM.PURGE.{stream}",
            json.dumps({"filter": subject}).encode(),
            timeout=timeout,
        )
        answer = json.loads(reply.data)
        if "error" in answer:
            if answer["error"].get("err_code") == STREAM_NOT_FOUND:  # no dead letters ever
                return 0
            raise TransportError(f"purging {stream!r} failed: {answer['error']}")
        return int(answer.get("purged", 0))
    deleted = 0
    for sequence in sequences:
        try:
            raw = await js.get_msg(stream, seq=sequence)
            if raw.subject == subject:
                deleted += bool(await js.delete_msg(stream, sequence))
        except nats.js.errors.APIError:  # gone already (or never was)
            continue
    return deleted


def sequence_id(text: object) -> int:
    """A dead letter's id (its stream sequence, a decimal string) as a number."""
    if isinstance(text, str) and text.isascii() and text.isdigit() and len(text) <= 20:
        number = int(text)
        if 1 <= number < 2**64:
            return number
    raise ValueError(
        f"not a dead-letter id of the NATS JetStream transport (a stream sequence such as "
        f"'42'): {text!r}"
    )
