"""What a handler may want to know about the event it is handling, beyond the payload."""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from dataclasses import dataclass

from ..tracing import adopt_trace_id
from .envelope import Envelope

__all__ = ["EventInfo", "current_event"]


@dataclass(frozen=True, slots=True)
class EventInfo:
    """The envelope of the event being handled, minus its payload.

    Attributes:
        id: The event id ``publish`` returned; the same on every redelivery.
        type: The event type, such as ``market.data.update``.
        trace_id: The trace the event belongs to (also ``trace_context.get()``).
        time: When it was published (ISO-8601 UTC).
        source: The service that published it.
        headers: Extra string headers set by the publisher.
        attempt: 1 on the first attempt; one more for each retry after a failure and for
            each redelivery by the transport (after a crash or a stop).
        handler: The subscription name (the consumer group) handling it.
    """

    id: str
    type: str
    trace_id: str
    time: str
    source: str
    headers: Mapping[str, str]
    attempt: int
    handler: str


class _Handling:
    """What :func:`current_event` is made from, when a handler asks (most never do).

    Building the frozen :class:`EventInfo` for every event cost more than the rest of the
    bookkeeping of one attempt; this holds references only.
    """

    __slots__ = ("attempt", "envelope", "handler", "info")

    def __init__(self, envelope: Envelope, attempt: int, handler: str) -> None:
        self.envelope = envelope
        self.attempt = attempt
        self.handler = handler
        self.info: EventInfo | None = None


_current: contextvars.ContextVar[_Handling | None] = contextvars.ContextVar(
    "quantum_core_event", default=None
)


def current_event() -> EventInfo | None:
    """Return the event the current handler is handling, or None outside a handler."""
    handling = _current.get()
    if handling is None:
        return None
    if handling.info is None:
        envelope = handling.envelope
        handling.info = EventInfo(
            id=envelope.id,
            type=envelope.type,
            trace_id=envelope.trace_id,
            time=envelope.time,
            source=envelope.source,
            headers=envelope.headers,
            attempt=handling.attempt,
            handler=handling.handler,
        )
    return handling.info


def enter_event(envelope: Envelope, attempt: int, handler: str) -> None:
    """Make the event's trace and ``current_event()`` current, in the handler's own context.

    Run it (``Context.run``) in the fresh context each handler run gets (``dispatch.py``),
    so nothing of one event is left for the next.
    """
    adopt_trace_id(envelope.trace_id)  # validated by decode()
    _current.set(_Handling(envelope, attempt, handler))
