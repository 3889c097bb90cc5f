"""XADD for many concurrent publishers: one pipeline per moment instead of one per call.

A publish that finds nothing in flight sends its own XADDs at once, on its own task, as
raw redis-py would: one publisher awaiting one event at a time pays nothing extra. Publishes
that come while a send is in flight queue up, and the next send carries all of them in one
pipeline (at most one send is in flight), so a hundred tasks publishing at once share round
trips instead of each taking a pooled connection of its own (and running out of them).

Each caller returns only once its own entries are stored, and gets the error of its own
entries only (a pipeline's replies are per command). A caller cancelled while still queued
is dropped from the queue, unsent; one cancelled while its batch is in flight cannot take
it back, and the batch goes on for the others. A caller's entries are never split across
sends, and a task's next publish starts after its previous one returned, so every task's
events are stored in the order it published them.

The XADDs are sent by ``wire.py`` (packed by us and parsed at once, not by
redis-py's pipeline, which cost more per event than everything else publishing does).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from redis.exceptions import RedisError

from ...errors import TransportError
from .wire import Wire

__all__ = ["RedisPublisher"]

_MAX_PIPELINE = 1000  # XADDs per queued send; a larger publish_many goes alone


class _Queued:
    __slots__ = ("done", "key", "messages")

    def __init__(self, key: str, messages: Sequence[bytes], done: asyncio.Future[None]) -> None:
        self.key = key
        self.messages = messages
        self.done = done


class RedisPublisher:
    """XADD messages to streams, coalescing concurrent callers into pipelines."""

    def __init__(self, wire: Wire, field: bytes, trim_args: Callable[[], list[bytes]]) -> None:
        self._wire = wire
        self._field = field
        self._trim_args = trim_args
        self._busy = False  # a send is in flight: newcomers queue
        self._queue: deque[_Queued] = deque()
        self._sender: asyncio.Task[None] | None = None

    async def publish(self, key: str, messages: Sequence[bytes]) -> None:
        """Store ``messages`` on the stream ``key`` in order; return once all are stored."""
        if not self._busy:
            self._busy = True
            try:
                await self._send_own(key, messages)
            finally:
                self._send_queued_or_rest()
            return
        done = asyncio.get_running_loop().create_future()
        self._queue.append(_Queued(key, messages, done))
        await done  # cancelled: the future is cancelled too, and the sender skips it

    async def _send_own(self, key: str, messages: Sequence[bytes]) -> None:
        try:
            replies = await self._wire.xadds(((key, messages),), self._trim_args(), self._field)
        except RedisError as exc:
            raise TransportError(f"could not publish to Redis stream {key!r}: {exc}") from exc
        error = _first_error(replies)
        if error is not None:
            raise TransportError(f"could not publish to Redis stream {key!r}: {error}")

    def _send_queued_or_rest(self) -> None:
        if not self._queue:
            self._busy = False
        elif self._sender is None:
            # A context of its own: the queued callers' traces are theirs, not the sender's.
            self._sender = asyncio.get_running_loop().create_task(
                self._send_queued(), context=contextvars.Context()
            )

    async def _send_queued(self) -> None:
        try:
            while self._queue:
                batch = self._next_batch()
                if batch:
                    await self._send_batch(batch)
        finally:
            for queued in self._queue:  # left only if this task was cancelled (loop closing)
                _fail(queued, f"not sent to Redis stream {queued.key!r}: publishing stopped")
            self._queue.clear()
            self._sender = None
            self._busy = False

    def _next_batch(self) -> list[_Queued]:
        """Take queued callers, oldest first, up to a pipeline's worth (always at least one)."""
        batch: list[_Queued] = []
        size = 0
        while self._queue:
            queued = self._queue[0]
            if batch and size + len(queued.messages) > _MAX_PIPELINE:
                break
            self._queue.popleft()
            if not queued.done.cancelled():  # its caller gave up before it was sent
                batch.append(queued)
                size += len(queued.messages)
        return batch

    async def _send_batch(self, batch: list[_Queued]) -> None:
        batches = [(queued.key, queued.messages) for queued in batch]
        try:
            replies = await self._wire.xadds(batches, self._trim_args(), self._field)
        except RedisError as exc:
            for queued in batch:
                _fail(queued, f"could not publish to Redis stream {queued.key!r}: {exc}")
            return
        except BaseException:  # cancelled: no caller may think its entries were stored
            for queued in batch:
                _fail(queued, f"publishing to Redis stream {queued.key!r} was interrupted")
            raise
        start = 0
        for queued in batch:
            end = start + len(queued.messages)
            error = _first_error(replies[start:end])
            start = end
            if error is not None:
                _fail(queued, f"could not publish to Redis stream {queued.key!r}: {error}")
            elif not queued.done.done():
                queued.done.set_result(None)


def _first_error(replies: list[Any]) -> Exception | None:
    return next((reply for reply in replies if isinstance(reply, Exception)), None)


def _fail(queued: _Queued, message: str) -> None:
    if not queued.done.done():
        queued.done.set_exception(TransportError(message))
