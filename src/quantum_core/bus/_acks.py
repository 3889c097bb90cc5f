"""Acknowledgements of one consumer, sent in batches while its handlers go on.

A handler's task hands its event over and finishes: it does not wait for the ack's round
trip, so its concurrency slot is free at once, and the acks of every handler that finished
meanwhile share one call to ``Subscription.ack``. At most one call is in flight; what comes
during it goes in the next. An event is still acknowledged only after its handler returned
(it is handed over then), and an ack that fails leaves the events pending, to be delivered
again, as before. ``flush()`` waits until everything handed over was sent, for ``stop()``.
"""

from __future__ import annotations

import asyncio
import contextvars

from ..logs import get_logger
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

    def add(self, delivery: Delivery) -> None:
        """Acknowledge ``delivery`` soon, with whatever else is handed over meanwhile."""
        self._queued.append(delivery)
        if self._sender is None:
            # A context of its own: the sender's log lines carry no one handler's trace.
            self._sender = asyncio.get_running_loop().create_task(
                self._send(), context=contextvars.Context()
            )

    async def flush(self) -> None:
        """Return once every delivery handed over so far was sent (or failed and was logged)."""
        while self._sender is not None:
            await asyncio.wait({self._sender})

    async def _send(self) -> None:
        try:
            while self._queued:
                batch = self._queued[:_MAX_BATCH]
                del self._queued[:_MAX_BATCH]
                try:
                    await self._subscription.ack(batch)
                except Exception:  # still pending: they will be delivered again
                    _log.exception("event_ack_failed", handler=self._handler, events=len(batch))
        finally:
            self._sender = None
