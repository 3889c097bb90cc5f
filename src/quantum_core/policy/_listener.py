"""How a process hears about policy changes made by the others: pub/sub plus a periodic check.

The listener holds a connection of its own, subscribed to the changes channel. Each message
means "reload". A connection can fail loudly (the server went away) or silently (a network
path that drops every packet: no RST, nothing to read, nothing that ever fails). Nothing the
listener waits for is unbounded: when the channel has been quiet for the heartbeat interval
(``poll_interval``, at most 5 s) it PINGs, and an answer that does not come within the
backend's ``timeout`` fails the connection; subscribing, the PING itself and closing are
bounded by ``timeout`` too, and TCP keepalive (see ``redis_backend.py``) makes the kernel
fail a dead idle socket as well. After any failure it reconnects with the library's jittered
backoff (50 ms doubling up to 2 s; the listeners of every process that lost one Redis do
not come back at the same instant), on a new connection, which a frozen path lets through,
and, once subscribed again, asks for one reload, since messages published while it was
away are lost. Independently, a periodic call every ``poll_interval`` catches whatever a
notification could still miss.

The watch is ready once Redis confirmed the first SUBSCRIBE (the reply is read, not just
the command sent): :meth:`RedisWatch.started` returns then, or once that first attempt
failed, so ``store.initialize()`` returns with the store listening, and a change made right
after it is heard.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from redis.exceptions import RedisError

from .._backoff import backoff
from ..logs import get_logger
from ._polling import call_every
from .backends import ChangeCallback, PolicyWatch

if TYPE_CHECKING:
    import redis.asyncio as redis
    from redis.asyncio.client import PubSub

    from .redis_backend import RedisPolicyBackend

__all__ = ["RedisWatch"]

_log = get_logger("quantum_core.policy")
_FIRST_RETRY: Final = 0.05
_MAX_RETRY: Final = 2.0
_HEARTBEAT_MAX: Final = 5.0  # seconds of silence before a PING, whatever the poll interval


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
        self._first_attempt_over = asyncio.Event()
        self._tasks = (
            asyncio.create_task(self._listen(), name="quantum_core policy listener"),
            asyncio.create_task(
                call_every(backend.poll_interval, on_change), name="quantum_core policy check"
            ),
        )

    async def started(self) -> None:
        """Return once the first SUBSCRIBE is confirmed, or once that first attempt failed."""
        await self._first_attempt_over.wait()

    async def close(self) -> None:
        """Cancel both tasks and wait for them; the listener closes its connection."""
        self._forget(self)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _listen(self) -> None:
        client = self._backend.new_client(listener=True)
        failures = 0
        try:
            while True:
                self._subscribed = False
                if failures and self._backend.cluster:  # another node of the cluster
                    with contextlib.suppress(Exception):
                        await client.aclose()
                    client = self._backend.new_client(listener=True)
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
                self._first_attempt_over.set()
                if self._subscribed:  # a session that got going starts the backoff again
                    failures = 0
                failures += 1
                await asyncio.sleep(backoff(failures, _FIRST_RETRY, _MAX_RETRY))
        finally:
            self._first_attempt_over.set()  # whatever ended the listener, nobody waits on it
            with contextlib.suppress(Exception):
                await client.aclose()

    async def _session(self, client: redis.Redis) -> None:
        """Subscribe, ask for one reload, then turn every message into a reload."""
        backend = self._backend
        timeout = backend.timeout
        heartbeat = min(backend.poll_interval, _HEARTBEAT_MAX)
        pubsub = client.pubsub()  # the SUBSCRIBE's reply is read: it says we are listening
        try:
            async with asyncio.timeout(timeout):
                await pubsub.subscribe(backend.channel)
                await _subscription_confirmed(pubsub)
            self._subscribed = True
            self._first_attempt_over.set()
            if self._interrupted:
                self._interrupted = False
                _log.info("policy_notifications_resumed", redis=backend.address)
            self._on_change()  # whatever was published while we were not subscribed
            loop = asyncio.get_running_loop()
            last_heard = loop.time()
            answer_due: float | None = None  # when the answer to our PING must have come
            while True:
                wait = heartbeat if answer_due is None else max(0.0, answer_due - loop.time())
                async with asyncio.timeout(wait + timeout):  # get_message may write a PING
                    message = await pubsub.get_message(timeout=wait)
                now = loop.time()
                if message is not None:
                    last_heard, answer_due = now, None
                    if message.get("type") == "message":
                        self._on_change()
                    continue
                if answer_due is not None and now >= answer_due:
                    raise TimeoutError(
                        f"the pub/sub connection answered no PING within {timeout:g} s "
                        f"(quiet for {now - last_heard:.1f} s)"
                    )
                if answer_due is None and now - last_heard >= heartbeat:
                    async with asyncio.timeout(timeout):
                        await pubsub.ping()
                    answer_due = loop.time() + timeout
        finally:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(timeout):
                    await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore] # redis-py leaves it bare


async def _subscription_confirmed(pubsub: PubSub) -> None:
    """Read until Redis confirms the SUBSCRIBE: from then on, every PUBLISH reaches us.

    ``subscribe()`` only sends the command; a change published before Redis ran it would
    not be heard. Redis answers the SUBSCRIBE before any message of the channel.
    """
    while True:
        reply = await pubsub.get_message(timeout=None)
        if reply is not None and reply.get("type") == "subscribe":
            return
