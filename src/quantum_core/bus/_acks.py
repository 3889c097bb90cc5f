"""Acknowledgements of one consumer, sent in batches while its handlers go on.

A handler's task hands its event over and finishes: it does not wait for the ack's round
trip, so its concurrency slot is free at once, and the acks of every handler that finished
meanwhile share one call to ``Subscription.ack``. At most one call is in flight; what comes
during it goes in the next. An event is still acknowledged only after its handler returned
(it is handed over then).

An ack the broker refuses is tried again, with backoff (``_outage.py``), until it goes:
dropped, it would leave a handled event pending in a live consumer, kept there (and fresh)
until the process stops, then handled again elsewhere. Only a transport's
``DeliveryGoneError`` (the deliveries are no longer this consumer's) ends the tries.
``flush()``, at ``stop()``, tries what is queued once more and gives up within the time it
is given: those events stay pending, for another consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars

from ..errors import DeliveryGoneError
from ..logs import get_logger
from ._outage import Outage
from .transport import Delivery, Subscription

__all__ = ["AckBatcher"]

_log = get_logger("quantum_core.bus")
_MAX_BATCH = 1000  # XACK ids (or broker acks) per call


class AckBatcher:
    """Queue deliveries for acknowledgement; send them in batches, one batch at a time."""

    def __init__(self, subscription: Subscription, handler: str) -> None:
        self._subscription = subscription
        self._handler = handler
        self._queued: list[Delivery] = []
        self._sender: asyncio.Task[None] | None = None
        self._stopping = False
        self._stopped = asyncio.Event()  # cuts a backoff wait short

    def add(self, delivery: Delivery) -> None:
        """Acknowledge ``delivery`` soon, with whatever else is handed over meanwhile."""
        self._queued.append(delivery)
        if self._sender is None:
            self._start_sender()

    async def flush(self, timeout: float) -> None:
        """Send what is queued, trying once more what failed; give up after ``timeout`` s.

        What is given up stays pending on the broker, for another consumer.
        """
        self._stopping = True
        self._stopped.set()
        sender = self._sender
        if self._queued and (sender is None or sender.done()):
            # None, or cancelled before its first step (asyncio.run's shutdown does that).
            sender = self._start_sender()
        if sender is not None and not sender.done():
            await asyncio.wait({sender}, timeout=timeout)
            if not sender.done():  # a broker that does not answer: not waited for
                sender.cancel()
                await asyncio.wait({sender}, timeout=0.1)  # a cancel-safe ack ends at once
        if self._queued:
            _log.warning(
                "event_acks_given_up",
                handler=self._handler,
                events=len(self._queued),
                left="pending on the broker, delivered again to a consumer of the group",
            )
            self._queued.clear()

    def _start_sender(self) -> asyncio.Task[None]:
        # A context of its own: the sender's log lines carry no one handler's trace.
        sender = self._sender = asyncio.get_running_loop().create_task(
            self._send(), context=contextvars.Context()
        )
        return sender

    async def _send(self) -> None:
        outage: Outage | None = None  # made on the first failure: most senders never fail
        try:
            while self._queued:
                batch = self._queued[:_MAX_BATCH]
                try:
                    await self._subscription.ack(batch)
                except DeliveryGoneError as exc:  # nothing left to ack: they come again
                    _log.warning(
                        "event_acks_lost",
                        handler=self._handler,
                        events=len(batch),
                        error=str(exc),
                        then="delivered again, to this consumer or another one of the group",
                    )
                except Exception as exc:  # tried again: dropped, they would stay stuck
                    if self._stopping:  # this was the last try
                        return
                    if outage is None:
                        outage = Outage(
                            "event_ack", recovered="event_ack_recovered", handler=self._handler
                        )
                    delay = outage.failed(exc, events=len(batch))
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(delay):
                            await self._stopped.wait()
                    continue
                del self._queued[: len(batch)]
                if outage is not None:
                    outage.ended()
                    outage = None
        finally:
            self._sender = None
