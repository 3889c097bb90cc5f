"""How a process hears about policy changes made by the others: pub/sub plus a periodic check.

The listener holds a connection of its own, subscribed to the changes channel. Each message
means "reload". A connection can fail loudly (the server went away) or silently (a dropped
route); the listener PINGs when the channel has been quiet for ``poll_interval`` and treats
three quiet intervals without an answer as a failure. After any failure it reconnects with
backoff and, once subscribed again, asks for one reload, since messages published while it
was away are lost. Independently, a periodic call every ``poll_interval`` catches whatever a
notification could still miss.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from redis.exceptions import RedisError

from ..logs import get_logger
from .backends import ChangeCallback, PolicyWatch, _call_every

if TYPE_CHECKING:
    import redis.asyncio as redis

    from .redis_backend import RedisPolicyBackend

__all__ = ["RedisWatch"]

_log = get_logger("quantum_core.policy")
_FIRST_RETRY: Final = 0.05
_MAX_RETRY: Final = 2.0
_QUIET_INTERVALS: Final = 3


class RedisWatch(PolicyWatch):
    """The listener and the periodic check of one store, started together, stopped together."""

    def __init__(
        self,
        backend: RedisPolicyBackend,
        on_change: ChangeCallback,
        *,
        forget: Callable[[PolicyWatch], None],
    ) -> None:
        self._backend = backend
        self._on_change = on_change
        self._forget = forget
        self._interrupted = False
        self._subscribed = False
        self._tasks = (
            asyncio.create_task(self._listen(), name="quantum_core policy listener"),
            asyncio.create_task(
                _call_every(backend.poll_interval, on_change), name="quantum_core policy check"
            ),
        )

    async def close(self) -> None:
        """Cancel both tasks and wait for them; the listener closes its connection."""
        self._forget(self)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _listen(self) -> None:
        client = self._backend.new_client(listener=True)
        delay = _FIRST_RETRY
        try:
            while True:
                self._subscribed = False
                try:
                    await self._session(client)
                except (RedisError, OSError, TimeoutError) as error:
                    if not self._interrupted:
                        self._interrupted = True
                        _log.warning(
                            "policy_notifications_interrupted",
                            redis=self._backend.address,
                            error=str(error),
                            retry="with backoff; the periodic check goes on meanwhile",
                        )
                if self._subscribed:  # a session that got going starts the backoff again
                    delay = _FIRST_RETRY
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MAX_RETRY)
        finally:
            with contextlib.suppress(Exception):
                await client.aclose()

    async def _session(self, client: redis.Redis) -> None:
        """Subscribe, ask for one reload, then turn every message into a reload."""
        backend = self._backend
        interval = backend.poll_interval
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            async with asyncio.timeout(backend.timeout):
                await pubsub.subscribe(backend.channel)
            self._subscribed = True
            if self._interrupted:
                self._interrupted = False
                _log.info("policy_notifications_resumed", redis=backend.address)
            self._on_change()  # whatever was published while we were not subscribed
            loop = asyncio.get_running_loop()
            last_heard = loop.time()
            pinged = False
            while True:
                message = await pubsub.get_message(timeout=interval)
                now = loop.time()
                if message is not None:
                    last_heard, pinged = now, False
                    if message.get("type") == "message":
                        self._on_change()
                    continue
                quiet = now - last_heard
                if quiet >= _QUIET_INTERVALS * interval:
                    raise TimeoutError(
                        f"the pub/sub connection answered nothing for {quiet:.1f} s, not even PING"
                    )
                if quiet >= interval and not pinged:
                    await pubsub.ping()
                    pinged = True
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore] # redis-py leaves it bare
