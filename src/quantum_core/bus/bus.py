"""EventBus: publish events, and run handlers for them, on any transport.

The bus owns what must be the same everywhere: checking input, the envelope, dispatch with
bounded concurrency, the trace id in the handler's context, logging, and what happens to an
event whose handler fails. The transport only moves bytes (see ``transport.py``).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import socket
import traceback
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from types import TracebackType
from typing import Any, Self

import pydantic_core
from pydantic import BaseModel

from ..logs import get_logger
from ..tracing import new_trace_id, trace_context, validate_trace_id
from .context import EventInfo, set_current_event
from .envelope import Envelope, decode, encode, new_event_id, publish_time, validate_event_type
from .transport import Backlog, Delivery, Subscription, Transport, transport_from_url

__all__ = ["EventBus", "EventHandler"]

EventHandler = Callable[[dict[str, Any]], Awaitable[Any]]
"""An async function taking the event's payload dict."""

_log = get_logger("quantum_core.bus")

_SERVICE_NAME_MAX = 100


class _State(Enum):
    NEW = "new"
    READY = "ready"
    RUNNING = "running"
    STOPPED = "stopped"


@dataclass(slots=True)
class _Handler:
    """One subscription: an event type, a handler, and its running consumer."""

    event_type: str
    handler: EventHandler
    name: str
    concurrency: int
    subscription: Subscription | None = None
    consumer_task: asyncio.Task[None] | None = None
    in_flight: set[asyncio.Task[None]] = field(default_factory=set)


class EventBus:
    """Async publish/subscribe over a pluggable transport.

    Every subscribing service, and every handler within it, receives every event; replicas
    of a service (buses with the same ``service_name`` on one broker) share the work. An
    event is acknowledged only after its handler returned.

    Args:
        transport: A :class:`Transport`, or a URL such as ``"memory://"``.
        service_name: Names this service; replicas share it.
        read_count: How many events one read takes at most (the guide's ``READ_COUNT``).
        concurrency: How many events one subscription handles at once, by default.
        stop_timeout: Seconds ``stop()`` waits for handlers in flight before cancelling them.

    Example:
        >>> async def main() -> None:
        ...     bus = EventBus("memory://", service_name="demo")
        ...     async def on_tick(payload: dict) -> None:
        ...         print(payload["symbol"])
        ...     bus.subscribe("market.data.update", on_tick)
        ...     async with bus:
        ...         await bus.publish("market.data.update", {"symbol": "BTCUSDT"})
    """

    def __init__(
        self,
        transport: Transport | str,
        *,
        service_name: str,
        read_count: int = 10,
        concurrency: int = 16,
        stop_timeout: float = 10.0,
    ) -> None:
        self.service_name = _check_service_name(service_name)
        self._read_count = _check_positive_int("read_count", read_count)
        self._concurrency = _check_positive_int("concurrency", concurrency)
        if not stop_timeout >= 0:
            raise ValueError(f"stop_timeout must be a number of seconds >= 0, got {stop_timeout}")
        self._stop_timeout = float(stop_timeout)
        self._transport, self._owns_transport = _resolve_transport(transport)
        self._consumer = f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"
        self._handlers: list[_Handler] = []
        self._state = _State.NEW
        self._poll_seconds = 1.0

    @property
    def transport(self) -> Transport:
        """The transport this bus speaks to."""
        return self._transport

    @property
    def consumer_name(self) -> str:
        """This process's consumer name within its groups: unique, stable for its life."""
        return self._consumer

    @property
    def is_running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._state is _State.RUNNING

    async def initialize(self) -> None:
        """Get ready to publish; safe to call more than once."""
        if self._state is _State.STOPPED:
            raise RuntimeError("this EventBus is stopped; create a new one")
        if self._state is _State.NEW:
            self._state = _State.READY

    def subscribe(
        self,
        event_type: str,
        handler: EventHandler,
        *,
        name: str | None = None,
        concurrency: int | None = None,
    ) -> None:
        """Run ``handler(payload)`` for every event of ``event_type``, once :meth:`start` ran.

        Args:
            event_type: Such as ``"market.data.update"``.
            handler: An ``async def`` function or method taking the payload dict.
            name: Names the subscription (its consumer group) within the service; defaults
                to the handler's qualified name. Renaming it starts a new group.
            concurrency: Events this subscription handles at once; defaults to the bus's.
        """
        validate_event_type(event_type)
        if not _is_async_callable(handler):
            raise TypeError(
                f"handler for {event_type!r} must be an async function (async def) taking the "
                f"payload dict, got {handler!r}"
            )
        if self._state in (_State.RUNNING, _State.STOPPED):
            raise RuntimeError(
                f"subscribe({event_type!r}, ...) after start(): subscribe every handler first"
            )
        handler_name = _handler_name(handler) if name is None else name
        if not isinstance(handler_name, str) or not handler_name.strip():
            raise ValueError(f"subscription name must be a non-empty string, got {name!r}")
        for existing in self._handlers:
            if existing.event_type == event_type and existing.name == handler_name:
                raise ValueError(
                    f"{handler_name!r} is already subscribed to {event_type!r}; pass name=... "
                    "to subscribe a second handler with the same qualified name"
                )
        self._handlers.append(
            _Handler(
                event_type=event_type,
                handler=handler,
                name=handler_name,
                concurrency=_check_positive_int("concurrency", concurrency or self._concurrency),
            )
        )

    async def start(self) -> None:
        """Create every subscription's consumer group, then start consuming.

        When ``start()`` returns, every group exists: an event published afterwards is
        delivered.
        """
        await self.initialize()
        if self._state is _State.RUNNING:
            return
        for entry in self._handlers:
            entry.subscription = await self._transport.subscribe(
                entry.event_type, group=f"{self.service_name}:{entry.name}", consumer=self._consumer
            )
        for entry in self._handlers:
            entry.consumer_task = asyncio.create_task(
                self._consume(entry), name=f"quantum_core consumer {entry.name}"
            )
        self._state = _State.RUNNING
        _log.info(
            "event_bus_started",
            bus_service=self.service_name,
            consumer=self._consumer,
            subscriptions=[f"{h.event_type} -> {h.name}" for h in self._handlers],
        )

    async def publish(
        self,
        event_type: str,
        payload: dict[str, Any] | BaseModel,
        trace_id: str | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> str:
        """Publish one event and return its id once the transport has stored it.

        The trace id is ``trace_id``, else the current ``trace_context``, else a new one.
        """
        (data,), (event_id,) = self._encode(event_type, (payload,), trace_id, headers)
        self._check_can_publish()
        await self._transport.publish(event_type, (data,))
        return event_id

    async def publish_many(
        self,
        event_type: str,
        payloads: Iterable[dict[str, Any] | BaseModel],
        trace_id: str | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> list[str]:
        """Publish several events of one type in one round trip; return their ids in order."""
        encoded, event_ids = self._encode(event_type, tuple(payloads), trace_id, headers)
        self._check_can_publish()
        if encoded:
            await self._transport.publish(event_type, encoded)
        return event_ids

    async def stop(self) -> None:
        """Stop taking events, let handlers in flight finish, then release the transport.

        Handlers still running after ``stop_timeout`` are cancelled; their events stay
        unacknowledged, for another replica. Calling ``stop()`` again does nothing.
        """
        if self._state is _State.STOPPED:
            return
        was_running = self._state is _State.RUNNING
        self._state = _State.STOPPED
        consumers = [h.consumer_task for h in self._handlers if h.consumer_task]
        for task in consumers:
            task.cancel()
        await asyncio.gather(*consumers, return_exceptions=True)
        in_flight = {task for h in self._handlers for task in h.in_flight}
        if in_flight:
            _, unfinished = await asyncio.wait(in_flight, timeout=self._stop_timeout)
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
            if unfinished:
                _log.warning(
                    "event_handlers_cancelled_on_stop",
                    cancelled=len(unfinished),
                    stop_timeout=self._stop_timeout,
                )
        for entry in self._handlers:
            if entry.subscription is not None:
                await entry.subscription.close()
                entry.subscription = None
        if self._owns_transport:
            await self._transport.close()
        if was_running:
            _log.info("event_bus_stopped", bus_service=self.service_name, consumer=self._consumer)

    async def ping(self) -> None:
        """Check the transport's broker answers.

        Raises:
            TransportError: when it does not.
        """
        await self._transport.ping()

    async def backlog(self) -> dict[str, Backlog]:
        """Return pending and lag per running subscription, keyed ``"<event type> -> <name>"``."""
        return {
            f"{entry.event_type} -> {entry.name}": await entry.subscription.backlog()
            for entry in self._handlers
            if entry.subscription is not None
        }

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def __repr__(self) -> str:
        return (
            f"<EventBus service={self.service_name!r} state={self._state.value} "
            f"transport={type(self._transport).__name__} subscriptions={len(self._handlers)}>"
        )

    # -- publishing -----------------------------------------------------------------------

    def _check_can_publish(self) -> None:
        if self._state is _State.STOPPED:
            raise RuntimeError("cannot publish on a stopped EventBus")

    def _encode(
        self,
        event_type: str,
        payloads: tuple[object, ...],
        trace_id: str | None,
        headers: dict[str, str] | None,
    ) -> tuple[list[bytes], list[str]]:
        validate_event_type(event_type)
        if trace_id is None:
            trace_id = trace_context.get() or new_trace_id()
        else:
            validate_trace_id(trace_id)
        headers = _check_headers(headers)
        now = publish_time()
        encoded: list[bytes] = []
        event_ids: list[str] = []
        for payload in payloads:
            if isinstance(payload, BaseModel):
                body = payload.model_dump(mode="json")
            elif isinstance(payload, dict):
                body = payload
            else:
                raise TypeError(
                    f"payload of {event_type!r} must be a dict or a pydantic model, "
                    f"got {type(payload).__name__}"
                )
            event_id = new_event_id()
            encoded.append(
                encode(
                    Envelope(event_id, event_type, body, trace_id, now, self.service_name, headers)
                )
            )
            event_ids.append(event_id)
        return encoded, event_ids

    # -- consuming ------------------------------------------------------------------------

    async def _consume(self, entry: _Handler) -> None:
        """Fetch events for one subscription and hand each to a task, up to its concurrency."""
        subscription = entry.subscription
        assert subscription is not None  # noqa: S101 - start() set it
        failures = 0
        while True:
            free = entry.concurrency - len(entry.in_flight)
            if free <= 0:
                await asyncio.wait(entry.in_flight, return_when=asyncio.FIRST_COMPLETED)
                continue
            try:
                deliveries = await subscription.fetch(
                    min(free, self._read_count), self._poll_seconds
                )
            except Exception:
                failures += 1
                delay = min(0.1 * 2**failures, 5.0)
                _log.exception("event_fetch_failed", handler=entry.name, retry_in_seconds=delay)
                await asyncio.sleep(delay)
                continue
            failures = 0
            for delivery in deliveries:
                task = asyncio.create_task(self._handle(entry, subscription, delivery))
                entry.in_flight.add(task)
                task.add_done_callback(entry.in_flight.discard)

    async def _handle(
        self, entry: _Handler, subscription: Subscription, delivery: Delivery
    ) -> None:
        """Run the handler for one delivery, in a task of its own (so its context is its own)."""
        try:
            envelope = decode(delivery.data)
        except ValueError as exc:
            _log.error(
                "event_malformed_set_aside",
                event_type=entry.event_type,
                handler=entry.name,
                error=str(exc),
            )
            await self._set_aside(entry, subscription, delivery, None, exc)
            return
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
                handler=entry.name,
            )
        )
        try:
            await entry.handler(envelope.payload)
        except Exception as exc:
            _log.exception(
                "event_handler_failed",
                event_id=envelope.id,
                event_type=envelope.type,
                handler=entry.name,
                attempt=delivery.delivery_count,
            )
            await self._set_aside(entry, subscription, delivery, envelope, exc)
            return
        await subscription.ack((delivery,))

    async def _set_aside(
        self,
        entry: _Handler,
        subscription: Subscription,
        delivery: Delivery,
        envelope: Envelope | None,
        error: BaseException,
    ) -> None:
        """Dead-letter an event with why, so it is neither lost nor redelivered forever."""
        record = {
            "service": self.service_name,
            "handler": entry.name,
            "event_type": entry.event_type,
            "event_id": envelope.id if envelope else None,
            "trace_id": envelope.trace_id if envelope else None,
            "attempts": delivery.delivery_count,
            "error_type": type(error).__name__,
            "error": str(error),
            "traceback": "".join(traceback.format_exception(error, limit=-5)),
            "failed_at": publish_time(),
            "original": delivery.data.decode("utf-8", errors="backslashreplace"),
        }
        await subscription.dead_letter(delivery, pydantic_core.to_json(record))


def _resolve_transport(transport: object) -> tuple[Transport, bool]:
    """Return the transport and whether the bus created it (and so must close it)."""
    if isinstance(transport, Transport):
        return transport, False
    if isinstance(transport, str):
        return transport_from_url(transport), True
    raise TypeError(
        "EventBus transport must be a Transport instance or a URL such as 'memory://', "
        f"got {type(transport).__name__}"
    )


def _is_async_callable(handler: object) -> bool:
    if inspect.iscoroutinefunction(handler):
        return True
    call = getattr(type(handler), "__call__", None)  # noqa: B004 - an object with async __call__
    return call is not None and inspect.iscoroutinefunction(call)


def _handler_name(handler: object) -> str:
    func = getattr(handler, "__func__", handler)
    func = getattr(func, "func", func)  # functools.partial
    module = getattr(func, "__module__", None) or type(handler).__module__
    qualname = getattr(func, "__qualname__", None) or type(handler).__qualname__
    return f"{module}.{qualname}"


def _check_service_name(service_name: object) -> str:
    if (
        isinstance(service_name, str)
        and 0 < len(service_name) <= _SERVICE_NAME_MAX
        and service_name.isprintable()
        and not any(c.isspace() for c in service_name)
    ):
        return service_name
    raise ValueError(
        f"service_name must be a non-empty string of at most {_SERVICE_NAME_MAX} printable "
        f"characters without spaces, got {service_name!r}"
    )


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")


def _check_headers(headers: object) -> dict[str, str]:
    if headers is None:
        return {}
    if isinstance(headers, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        return headers
    raise TypeError(f"headers must be a dict of str to str, got {headers!r}")
