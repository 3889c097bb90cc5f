"""Group commit: many callers' small writes become one round trip, one at a time.

Each caller waits until the write that carried its items is stored, so nothing is reported
done early; while one write is in flight the next callers' items gather for the one after.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["Coalescer"]

T = TypeVar("T")


class Coalescer(Generic[T]):
    """Send items through ``send`` in batches, with at most one batch in flight."""

    def __init__(self, send: Callable[[list[T]], Awaitable[None]]) -> None:
        self._send = send
        self._items: list[T] = []
        self._batch_done: asyncio.Future[None] | None = None
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, items: list[T]) -> None:
        """Queue ``items`` and return once the batch that carried them is sent."""
        self._items.extend(items)
        done = self._batch_done
        if done is None:
            done = self._batch_done = asyncio.get_running_loop().create_future()
            # A caller that gives up must not leave an error unread.
            done.add_done_callback(lambda f: f.cancelled() or f.exception())
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        await asyncio.shield(done)

    async def _flush(self) -> None:
        while self._items:
            items, self._items = self._items, []
            done, self._batch_done = self._batch_done, None
            assert done is not None  # noqa: S101 - set by the submit that queued the items
            try:
                await self._send(items)
            except Exception as exc:  # every caller of this batch gets the error
                done.set_exception(exc)
            else:
                done.set_result(None)
