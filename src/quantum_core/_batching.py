"""Group commit: the items of many callers go out in batches, at most one batch in flight.

The one batcher of the library: the bus's acknowledgements, the Redis transport's XACKs and
handled-records, and its publishes all go through it. While a batch is in flight, what
comes meanwhile gathers for the next one, so a hundred concurrent callers share a few round
trips instead of each taking a connection. Items go out in the order they came, each once.

``submit`` waits for the batch that carried its item and raises that batch's error (or the
error ``send`` gave for that item alone); a caller that finds nothing in flight sends its own
item at once, on its own task, so a lone caller pays nothing for the batching. ``add`` hands
an item over without waiting (``send`` must then deal with failures itself). A caller
cancelled while its item is still queued takes the item out; once its batch is in flight,
the batch goes on for the others.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from .errors import TransportError

__all__ = ["Batcher", "Outcomes"]

T = TypeVar("T")

Outcomes = Sequence[BaseException | None] | None
"""What ``send`` returns: None when every item went, else one error (or None) per item."""

_Waiter = tuple[int, "asyncio.Future[None]"]  # an item's place in the queue, its caller's future


class Batcher(Generic[T]):
    """Send items through ``send`` in batches of at most ``max_batch`` (by ``size``), in order.

    ``send`` gets the items of one batch; raising fails them all with that error; it may
    instead return one error (or None) per item. An item larger than ``max_batch`` goes
    alone; a caller's item is never split.
    """

    def __init__(
        self,
        send: Callable[[list[T]], Awaitable[Outcomes]],
        *,
        max_batch: int = 1000,
        size: Callable[[T], int] | None = None,
    ) -> None:
        self._send = send
        self._max_batch = max_batch
        self._size = size
        # The queue: items, and the futures of the callers who wait (by the item's number:
        # ``_taken`` is the number of the first queued item). ``add`` only appends an item.
        self._items: list[T] = []
        self._waiters: deque[_Waiter] = deque()
        self._taken = 0
        self._own = False  # a caller is sending its own item: newcomers queue
        self._sender: asyncio.Task[None] | None = None
        self._dropped = 0  # items a cancelled sender did not send

    @property
    def idle(self) -> bool:
        """Nothing queued, nothing in flight."""
        return not (self._own or self._sender is not None or self._items)

    async def submit(self, item: T) -> None:
        """Send ``item`` with whatever else comes meanwhile; return once it went.

        Raises:
            Exception: the error of the batch that carried ``item`` (or of ``item`` alone).
        """
        if not self._own and self._sender is None:
            self._own = True
            try:
                outcomes = await self._send([item])
            finally:
                self._own = False
                if self._items:
                    self._start()
            if outcomes is not None and outcomes[0] is not None:
                raise outcomes[0]
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((self._taken + len(self._items), done))
        self._items.append(item)
        await done  # cancelled: the future is cancelled too, and the sender skips the item

    def add(self, item: T) -> None:
        """Send ``item`` soon, with whatever else comes meanwhile; do not wait for it."""
        self._items.append(item)
        if self._sender is None and not self._own:
            self._start()

    async def drain(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for what ``add`` queued to go; return how many did not.

        What is still queued or in flight then is dropped (its waiters get an error).
        """
        sender = self._sender
        if sender is not None and sender.cancelling() and not sender.done():
            # Cancelled (at shutdown) but not yet ended: let it end before looking. On Python
            # 3.12+ nothing else runs first (wait_for no longer starts a task of its own).
            await asyncio.wait({sender}, timeout=0.1)
            sender = self._sender
        if self._items and (sender is None or sender.done()):
            sender = self._start()  # none, or cancelled before its first step (at shutdown)
        if sender is not None and not sender.done():
            await asyncio.wait({sender}, timeout=timeout)
            if not sender.done():  # a broker that does not answer: not waited for
                sender.cancel()
                await asyncio.wait({sender}, timeout=0.1)  # a cancel-safe send ends at once
        dropped, self._dropped = self._dropped + self._drop_queue(), 0
        return dropped

    def _start(self) -> asyncio.Task[None]:
        # A context of its own: the sender's log lines carry no one caller's trace.
        sender = self._sender = asyncio.get_running_loop().create_task(
            self._run(), context=contextvars.Context()
        )
        return sender

    async def _run(self) -> None:
        batch: list[T] = []
        waiters: list[_Waiter] = []
        try:
            while self._items:
                batch, waiters = self._next_batch()
                if batch:
                    await self._send_batch(batch, waiters)
                batch, waiters = [], []
        except BaseException:  # cancelled: no caller may think its item went
            self._dropped += len(batch) + self._drop_queue()
            _fail(waiters)
            raise
        finally:
            self._sender = None

    def _next_batch(self) -> tuple[list[T], list[_Waiter]]:
        """Take queued items, oldest first, up to a batch's worth (at least one).

        Returns the items and the waiters among them, by their place in the batch.
        """
        items, size, most = self._items, self._size, self._max_batch
        if size is None:
            count = min(len(items), most)
        else:
            count, total = 0, 0
            for item in items:
                total += size(item)
                if count and total > most:
                    break
                count += 1
        batch = items[:count]
        del items[:count]
        start = self._taken
        self._taken += count
        if not self._waiters:  # only add()ed items: nothing to sort out
            return batch, []
        waiters = []
        while self._waiters and self._waiters[0][0] < start + count:
            number, done = self._waiters.popleft()
            waiters.append((number - start, done))
        if any(done.cancelled() for _, done in waiters):  # their callers gave up: unsent
            gone = {place for place, done in waiters if done.cancelled()}
            places = [place for place in range(count) if place not in gone]
            batch = [batch[place] for place in places]
            moved = {old: new for new, old in enumerate(places)}
            waiters = [(moved[place], done) for place, done in waiters if place not in gone]
        return batch, waiters

    async def _send_batch(self, batch: list[T], waiters: list[_Waiter]) -> None:
        try:
            outcomes = await self._send(batch)
        except Exception as exc:  # every caller of this batch gets the error
            for _, done in waiters:
                if not done.done():
                    done.set_exception(exc)
            return
        for place, done in waiters:
            if done.done():
                continue
            error = None if outcomes is None else outcomes[place]
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)

    def _drop_queue(self) -> int:
        """Drop what is queued, failing its waiters; return how many items that was."""
        dropped = len(self._items)
        self._items.clear()
        self._taken += dropped
        _fail(list(self._waiters))
        self._waiters.clear()
        return dropped


def _fail(waiters: list[_Waiter]) -> None:
    for _, done in waiters:
        if not done.done():
            done.set_exception(TransportError("not sent: sending stopped (shutting down)"))
