"""The NATS JetStream subscription: one replica pulling from its group's durable consumer.

See ``transport.py`` for the layout on the server and the delivery rules. What it shares
with its transport (the connection, streams and consumers) comes in a ``NatsState``
(``state.py``).

Messages arrive on an inbox of the subscription's own, into a buffer; ``fetch`` only sends
pull requests and takes from the buffer without awaiting in between, so a cancelled fetch
loses nothing (what arrives later waits in the buffer for the next fetch). Every message in
the buffer or in the bus's hands is *held*: kept alive with in-progress acks, and handed back
(NAK) when the subscription closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from ...bus.transport import Backlog, Delivery, Subscription
from ...errors import TransportError
from ...logs import get_logger
from .connection import is_not_found, status_of

if TYPE_CHECKING:
    from .state import NatsState

__all__ = ["NatsSubscription"]

_log = get_logger("quantum_core.bus.nats")
_NO_ANSWER_GRACE = 2.0  # seconds past a pull request's expiry before we stop waiting for it
_CONSUMER_GONE = "Consumer Deleted"
_GOODBYE_WAIT = 2  # seconds a closing subscription waits for each round trip to the server


class NatsSubscription(Subscription):
    """One replica of one group: pull requests, explicit acks, in-progress acks, NAK on close."""

    def __init__(
        self,
        state: NatsState,
        client: Client,
        js: JetStreamContext,
        topic: str,
        group: str,
        durable: str,
        ack_wait: float,
    ) -> None:
        self._state = state
        self._js = js
        self._client = client
        self._topic = topic
        self._group = group
        self._durable = durable
        self._ack_wait = ack_wait
        self._next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{state.names.stream}.{durable}"
        self._inbox = self._client.new_inbox()
        self._requests = itertools.count(1)
        self._request = ""  # the token of the pull request being waited for
        self._status: tuple[str, str] | None = None  # how it ended, once the server said so
        self._open_until = 0.0  # loop time a waiting pull request may live until, if unanswered
        self._ahead = 0  # batch of a no_wait request sent ahead, whose answer is not read yet
        self._buffer: deque[Msg] = deque()
        self._held: dict[int, Msg] = {}  # stream sequence -> message, until settled
        self._arrived = asyncio.Event()
        self._lost = False  # the consumer may be gone: check (and recreate) before pulling
        self._closed = False
        self._inbox_subscription: Any = None
        self._heartbeat: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Subscribe the inbox and start the keep-alive."""
        self._inbox_subscription = await self._client.subscribe(
            f"{self._inbox}.*", cb=self._on_message
        )
        self._heartbeat = asyncio.create_task(
            self._keep_alive(), name=f"keep-alive {self._durable}"
        )

    # -- receiving ------------------------------------------------------------------------

    async def _on_message(self, msg: Msg) -> None:
        status = status_of(msg)
        if status is None:
            if not msg.reply:  # not from JetStream: nothing to acknowledge, nothing to hold
                return
            if self._closed:  # arrived after close: hand it straight back
                await _quietly(msg.nak())
                return
            try:
                sequence = msg.metadata.sequence.stream
            except (ValueError, IndexError, nats.errors.Error):  # not a JetStream delivery
                return
            self._held[sequence] = msg
            self._buffer.append(msg)
            self._arrived.set()
            return
        if msg.subject.rpartition(".")[2] != self._request or status == "100":
            return  # a late word on an earlier request, or an idle heartbeat
        description = msg.headers.get("Description", "") if msg.headers else ""
        self._status = (status, str(description))
        self._arrived.set()

    async def fetch(self, max_count: int, timeout: float) -> Sequence[Delivery]:
        """Take what is buffered; else pull what is there; else wait for one message.

        When a fetch empties the buffer, it sends the next ``no_wait`` request before it
        returns, so the next batch travels while the bus handles this one.
        """
        if not self._buffer and not self._closed:
            if not self._client.is_connected:
                raise TransportError(
                    f"NATS connection lost while reading {self._durable!r}; reconnecting"
                )
            ahead, self._ahead = self._ahead, 0
            if ahead:
                await self._answered(ahead, timeout, wait=False)
            else:
                if self._lost:
                    await self._recover()
                await self._send_pull(max_count, timeout, wait=False)
                await self._answered(max_count, timeout, wait=False)
            if not self._buffer and not self._closed:
                await self._send_pull(1, timeout, wait=True)
                await self._answered(1, timeout, wait=True)
        if self._buffer and len(self._buffer) <= max_count and not self._closed:
            self._ahead = max_count  # before the await: a cancelled send is waited out once
            await self._send_pull(max_count, timeout, wait=False)
        deliveries: list[Delivery] = []  # no await from here on: a cancelled fetch takes nothing
        while self._buffer and len(deliveries) < max_count:
            msg = self._buffer.popleft()
            deliveries.append(Delivery(msg.data, msg, msg.metadata.num_delivered))
        return deliveries

    async def _send_pull(self, batch: int, timeout: float, *, wait: bool) -> None:
        """Send one pull request; its answer lands in the buffer (see ``_answered``).

        Without ``wait`` (``no_wait``), JetStream sends what it has, then a 404/408 status
        unless the batch is full. With it, the request lives ``timeout`` seconds and ends
        with the first message or a 408 at its expiry.
        """
        token = str(next(self._requests))
        self._request, self._status = token, None
        request: dict[str, Any] = {"batch": batch}
        if wait:
            request["expires"] = max(1_000_000, int(timeout * 1e9))
            self._open_until = asyncio.get_running_loop().time() + timeout
        else:
            request["no_wait"] = True
        try:
            await self._client.publish(
                self._next_subject, json.dumps(request).encode(), reply=f"{self._inbox}.{token}"
            )
        except nats.errors.Error as exc:
            raise TransportError(f"pulling from {self._durable!r} failed: {exc!r}") from exc

    async def _answered(self, batch: int, timeout: float, *, wait: bool) -> None:
        """Wait until the request just sent (into an empty buffer) is answered."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (timeout + _NO_ANSWER_GRACE if wait else timeout)
        enough = 1 if wait else batch
        while self._status is None and len(self._buffer) < enough and not self._closed:
            remaining = deadline - loop.time()
            if remaining <= 0:
                if not self._buffer:  # no word at all: is the consumer still there?
                    self._lost = True
                    if not self._client.is_connected:
                        raise TransportError(
                            f"NATS connection lost while reading {self._durable!r}; reconnecting"
                        )
                return
            self._arrived.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._arrived.wait()
            except TimeoutError:
                continue
        if wait and (self._status is not None or self._buffer):
            self._open_until = 0.0  # answered: nothing of ours is waiting on the server
        if self._status is not None and self._status[0] == "409":
            if _CONSUMER_GONE in self._status[1]:
                self._lost = True
            elif not self._buffer:  # such as "Exceeded MaxWaiting": do not spin on it
                await asyncio.sleep(min(timeout, 0.1))

    async def _recover(self) -> None:
        """The consumer (or its stream) was deleted: recreate it, from the stream's start.

        Whatever was published between the loss and now is still in the stream; starting
        from its end would skip it.
        """
        try:
            await self._js.consumer_info(self._state.names.stream, self._durable)
        except nats.js.errors.NotFoundError as exc:
            if not is_not_found(exc):
                raise TransportError(f"checking {self._durable!r} failed: {exc}") from exc
        except nats.errors.Error as exc:
            raise TransportError(f"checking {self._durable!r} failed: {exc!r}") from exc
        else:
            self._lost = False
            return
        _log.warning("consumer_group_recreated", consumer=self._durable, group=self._group)
        try:
            self._state.stream_lost()
            await self._state.ensure_stream()
            await self._state.ensure_consumer(
                self._topic, self._group, from_beginning=True, recreate=True
            )
        except nats.errors.Error as exc:
            raise TransportError(f"recreating {self._durable!r} failed: {exc!r}") from exc
        self._lost = False

    # -- settling -------------------------------------------------------------------------

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Acknowledge each message (a PUB each: JetStream has no batch ack for these).

        None of them is kept alive from here on, even if sending fails part-way: what was
        not acknowledged comes back after ``ack_wait`` (to any replica), and a later call
        for the same deliveries sends what is still owed (an ack sent twice is harmless).
        """
        messages: list[Msg] = [
            delivery.receipt for delivery in deliveries if self._settle(delivery.receipt)
        ]
        try:
            for msg in messages:
                await _acked_once(msg.ack())
        except nats.errors.Error as exc:
            raise TransportError(f"acknowledging on {self._durable!r} failed: {exc!r}") from exc

    async def dead_letter(self, delivery: Delivery, record: bytes) -> None:
        """Store the record, then acknowledge the message and wait for JetStream to confirm.

        The record carries a ``Nats-Msg-Id`` made of this consumer, the message's stream
        sequence and its store time: if we die between the two steps, the message comes
        back after ``ack_wait``, and its next dead letter is dropped by JetStream as a
        duplicate (within the dead-letter stream's duplicate window, one hour), then acked.

        If either step fails, the message is no longer kept alive: it comes back after
        ``ack_wait``, to any replica (one whose connection works, maybe). Meanwhile the
        call may be made again for the same delivery; the record is not stored twice.
        """
        msg: Msg = delivery.receipt
        try:
            await self._store_and_ack(msg, record)
        except Exception:
            self._settle(msg)  # no more in-progress acks: back after ack_wait, to any replica
            raise

    async def _store_and_ack(self, msg: Msg, record: bytes) -> None:
        meta = msg.metadata
        stored_at = int(meta.timestamp.timestamp() * 1_000_000)
        dedup_id = f"{self._durable}:{meta.sequence.stream}:{stored_at}"
        try:
            await self._state.publish_dead_letter(self._topic, record, dedup_id)
            if self._settle(msg):
                await msg.ack_sync(timeout=self._state.publish_timeout)
        except nats.errors.MsgAlreadyAckdError:  # handed back by close() meanwhile
            pass
        except TimeoutError:
            raise TransportError(
                f"dead-lettering on {self._durable!r}: JetStream did not confirm in time"
            ) from None
        except nats.errors.Error as exc:
            raise TransportError(f"dead-lettering on {self._durable!r} failed: {exc!r}") from exc

    def _settle(self, msg: Msg) -> bool:
        """Stop holding ``msg``; False if it was not held (close() handed it back)."""
        sequence = msg.metadata.sequence.stream
        if self._held.get(sequence) is msg:
            del self._held[sequence]
            return True
        return not self._closed

    async def mark_handled(self, event_ids: Sequence[str], ttl: float) -> None:
        """Record in the KV bucket that this group handled these events, for ``ttl`` seconds."""
        try:
            await self._state.mark_handled(self._group, event_ids, ttl)
        except TimeoutError:
            raise TransportError(f"recording handled events of {self._group!r} timed out") from None
        except nats.errors.Error as exc:
            raise TransportError(
                f"recording handled events of {self._group!r} failed: {exc!r}"
            ) from exc

    async def was_handled(self, event_id: str) -> bool:
        """Whether this group's record of ``event_id`` exists, unexpired."""
        try:
            return await self._state.was_handled(self._group, event_id)
        except nats.errors.Error as exc:
            raise TransportError(f"checking handled event {event_id!r} failed: {exc!r}") from exc

    async def backlog(self) -> Backlog:
        """Pending (``num_ack_pending``) and lag (``num_pending``) from the consumer's info."""
        try:
            info = await self._js.consumer_info(self._state.names.stream, self._durable)
        except nats.errors.Error as exc:
            raise TransportError(f"reading consumer {self._durable!r} failed: {exc!r}") from exc
        return Backlog(pending=info.num_ack_pending, lag=info.num_pending)

    # -- keep-alive and close -------------------------------------------------------------

    async def _keep_alive(self) -> None:
        """In-progress ack everything held, every third of ``ack_wait``."""
        interval = self._ack_wait / 3
        failing = False  # warn once per outage, not every interval
        while True:
            await asyncio.sleep(interval)
            held = list(self._held.values())
            if not held:
                continue
            try:
                for msg in held:
                    await msg.in_progress()
            except nats.errors.Error as exc:
                log = _log.debug if failing else _log.warning
                log("keep_alive_failed", consumer=self._durable, error=repr(exc))
                failing = True
            else:
                failing = False

    async def close(self) -> None:
        """Hand back what is held (NAK: another replica gets it at once) and unsubscribe."""
        if self._closed:
            return
        self._closed = True
        self._arrived.set()
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
        held, self._held = list(self._held.values()), {}
        self._buffer.clear()
        # A pull request of ours still open on the server would be offered the handed-back
        # messages first; nats-server 2.9 then finds no one listening and forgets that it
        # delivered them once (the next delivery count is one too low). Handing them back
        # for after the request expired keeps the count right.
        linger = self._open_until - asyncio.get_running_loop().time()
        delay = linger + 0.05 if linger > 0 else None
        for msg in held:
            await _quietly(msg.nak(delay=delay))
        subscription, self._inbox_subscription = self._inbox_subscription, None
        if subscription is not None and not self._client.is_closed:
            await self._say_goodbye(subscription)
        self._state.subscriptions.discard(self)

    async def _say_goodbye(self, subscription: Any) -> None:
        """Unsubscribe the inbox, the NAKs sent first; never longer than ``_GOODBYE_WAIT``.

        On a connection that answers, drain: what reached the client meanwhile still goes
        through ``_on_message`` (NAK). On one that does not (the network froze, the server
        is gone), waiting is pointless: what we held comes back to others after ack_wait.
        """
        try:
            await self._client.flush(timeout=_GOODBYE_WAIT)
        except (nats.errors.Error, TimeoutError, OSError):
            await _quietly(subscription.unsubscribe())
            return
        await _quietly(asyncio.wait_for(subscription.drain(), _GOODBYE_WAIT))
        await _quietly(self._client.flush(timeout=_GOODBYE_WAIT))


async def _acked_once(step: Any) -> None:
    with contextlib.suppress(nats.errors.MsgAlreadyAckdError):  # settled already
        await step


async def _quietly(step: Any) -> None:
    """Await a best-effort step of closing: a connection already gone is not an error here."""
    with contextlib.suppress(nats.errors.Error, TimeoutError, OSError):
        await step
