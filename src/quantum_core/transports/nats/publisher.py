"""Publishing to JetStream and awaiting every message's PubAck, many in flight at once."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Sequence
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

from ...errors import TransportError

__all__ = ["AckedPublisher"]


class AckedPublisher:
    """Publish to JetStream and wait for every message's PubAck, many in flight at once.

    One wildcard reply subscription serves every publish of the connection: a batch of 100
    is 100 PUBs written in one go and 100 acknowledgements awaited together, which is what
    nats-py's ``publish_async`` does, without its per-message semaphore task.
    """

    def __init__(self, client: Client, timeout: float) -> None:
        self._client = client
        self._timeout = timeout
        self._inbox = client.new_inbox()
        self._tokens = itertools.count(1)
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._subscription: Any = None

    async def start(self) -> None:
        """Subscribe to the reply subjects."""
        self._subscription = await self._client.subscribe(f"{self._inbox}.*", cb=self._on_reply)

    async def stop(self) -> None:
        """Unsubscribe; publishes still waiting fail."""
        subscription, self._subscription = self._subscription, None
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(TransportError("the NATS transport was closed"))
        self._waiting.clear()
        if subscription is not None and not self._client.is_closed:
            with contextlib.suppress(nats.errors.Error):  # the connection went away meanwhile
                await subscription.unsubscribe()

    async def publish(
        self,
        subject: str,
        messages: Sequence[bytes],
        headers: dict[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """Publish ``messages`` and return their PubAcks, once every one came back.

        Raises ``nats.js.errors.NoStreamResponseError`` when no stream takes the subject,
        ``nats.js.errors.APIError`` when the stream refused one, and ``TimeoutError``.
        """
        if len(messages) == 1:  # nats-py's own request: one round trip, no extra task hop
            try:
                reply = await self._client.request(
                    subject, messages[0], timeout=self._timeout, headers=headers
                )
            except nats.errors.NoRespondersError:
                raise nats.js.errors.NoStreamResponseError() from None
            except nats.errors.TimeoutError:
                raise TimeoutError from None
            return [_pub_ack(reply.data)]
        loop = asyncio.get_running_loop()
        tokens: list[str] = []
        futures: list[asyncio.Future[dict[str, Any]]] = []
        try:
            # The writes too: with nats-py's buffer full, a publish waits for the socket.
            async with asyncio.timeout(self._timeout):
                for data in messages:
                    token = str(next(self._tokens))
                    future: asyncio.Future[dict[str, Any]] = loop.create_future()
                    self._waiting[token] = future
                    tokens.append(token)
                    futures.append(future)
                    await self._client.publish(
                        subject, data, reply=f"{self._inbox}.{token}", headers=headers
                    )
                return await asyncio.gather(*futures)
        finally:
            for token in tokens:
                self._waiting.pop(token, None)
            for future in futures:  # an error no caller reads is no error to report
                if not future.done():
                    future.cancel()
                elif not future.cancelled():
                    future.exception()

    async def _on_reply(self, msg: Msg) -> None:
        token = msg.subject[len(self._inbox) + 1 :]
        future = self._waiting.pop(token, None)
        if future is None or future.done():
            return
        if msg.headers and msg.headers.get("Status") == "503":
            future.set_exception(nats.js.errors.NoStreamResponseError())
            return
        try:
            future.set_result(_pub_ack(msg.data))
        except Exception as exc:  # an error the stream sent back, or an unreadable reply
            future.set_exception(exc)


def _pub_ack(data: bytes) -> dict[str, Any]:
    """A PubAck read from its JSON; the stream's error raised as nats-py's APIError."""
    try:
        reply = json.loads(data)
    except ValueError:
        raise TransportError(f"JetStream sent an unreadable ack: {data[:200]!r}") from None
    if not isinstance(reply, dict):
        raise TransportError(f"JetStream sent an unreadable ack: {data[:200]!r}")
    if "error" in reply:
        nats.js.errors.APIError.from_error(reply["error"])  # raises the error it builds
    return reply
