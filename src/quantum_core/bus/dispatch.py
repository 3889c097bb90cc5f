"""One running subscription: fetch, decode, dispatch with bounded concurrency, acknowledge.

Without an ordering key, events are handled concurrently up to the subscription's limit.
With one, events that share a key wait for each other in the order they were fetched (the
publish order, on one consumer), while other keys go on.
"""

from __future__ import annotations

import asyncio
import contextvars
import traceback
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any

import pydantic_core

from ..logs import get_logger
from ..tracing import trace_context
from .context import EventInfo, set_current_event
from .envelope import Envelope, decode, publish_time
from .transport import Delivery, Subscription

__all__ = ["Consumer", "EventHandler", "KeyFunction", "Route"]

EventHandler = Callable[[dict[str, Any]], Awaitable[Any]]
"""An async function taking the event's payload dict."""

KeyFunction = Callable[[dict[str, Any]], Hashable | None]

_log = get_logger("quantum_core.bus")
_BUFFER_PER_SLOT = 4  # keyed routes fetch ahead, so one busy key does not idle the others


@dataclass(frozen=True, slots=True)
class Route:
    """What one subscription asked for."""

    event_type: str
    handler: EventHandler
    name: str
    concurrency: int
    ordering_key: KeyFunction | None = None
    from_beginning: bool = False


class Consumer:
    """Feeds one subscription's events to its handler until stopped."""

    def __init__(
        self,
        route: Route,
        subscription: Subscription,
        *,
        service_name: str,
        read_count: int,
        poll_seconds: float,
    ) -> None:
        self.route = route
        self.subscription = subscription
        self._service_name = service_name
        self._read_count = read_count
        self._poll_seconds = poll_seconds
        self._slots = asyncio.Semaphore(route.concurrency)
        self._buffer_limit = route.concurrency * (_BUFFER_PER_SLOT if route.ordering_key else 1)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._lanes: dict[Hashable, deque[tuple[Delivery, Envelope]]] = {}
        self._buffered = 0
        self._room = asyncio.Event()
        self._stopping = False
        self._loop_task: asyncio.Task[None] | None = None

    @property
    def in_flight(self) -> int:
        """Events fetched and not yet finished (handled, dead-lettered or abandoned)."""
        return self._buffered

    def start(self) -> None:
        """Begin fetching in a task of its own."""
        # A context of its own: no trace or event of whoever called start() leaks into it.
        self._loop_task = asyncio.create_task(
            self._fetch_loop(),
            name=f"quantum_core consumer {self.route.name}",
            context=contextvars.Context(),
        )

    async def stop(self, timeout: float) -> int:
        """Stop fetching, give handlers in flight ``timeout`` seconds, cancel the rest.

        Returns how many were cancelled; their events stay unacknowledged.
        """
        self._stopping = True
        loop_task = self._loop_task
        if loop_task is not None:
            self._room.set()
            loop_task.cancel()
            await asyncio.wait({loop_task}, timeout=self._poll_seconds + 1)
            if not loop_task.done():
                _log.warning("consumer_loop_did_not_stop", handler=self.route.name)
        if not self._in_flight:
            return 0
        _, unfinished = await asyncio.wait(set(self._in_flight), timeout=timeout)
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
        return len(unfinished)

    async def _fetch_loop(self) -> None:
        failures = 0
        while not self._stopping:
            free = self._buffer_limit - self._buffered
            if free <= 0:
                self._room.clear()
                await self._room.wait()
                continue
            try:
                deliveries = await self.subscription.fetch(
                    min(free, self._read_count), self._poll_seconds
                )
            except Exception:  # a consumer outlives a broker hiccup
                failures += 1
                delay = min(0.1 * 2**failures, 5.0)
                _log.exception("event_fetch_failed", handler=self.route.name, retry_in=delay)
                await asyncio.sleep(delay)
                continue
            failures = 0
            if self._stopping:  # fetched while stopping: left pending for another consumer
                return
            for delivery in deliveries:
                self._dispatch(delivery)

    def _dispatch(self, delivery: Delivery) -> None:
        self._buffered += 1
        try:
            envelope = decode(delivery.data)
        except ValueError as exc:
            self._spawn(self._set_aside_malformed(delivery, exc))
            return
        key = self._key_of(envelope)
        if key is None:
            self._spawn(self._run(delivery, envelope))
            return
        lane = self._lanes.get(key)
        if lane is not None:  # the key's worker is busy: wait in line
            lane.append((delivery, envelope))
            return
        self._lanes[key] = deque([(delivery, envelope)])
        self._spawn(self._drain_lane(key))

    def _key_of(self, envelope: Envelope) -> Hashable | None:
        key_function = self.route.ordering_key
        if key_function is None:
            return None
        try:
            return key_function(envelope.payload)
        except Exception:  # a key function's bug must not stop the consumer
            _log.exception("ordering_key_failed", handler=self.route.name, event_id=envelope.id)
            return None

    def _spawn(self, work: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    def _finished(self) -> None:
        self._buffered -= 1
        self._room.set()

    async def _drain_lane(self, key: Hashable) -> None:
        lane = self._lanes[key]
        try:
            while lane:
                await self._run(*lane.popleft())
        finally:
            if lane:  # cancelled by stop(): what waited in line stays unacknowledged
                self._buffered -= len(lane)
            del self._lanes[key]

    async def _run(self, delivery: Delivery, envelope: Envelope) -> None:
        """Handle one event in this task's own context, then acknowledge or set it aside."""
        try:
            async with self._slots:
                trace_context.set(envelope.trace_id)
                set_current_event(
                    EventInfo(
                        id=envelope.id,
                        type=envelope.type,
                        trace_id=envelope.trace_id,
                        time=envelope.time,
                        source=envelope.source,
                        headers=envelope.headers,
                        attempt=delivery.delivery_count,
                        handler=self.route.name,
                    )
                )
                try:
                    await self.route.handler(envelope.payload)
                except Exception as exc:  # one handler's bug never stops the rest
                    _log.exception(
                        "event_handler_failed",
                        event_id=envelope.id,
                        event_type=envelope.type,
                        handler=self.route.name,
                        attempt=delivery.delivery_count,
                    )
                    await self._dead_letter(delivery, envelope, exc)
                    return
                try:
                    await self.subscription.ack((delivery,))
                except Exception:  # still pending: it will be delivered again
                    _log.exception(
                        "event_ack_failed", handler=self.route.name, event_id=envelope.id
                    )
        finally:
            self._finished()

    async def _set_aside_malformed(self, delivery: Delivery, error: ValueError) -> None:
        try:
            _log.error(
                "event_malformed_set_aside",
                event_type=self.route.event_type,
                handler=self.route.name,
                error=str(error),
            )
            await self._dead_letter(delivery, None, error)
        finally:
            self._finished()

    async def _dead_letter(
        self, delivery: Delivery, envelope: Envelope | None, error: BaseException
    ) -> None:
        """Set an event aside with why, so it is neither lost nor redelivered forever."""
        record = {
            "service": self._service_name,
            "handler": self.route.name,
            "event_type": self.route.event_type,
            "event_id": envelope.id if envelope else None,
            "trace_id": envelope.trace_id if envelope else None,
            "attempts": delivery.delivery_count,
            "error_type": type(error).__name__,
            "error": str(error),
            "traceback": "".join(traceback.format_exception(error, limit=-5)),
            "failed_at": publish_time(),
            "original": delivery.data.decode("utf-8", errors="backslashreplace"),
        }
        try:
            await self.subscription.dead_letter(delivery, pydantic_core.to_json(record))
        except Exception:  # left pending, it will be delivered again
            _log.exception(
                "dead_letter_failed", handler=self.route.name, event_id=record["event_id"]
            )
