"""Dead letters: events set aside after their last attempt, and what one can do with them.

A dead letter is one JSON record in the topic's dead-letter place (on Redis, the stream
``{prefix}:dead:{event type}``), shared by every service subscribed to the topic::

    {"service": ..., "handler": ..., "event_type": ..., "event_id": ..., "trace_id": ...,
     "attempts": 5, "error_type": "ValueError", "error": "...", "traceback": "...",
     "failed_at": "<ISO-8601 UTC>", "original": "<the entry exactly as it was published>"}

Replaying one publishes the original envelope again (same event id, trace id, time and
source) with one header added, :data:`REPLAY_FOR`, naming the consumer group that failed:
only that group handles it, every other group acknowledges it unseen. Without it a replay
would run again in every service that already handled the event. A replay claims the dead
letter first (it deletes it), so two replays of one letter publish it once.
"""

from __future__ import annotations

import dataclasses
import traceback
from dataclasses import dataclass
from typing import Any

import pydantic_core

from ..errors import TransportError
from ..logs import get_logger
from .abilities import DeadLetterRestore, dead_letter_store
from .envelope import Envelope, decode, encode, publish_time
from .transport import Transport

__all__ = [
    "REPLAY_FOR",
    "DeadLetter",
    "dead_letter_record",
    "describe_error",
    "parse_dead_letter",
]

REPLAY_FOR = "x-quantum-replay-for"
"""Header of a replayed event: the consumer group (``service:handler``) it is replayed for."""

_log = get_logger("quantum_core.bus")
_TRACEBACK_FRAMES = 5
_TRACEBACK_CHARS = 4000


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One event set aside, with why.

    Attributes:
        id: The dead letter's own id, for :meth:`EventBus.replay_dead_letter`.
        service: The service whose handler gave up.
        handler: The subscription name (``service:handler`` is the consumer group).
        event_type: The topic the event was published on.
        event_id: The event's id; None when the entry was not a readable envelope.
        trace_id: The event's trace id; None when the entry was not a readable envelope.
        attempts: The number of the last attempt (counting redeliveries).
        error_type: The class name of the last error, such as ``ValueError``.
        error: The last error's message.
        traceback: The innermost frames of the last error's traceback.
        failed_at: When it was set aside (ISO-8601 UTC).
        original: The entry exactly as it was published (bytes that are not UTF-8
            backslash-escaped).
    """

    id: str
    service: str
    handler: str
    event_type: str
    event_id: str | None
    trace_id: str | None
    attempts: int
    error_type: str
    error: str
    traceback: str
    failed_at: str
    original: str


def dead_letter_record(
    *,
    service: str,
    handler: str,
    event_type: str,
    envelope: Envelope | None,
    data: bytes,
    attempts: int,
    error: BaseException,
) -> bytes:
    """The JSON record stored for an event set aside after ``attempts`` attempts."""
    trace = "".join(traceback.format_exception(error, limit=-_TRACEBACK_FRAMES))
    if len(trace) > _TRACEBACK_CHARS:
        trace = "...\n" + trace[-_TRACEBACK_CHARS:]
    record = {
        "service": service,
        "handler": handler,
        "event_type": event_type,
        "event_id": envelope.id if envelope else None,
        "trace_id": envelope.trace_id if envelope else None,
        "attempts": attempts,
        "error_type": type(error).__name__,
        "error": describe_error(error),
        "traceback": trace,
        "failed_at": publish_time(),
        "original": data.decode("utf-8", errors="backslashreplace"),
    }
    return pydantic_core.to_json(record)


def describe_error(error: BaseException) -> str:
    """``str(error)``; never fails, for an error whose ``__str__`` raises has a story too.

    Falls back to ``repr(error)``, then to the type's name.
    """
    try:
        return str(error)
    except Exception as exc:  # describing an error must not raise another
        why = f"its str() raised {type(exc).__name__}"
    try:
        return f"{error!r} ({why})"
    except Exception:  # nor may its repr
        return f"<{type(error).__name__}: {why}, and so did its repr()>"


def parse_dead_letter(letter_id: str, record: bytes, topic: str) -> DeadLetter:
    """Read a stored record; one that is not ours still comes back, marked unreadable."""
    try:
        document: Any = pydantic_core.from_json(record)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        document = {
            "error_type": "UnreadableDeadLetter",
            "error": "the dead-letter record is not a JSON object",
            "original": record.decode("utf-8", errors="backslashreplace"),
        }

    def text(key: str, default: str = "") -> str:
        value = document.get(key)
        return value if isinstance(value, str) else default

    attempts = document.get("attempts")
    return DeadLetter(
        id=letter_id,
        service=text("service"),
        handler=text("handler"),
        event_type=text("event_type", topic),
        event_id=text("event_id") or None,
        trace_id=text("trace_id") or None,
        attempts=attempts if isinstance(attempts, int) and not isinstance(attempts, bool) else 0,
        error_type=text("error_type"),
        error=text("error"),
        traceback=text("traceback"),
        failed_at=text("failed_at"),
        original=text("original"),
    )


async def read_dead_letters(
    transport: Transport, topic: str, limit: int, after: str | None
) -> list[DeadLetter]:
    """Up to ``limit`` dead letters of ``topic``, oldest first, after the id ``after``."""
    store = dead_letter_store(transport, doing="give its dead letters back")
    extra = 0 if after is None else 1  # the transport's start is inclusive
    found = await store.read_dead_letters(topic, limit + extra, start=after)
    if after is not None and found and found[0][0] == after:
        found = found[1:]
    return [parse_dead_letter(letter_id, record, topic) for letter_id, record in found[:limit]]


async def replay_dead_letter(transport: Transport, topic: str, letter_id: str) -> str:
    """Publish the dead letter's original envelope again, for its group; once.

    Deleting the dead letter is the claim: of two replays of one letter, one deletes it
    and publishes, the other finds it gone (``LookupError``) and publishes nothing. A
    publish that fails puts the record back (under a new id) before the error goes on. A
    crash between the delete and the publish loses the dead letter: one round trip's
    window. A transport that cannot store a record again is replayed the old way
    (publish, then delete), where two replays may both publish.
    """
    store = dead_letter_store(transport, doing="give its dead letters back")
    found = await store.read_dead_letters(topic, 1, start=letter_id)
    if not found or found[0][0] != letter_id:
        raise LookupError(
            f"no dead letter {letter_id!r} for {topic!r}; list them with "
            f"`await bus.dead_letters({topic!r})`"
        )
    record = found[0][1]
    letter = parse_dead_letter(letter_id, record, topic)
    try:
        envelope = decode(letter.original)
    except ValueError as exc:
        raise ValueError(
            f"dead letter {letter_id!r} of {topic!r} holds an entry that is not an event "
            f"envelope ({exc}); it cannot be replayed, only purged"
        ) from None
    headers = dict(envelope.headers)
    if letter.service and letter.handler:
        headers[REPLAY_FOR] = f"{letter.service}:{letter.handler}"
    data = encode(dataclasses.replace(envelope, headers=headers))
    if not isinstance(transport, DeadLetterRestore):
        await transport.publish(topic, (data,))  # a crash between the two replays twice
        await store.delete_dead_letters(topic, (letter_id,))
        return envelope.id
    if not await store.delete_dead_letters(topic, (letter_id,)):
        raise LookupError(
            f"dead letter {letter_id!r} of {topic!r} was replayed or purged meanwhile"
        )
    try:
        await transport.publish(topic, (data,))
    except BaseException as error:  # cancelled too: the claim must not lose it
        await _put_back(transport, topic, letter_id, record, error)
        raise
    return envelope.id


async def _put_back(
    transport: DeadLetterRestore, topic: str, letter_id: str, record: bytes, error: BaseException
) -> None:
    """Store a claimed dead letter again after its replay failed; log it whole if that fails."""
    try:
        await transport.restore_dead_letter(topic, record)
    except Exception as again:
        _log.error(
            "dead_letter_lost",
            event_type=topic,
            dead_letter_id=letter_id,
            replay_error=repr(error),
            restore_error=repr(again),
            record=record.decode("utf-8", errors="backslashreplace"),
        )
        raise TransportError(
            f"replaying dead letter {letter_id!r} of {topic!r} failed ({error}) and it could "
            f"not be stored again ({again}); its record is in the log line dead_letter_lost"
        ) from again
