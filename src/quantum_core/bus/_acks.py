"""Acknowledgements of one consumer, sent in batches while its handlers go on.

A handler's task hands its event over and finishes: it does not wait for the ack's round
trip, so its concurrency slot is free at once, and the acks of every handler that finished
meanwhile share one call to ``Subscription.ack`` (the library's one batcher,
``quantum_core._batching``: at most one call in flight; what comes during it goes in the
next). An event is still acknowledged only after its handler returned (it is handed over
then).

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

from .._batching import Batcher
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
        self._batcher: Batcher[Delivery] = Batcher(self._ack, max_batch=_MAX_BATCH)
        self._given_up = 0
        self._stopping = False
        self._stopped = asyncio.Event()  # cuts a backoff wait short
        self.add = self._batcher.add
        """Acknowledge a delivery soon, with whatever else is handed over meanwhile."""

    async def flush(self, timeout: float) -> None:
        """Send what is queued, trying once more what failed; give up after ``timeout`` s.

        What is given up stays pending on the broker, for another consumer.
        """
        self._stopping = True
        self._stopped.set()
        dropped = await self._batcher.drain(timeout)
        left, self._given_up = self._given_up + dropped, 0
        if left:
            _log.warning(
                "event_acks_given_up",
                handler=self._handler,
                events=left,
                left="pending on the broker, delivered again to a consumer of the group",
            )

    async def _ack(self, batch: list[Delivery]) -> None:
        """Acknowledge one batch, trying again (with backoff) until it goes or we stop."""
        outage: Outage | None = None  # made on the first failure: most batches never fail
        while True:
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
                    self._given_up += len(batch)
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
            if outage is not None:
                outage.ended()
            return
