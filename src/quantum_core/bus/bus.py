"""EventBus: publish events, and run handlers for them, on any transport.

The bus owns what must be the same everywhere: checking input, the envelope, dispatch with
bounded concurrency, the trace id in the handler's context, logging, and what happens to an
event whose handler fails. The transport only moves bytes (see ``transport.py``).
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, Hashable, Iterable
from enum import Enum
from types import TracebackType
from typing import Any, Self

from pydantic import BaseModel

from ..logs import get_logger
from ..tracing import new_trace_id, trace_context, validate_trace_id
from ._checks import (
    check_headers,
    check_positive_int,
    check_service_name,
    handler_name,
    is_async_callable,
    key_function,
)
from .dispatch import Consumer, EventHandler, Route
from .envelope import Envelope, encode, new_event_id, publish_time, validate_event_type
from .transport import Backlog, Transport, transport_from_url

__all__ = ["EventBus", "EventHandler"]

_log = get_logger("quantum_core.bus")


class _State(Enum):
    NEW = "new"
    READY = "ready"
    RUNNING = "running"
    STOPPED = "stopped"


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
        transport: Transport | str | Any,
        *,
        service_name: str,
        read_count: int = 10,
        concurrency: int = 16,
        stop_timeout: float = 10.0,
        consumer_name: str | None = None,
    ) -> None:
        self.service_name = check_service_name(service_name)
        self._read_count = check_positive_int("read_count", read_count)
        self._concurrency = check_positive_int("concurrency", concurrency)
        if not stop_timeout >= 0:
            raise ValueError(f"stop_timeout must be a number of seconds >= 0, got {stop_timeout}")
        self._stop_timeout = float(stop_timeout)
        if consumer_name is None:
            consumer_name = f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"
        self._consumer = check_service_name(consumer_name, what="consumer_name")
        self._transport, self._owns_transport = _resolve_transport(transport)
        self._routes: list[Route] = []
        self._consumers: list[Consumer] = []
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
        ordering_key: str | Callable[[dict[str, Any]], Hashable | None] | None = None,
        from_beginning: bool = False,
    ) -> None:
        """Run ``handler(payload)`` for every event of ``event_type``, once :meth:`start` ran.

        Args:
            event_type: Such as ``"market.data.update"``.
            handler: An ``async def`` function or method taking the payload dict.
            name: Names the subscription (its consumer group) within the service; defaults
                to the handler's qualified name. Renaming it starts a new group.
            concurrency: Events this subscription handles at once; defaults to the bus's.
            ordering_key: A payload field (such as ``"symbol"``) or a function of the
                payload: events with the same key are handled one at a time, in order.
            from_beginning: A new group starts with the oldest event the transport still
                keeps, instead of the next one published.
        """
        validate_event_type(event_type)
        if not is_async_callable(handler):
            raise TypeError(
                f"handler for {event_type!r} must be an async function (async def) taking the "
                f"payload dict, got {handler!r}"
            )
        if self._state in (_State.RUNNING, _State.STOPPED):
            raise RuntimeError(
                f"subscribe({event_type!r}, ...) after start(): subscribe every handler first"
            )
        route_name = handler_name(handler) if name is None else name
        if not isinstance(route_name, str) or not route_name.strip():
            raise ValueError(f"subscription name must be a non-empty string, got {name!r}")
        if any(r.event_type == event_type and r.name == route_name for r in self._routes):
            raise ValueError(
                f"{route_name!r} is already subscribed to {event_type!r}; pass name=... "
                "to subscribe a second handler with the same qualified name"
            )
        self._routes.append(
            Route(
                event_type=event_type,
                handler=handler,
                name=route_name,
                concurrency=check_positive_int("concurrency", concurrency or self._concurrency),
                ordering_key=key_function(ordering_key),
                from_beginning=bool(from_beginning),
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
        for route in self._routes:
            subscription = await self._transport.subscribe(
                route.event_type,
                group=f"{self.service_name}:{route.name}",
                consumer=self._consumer,
                from_beginning=route.from_beginning,
            )
            self._consumers.append(
                Consumer(
                    route,
                    subscription,
                    service_name=self.service_name,
                    read_count=self._read_count,
                    poll_seconds=self._poll_seconds,
                )
            )
        for consumer in self._consumers:
            consumer.start()
        self._state = _State.RUNNING
        _log.info(
            "event_bus_started",
            bus_service=self.service_name,
            consumer=self._consumer,
            subscriptions=[f"{r.event_type} -> {r.name}" for r in self._routes],
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
        results = await asyncio.gather(*(c.stop(self._stop_timeout) for c in self._consumers))
        if sum(results):
            _log.warning(
                "event_handlers_cancelled_on_stop",
                cancelled=sum(results),
                stop_timeout=self._stop_timeout,
            )
        for consumer in self._consumers:
            await consumer.subscription.close()
        self._consumers.clear()
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
            f"{c.route.event_type} -> {c.route.name}": await c.subscription.backlog()
            for c in self._consumers
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
            f"transport={type(self._transport).__name__} subscriptions={len(self._routes)}>"
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
        headers = check_headers(headers)
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


def _resolve_transport(transport: object) -> tuple[Transport, bool]:
    """Return the transport and whether the bus created it (and so must close it)."""
    if isinstance(transport, Transport):
        return transport, False
    if isinstance(transport, str):
        return transport_from_url(transport), True
    if type(transport).__module__.startswith("redis."):  # the guide's EventBus(redis_client)
        from .redis_streams import RedisStreamsTransport  # imported only when used

        return RedisStreamsTransport(transport), True  # type: ignore[arg-type]
    raise TypeError(
        "EventBus transport must be a Transport, a redis.asyncio.Redis client, or a URL such "
        f"as 'memory://' or 'redis://localhost:6379', got {type(transport).__name__}"
    )
