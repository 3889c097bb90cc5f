"""XADD for many concurrent publishers: one pipeline per moment instead of one per call.

A publish that finds nothing in flight sends its own XADDs at once, on its own task, as
raw redis-py would: one publisher awaiting one event at a time pays nothing extra. Publishes
that come while a send is in flight queue up, and the next send carries all of them in one
pipeline (at most one send is in flight), so a hundred tasks publishing at once share round
trips instead of each taking a pooled connection of its own (and running out of them).

Each caller returns only once its own entries are stored, and gets the error of its own
entries only (a pipeline's replies are per command). A caller cancelled while still queued
is dropped from the queue, unsent; one cancelled while its batch is in flight cannot take
it back, and the batch goes on for the others. The batching is the library's one batcher
(``quantum_core._batching``). A caller's entries are never split across
sends, and a task's next publish starts after its previous one returned, so every task's
events are stored in the order it published them.

The XADDs are sent by ``wire.py`` (packed by us and parsed at once, not by
redis-py's pipeline, which cost more per event than everything else publishing does).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from redis.exceptions import RedisError

from ..._batching import Batcher, Outcomes
from ...errors import TransportError
from .wire import Wire

__all__ = ["RedisPublisher"]

_MAX_PIPELINE = 1000  # XADDs per queued send; a larger publish_many goes alone

_Publish = tuple[str, Sequence[bytes]]  # a stream's key, the messages for it


class RedisPublisher:
    """XADD messages to streams, coalescing concurrent callers into pipelines."""

    def __init__(self, wire: Wire, field: bytes, trim_args: Callable[[], list[bytes]]) -> None:
        self._wire = wire
        self._field = field
        self._trim_args = trim_args
        self._batcher: Batcher[_Publish] = Batcher(
            self._send, max_batch=_MAX_PIPELINE, size=lambda publish: len(publish[1])
        )

    async def publish(self, key: str, messages: Sequence[bytes]) -> None:
        """Store ``messages`` on the stream ``key`` in order; return once all are stored."""
        await self._batcher.submit((key, messages))

    async def _send(self, batch: list[_Publish]) -> Outcomes:
        """One pipeline of XADDs; an error for each publish whose entries were not stored."""
        try:
            replies = await self._wire.xadds(batch, self._trim_args(), self._field)
        except RedisError as exc:
            return [_failed(key, exc) for key, _ in batch]
        if not any(isinstance(reply, Exception) for reply in replies):
            return None
        outcomes: list[BaseException | None] = []
        start = 0
        for key, messages in batch:
            end = start + len(messages)
            error = _first_error(replies[start:end])
            start = end
            outcomes.append(None if error is None else _failed(key, error))
        return outcomes


def _first_error(replies: list[Any]) -> Exception | None:
    return next((reply for reply in replies if isinstance(reply, Exception)), None)


def _failed(key: str, error: Exception) -> TransportError:
    failed = TransportError(f"could not publish to Redis stream {key!r}: {error}")
    failed.__cause__ = error
    return failed
