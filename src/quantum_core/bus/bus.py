"""EventBus: publish events, and run handlers for them, on any transport.

The bus owns what must be the same everywhere: checking input, the envelope, dispatch with
bounded concurrency, the trace id in the handler's context, logging, and what happens to an
event whose handler fails (retries, time limits, dead letters; see ``dispatch.py`` and
``_retry.py``). The transport only moves bytes (see ``transport.py``).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from enum import Enum
from types import TracebackType
from typing import Any, Self, TypeVar

from pydantic import BaseModel

from .._checks import check_int, check_seconds
from ..logs import get_logger
from ..observability._gate import refresh as refresh_tracing
from ..observability._gate import spans as tracing_spans
from ..observability._metrics import Metrics, PublishSeries, turned_on
from ..observability._system import messaging_system
from ._checks import (
    check_service_name,
    handler_name,
    is_async_callable,
    key_function,
)
from ._retry import RetryPolicy
from .abilities import KeyedPublisher, backlog_of, dead_letter_store, handled_records
from .dead_letters import DeadLetter, describe_error, read_dead_letters, replay_dead_letter
from .dispatch import Consumer, EventHandler, Route
from .envelope import encode_events, validate_event_type
from .registry import resolve_transport
from .stats import SubscriptionStats
from .transport import Backlog, Transport
from .typed import TypedPayload, adapter_for, typed_payload

__all__ = ["EventBus", "EventHandler"]

_log = get_logger("quantum_core.bus")
_H = TypeVar("_H", bound=EventHandler)
DEFAULT_IDEMPOTENCY_TTL = 86_400.0
"""Seconds a handled-record of an ``idempotent=True`` subscription is kept: one day."""


_SAMPLER_STOP = 0.1  # seconds stop() gives the backlog sampler to end


def _retrieved(task: asyncio.Task[None]) -> None:
    """Read what a background task raised: asyncio reports what nobody read, at exit."""
    if not task.cancelled() and task.exception() is not None:
        _log.error("backlog_sampler_failed", exc_info=task.exception())


class _State(Enum):
    NEW = "new"
    READY = "ready"
    RUNNING = "running"
    STOPPED = "stopped"


class EventBus:
    """Async publish/subscribe over a pluggable transport.

    Every subscribing service, and every handler within it, receives every event; replicas
    of a service (buses with the same ``service_name`` on one broker) share the work. An
    event is acknowledged only after its handler returned. A handler that raises or times
    out is tried again with exponential backoff; after its last attempt the event is set
    aside as a dead letter (see :meth:`dead_letters`) and the consumer goes on.

    Args:
        transport: A :class:`Transport`, or a URL such as ``"memory://"``.
        service_name: Names this service; replicas share it.
        read_count: How many events one read takes at most (the guide's ``READ_COUNT``,
            10 there; 100 here, because reads of 10 cost half the throughput; a read never
            takes more than there is room for, see ``concurrency``).
        concurrency: How many events one subscription handles at once, by default (64:
            the measured knee of the throughput curve on Redis, see docs/benchmarks.md).
        stop_timeout: Seconds ``stop()`` waits for handlers in flight before cancelling them.
        consumer_name: This process's name within its consumer groups; unique by default.
        max_attempts: Attempts per event, counting redeliveries, before it is dead-lettered;
            the default of every subscription.
        retry_backoff: Seconds before the second attempt, doubling for each later one (with
            jitter: each wait is 50-100% of that); the default of every subscription.
        retry_backoff_max: The longest wait between two attempts.
        handler_timeout: Seconds one attempt may run before it is cancelled and counted as
            failed; ``math.inf`` for no limit. The default of every subscription.

    Examples:
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
        read_count: int = 100,
        concurrency: int = 64,
        stop_timeout: float = 10.0,
        consumer_name: str | None = None,
        max_attempts: int = 5,
        retry_backoff: float = 0.1,
        retry_backoff_max: float = 30.0,
        handler_timeout: float = 30.0,
    ) -> None:
        self.service_name = check_service_name(service_name)
        self._retry = RetryPolicy.of(
            max_attempts=max_attempts,
            backoff=retry_backoff,
            backoff_max=retry_backoff_max,
            timeout=handler_timeout,
            timeout_name="handler_timeout",
        )
        self._read_count = check_int("read_count", read_count)
        self._concurrency = check_int("concurrency", concurrency)
        self._stop_timeout = check_seconds("stop_timeout", stop_timeout)
        if consumer_name is None:
            consumer_name = f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"
        self._consumer = check_service_name(consumer_name, what="consumer_name")
        self._transport, self._owns_transport = resolve_transport(transport)
        self._system = messaging_system(self._transport)
        refresh_tracing()  # an SDK configured since the last look is used from now on
        self._metrics: Metrics | None = turned_on()
        self._published: dict[str, PublishSeries] = {}
        self._sampler: asyncio.Task[None] | None = None
        self._routes: list[Route] = []
        self._publishes: dict[str, TypedPayload | None] = {}
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
    def stop_timeout(self) -> float:
        """Seconds :meth:`stop` waits for handlers in flight before cancelling them."""
        return self._stop_timeout

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
        max_attempts: int | None = None,
        retry_backoff: float | None = None,
        timeout: float | None = None,
        idempotent: bool = False,
        idempotency_ttl: float = DEFAULT_IDEMPOTENCY_TTL,
    ) -> None:
        """Run ``handler(payload)`` for every event of ``event_type``, once :meth:`start` ran.

        A handler whose first parameter is annotated with a pydantic model (or a
        ``TypedDict``, a dataclass) receives the payload validated as one; a payload that
        fails validation is dead-lettered at once, with every reason, never retried. One
        annotated ``dict`` or not annotated receives the payload dict.

        Args:
            event_type: Such as ``"market.data.update"``.
            handler: An ``async def`` function or method taking the payload: the dict, or
                the model its first parameter is annotated with.
            name: Names the subscription (its consumer group) within the service; defaults
                to the handler's qualified name. Renaming it starts a new group.
            concurrency: Events this subscription handles at once; defaults to the bus's.
            ordering_key: A payload field (such as ``"symbol"``) or a function of the
                payload: events with the same key are handled one at a time, in order.
            from_beginning: A new group starts with the oldest event the transport still
                keeps, instead of the next one published.
            max_attempts: Attempts per event before it is dead-lettered; defaults to the
                bus's. ``current_event().attempt`` tells the handler which one it is on.
            retry_backoff: Seconds before the second attempt (doubling, with jitter);
                defaults to the bus's.
            timeout: Seconds one attempt may run before it is cancelled and counted as
                failed; ``math.inf`` for no limit; defaults to the bus's.
            idempotent: Never run the handler again for an event it completed, even when
                the event is redelivered (a crash between the handler and the ack): the bus
                records each completed event id for the group and acknowledges a
                redelivery of a recorded one unseen. See docs/reliability.md for the window
                this leaves. Needs a transport that keeps such records (memory, Redis, NATS).
            idempotency_ttl: Seconds a record is kept (default one day); a redelivery
                later than that runs the handler again.
        """
        validate_event_type(event_type)
        if not is_async_callable(handler):
            raise TypeError(
                f"handler for {event_type!r} must be an async function (async def) taking the "
                f"payload (a dict, or a model), got {handler!r}"
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
        payload = typed_payload(handler, route_name)
        self._routes.append(
            Route(
                event_type=event_type,
                handler=handler,
                name=route_name,
                concurrency=check_int(
                    "concurrency", self._concurrency if concurrency is None else concurrency
                ),
                retry=self._retry.override(max_attempts, retry_backoff, timeout),
                ordering_key=key_function(ordering_key),
                from_beginning=bool(from_beginning),
                idempotency_ttl=(
                    check_seconds("idempotency_ttl", idempotency_ttl, positive=True)
                    if idempotent
                    else None
                ),
                payload=payload,
            )
        )

    def subscriber(
        self,
        event_type: str,
        *,
        name: str | None = None,
        concurrency: int | None = None,
        ordering_key: str | Callable[[dict[str, Any]], Hashable | None] | None = None,
        from_beginning: bool = False,
        max_attempts: int | None = None,
        retry_backoff: float | None = None,
        timeout: float | None = None,
        idempotent: bool = False,
        idempotency_ttl: float = DEFAULT_IDEMPOTENCY_TTL,
    ) -> Callable[[_H], _H]:
        """:meth:`subscribe` as a decorator, with the same options.

        The function comes back unchanged, so a test can still call it directly.

        Examples:
            >>> bus = EventBus("memory://", service_name="demo")
            >>> @bus.subscriber("market.data.update", concurrency=1)
            ... async def on_tick(payload: dict) -> None: ...
        """

        def register(handler: _H) -> _H:
            self.subscribe(
                event_type,
                handler,
                name=name,
                concurrency=concurrency,
                ordering_key=ordering_key,
                from_beginning=from_beginning,
                max_attempts=max_attempts,
                retry_backoff=retry_backoff,
                timeout=timeout,
                idempotent=idempotent,
                idempotency_ttl=idempotency_ttl,
            )
            return handler

        return register

    def publisher(self, event_type: str, model: Any = None) -> None:
        """Declare that this service publishes ``event_type`` (payloads of ``model``, if given).

        Publishing works without it; the declaration puts the event in the service's AsyncAPI
        document (``quantum-core asyncapi``) as one it sends, with ``model``'s JSON Schema.

        Raises:
            TypeError: pydantic cannot describe ``model``.
        """
        validate_event_type(event_type)
        if model is None or model is dict:
            self._publishes[event_type] = None
            return
        adapter = adapter_for(
            model,
            f"publisher({event_type!r}, {model!r}): pydantic cannot describe it",
            "pass a pydantic model, a TypedDict or a dataclass",
        )
        self._publishes[event_type] = TypedPayload(model, adapter, f"{self.service_name} publisher")

    @property
    def routes(self) -> tuple[Route, ...]:
        """Every subscription, as subscribed: read by tools (the AsyncAPI document)."""
        return tuple(self._routes)

    @property
    def publishes(self) -> dict[str, TypedPayload | None]:
        """The events declared with :meth:`publisher`, and their payload types."""
        return dict(self._publishes)

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
            if route.idempotency_ttl is not None and handled_records(subscription) is None:
                for opened in [subscription, *(c.subscription for c in self._consumers)]:
                    await opened.close()
                self._consumers.clear()
                raise NotImplementedError(
                    f"{route.name!r} is subscribed with idempotent=True, but "
                    f"{type(self._transport).__name__} keeps no handled-records (its "
                    "subscriptions would implement mark_handled and was_handled, see "
                    "docs/transports.md); use memory://, redis:// or nats://, or subscribe "
                    "without idempotent=True"
                )
            self._consumers.append(
                Consumer(
                    route,
                    subscription,
                    service_name=self.service_name,
                    read_count=self._read_count,
                    poll_seconds=self._poll_seconds,
                    system=self._system,
                    metrics=self._metrics,
                )
            )
        for consumer in self._consumers:
            consumer.start()
        if self._metrics is not None and self._consumers:
            self._sampler = asyncio.create_task(
                self._sample_backlogs(self._metrics), name="quantum_core backlog sampler"
            )
            self._sampler.add_done_callback(_retrieved)
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
        ordering_key: str | Callable[[dict[str, Any]], Hashable | None] | None = None,
    ) -> str:
        """Publish one event and return its id once the transport has stored it.

        The trace id is ``trace_id``, else the current OpenTelemetry span's (when an SDK is
        configured, see docs/observability.md), else the current ``trace_context``, else a
        new one. ``ordering_key`` (a payload field or a function of the payload, as in
        :meth:`subscribe`) becomes the message key where the broker places messages by key
        (Kafka: events of one key on one partition, in order); elsewhere it changes nothing.
        """
        spans = tracing_spans()
        if spans is not None or self._metrics is not None:
            (event_id,) = await self._publish_observed(
                event_type, (payload,), trace_id, headers, batch=False, ordering_key=ordering_key
            )
            return event_id
        (data,), (event_id,) = encode_events(
            self.service_name, event_type, (payload,), trace_id, headers
        )
        self._check_can_publish()
        await self._send(event_type, (data,), (payload,), ordering_key)
        return event_id

    async def publish_many(
        self,
        event_type: str,
        payloads: Iterable[dict[str, Any] | BaseModel],
        trace_id: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        ordering_key: str | Callable[[dict[str, Any]], Hashable | None] | None = None,
    ) -> list[str]:
        """Publish several events of one type in one round trip; return their ids in order.

        ``ordering_key``: as in :meth:`publish`, for each event.
        """
        batch = tuple(payloads)
        if tracing_spans() is not None or self._metrics is not None:
            return await self._publish_observed(
                event_type, batch, trace_id, headers, batch=True, ordering_key=ordering_key
            )
        encoded, event_ids = encode_events(self.service_name, event_type, batch, trace_id, headers)
        self._check_can_publish()
        if encoded:
            await self._send(event_type, encoded, batch, ordering_key)
        return event_ids

    async def _send(
        self,
        event_type: str,
        encoded: Sequence[bytes],
        payloads: Sequence[object],
        ordering_key: str | Callable[[dict[str, Any]], Hashable | None] | None,
    ) -> None:
        """Hand the encoded events to the transport, with their keys where it takes keys."""
        keys_of = key_function(ordering_key)
        if keys_of is None or not isinstance(self._transport, KeyedPublisher):
            await self._transport.publish(event_type, encoded)
            return
        keys: list[str | None] = []
        for payload in payloads:
            body = payload.model_dump(mode="json") if isinstance(payload, BaseModel) else payload
            key = keys_of(body) if isinstance(body, dict) else None
            keys.append(None if key is None else str(key))
        await self._transport.publish_keyed(event_type, encoded, keys)

    async def stop(self) -> None:
        """Stop taking events, let handlers in flight finish, then release the transport.

        Handlers still running after ``stop_timeout`` are cancelled, and events waiting for
        a retry are given up at once; all of them stay unacknowledged, for another replica
        (which counts the redelivery as an attempt). The consumers are done within
        ``stop_timeout`` plus half a second even if the broker stopped answering: acks it
        did not take by then are given up, their events left pending. Calling ``stop()``
        again does nothing.
        """
        if self._state is _State.STOPPED:
            return
        was_running = self._state is _State.RUNNING
        self._state = _State.STOPPED
        if self._sampler is not None and self._metrics is not None:
            # A sample in flight on a broker that stopped answering ends at its own bound,
            # seconds later: stop() does not wait for it (the task only reads).
            self._sampler.cancel()
            await asyncio.wait({self._sampler}, timeout=_SAMPLER_STOP)
            for consumer in self._consumers:  # no stale samples of a stopped bus
                series = self._metrics.consumer_series(
                    self.service_name, consumer.route.event_type, consumer.group, self._system
                )
                series.in_flight, series.pending, series.lag = 0, None, None
        results = await asyncio.gather(*(c.stop(self._stop_timeout) for c in self._consumers))
        if sum(results):
            _log.warning(
                "event_handlers_cancelled_on_stop",
                cancelled=sum(results),
                stop_timeout=self._stop_timeout,
            )
        # Together: on a broker that does not answer, each close waits its own bound.
        await asyncio.gather(*(c.subscription.close() for c in self._consumers))
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
        consumers = list(self._consumers)
        backlogs = await asyncio.gather(*(backlog_of(c.subscription) for c in consumers))
        return {
            f"{c.route.event_type} -> {c.route.name}": backlog
            for c, backlog in zip(consumers, backlogs, strict=True)
        }

    async def stats(self) -> dict[str, SubscriptionStats]:
        """Return counters and backlog per running subscription, keyed like :meth:`backlog`.

        Counters are this process's since :meth:`start`. When the broker cannot tell the
        backlog (or cannot be reached), ``pending`` and ``lag`` are None: stats never fail.
        """
        consumers = list(self._consumers)
        # Asked together: on a broker in trouble, each backlog read waits its own bound.
        backlogs = await asyncio.gather(
            *(backlog_of(c.subscription) for c in consumers), return_exceptions=True
        )
        result: dict[str, SubscriptionStats] = {}
        for consumer, backlog in zip(consumers, backlogs, strict=True):
            if isinstance(backlog, BaseException):
                if not isinstance(backlog, Exception):
                    raise backlog  # a cancellation, or the process ending
                # counters matter most when the broker is in trouble
                _log.warning(
                    "event_backlog_unavailable",
                    handler=consumer.route.name,
                    error=describe_error(backlog),
                )
                backlog = Backlog(pending=None, lag=None)
            result[f"{consumer.route.event_type} -> {consumer.route.name}"] = consumer.stats(
                backlog
            )
        return result

    async def dead_letters(
        self, event_type: str, *, limit: int = 100, after: str | None = None
    ) -> list[DeadLetter]:
        """Return up to ``limit`` dead letters of ``event_type``, oldest first.

        The dead letters of a topic are shared by every service subscribed to it; each
        names its ``service`` and ``handler``. To page, pass the last ``id`` as ``after``.
        """
        validate_event_type(event_type)
        return await read_dead_letters(
            self._transport, event_type, check_int("limit", limit), after
        )

    async def replay_dead_letter(self, event_type: str, dead_letter_id: str) -> str:
        """Publish a dead letter's original event again; the dead letter is gone after.

        The event keeps its id, trace id, publish time and source; only the consumer group
        that gave up on it handles it again (a header, ``x-quantum-replay-for``, names it;
        other groups acknowledge it unseen). Returns the event id. The dead letter is
        claimed (deleted) first, so of two replays of one letter only one publishes; a
        publish that fails puts it back (see docs/reliability.md).

        Raises:
            LookupError: no dead letter has that id.
            ValueError: the dead letter holds an entry that is not an event envelope.
        """
        validate_event_type(event_type)
        self._check_can_publish()
        event_id = await replay_dead_letter(self._transport, event_type, dead_letter_id)
        if self._metrics is not None:
            self._metrics.replayed_one(self.service_name, event_type, self._system)
        return event_id

    async def purge_dead_letters(self, event_type: str) -> int:
        """Delete every dead letter of ``event_type`` (of every service); return how many."""
        validate_event_type(event_type)
        store = dead_letter_store(self._transport, doing="delete its dead letters")
        return await store.delete_dead_letters(event_type, None)

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

    async def _publish_observed(
        self,
        event_type: str,
        payloads: tuple[object, ...],
        trace_id: str | None,
        headers: dict[str, str] | None,
        *,
        batch: bool,
        ordering_key: str | Callable[[dict[str, Any]], Hashable | None] | None,
    ) -> list[str]:
        """Publish with a ``send`` span and/or the publish metrics (``observability/``)."""
        spans = tracing_spans()
        span = None
        if spans is not None:
            validate_event_type(event_type)  # before a span is named after it (encode does too)
            span, trace_id, headers = spans.start_send(
                self._system, event_type, trace_id, headers, len(payloads), batch
            )
        started = time.perf_counter()
        event_ids: list[str] = []
        try:
            encoded, event_ids = encode_events(
                self.service_name, event_type, payloads, trace_id, headers
            )
            self._check_can_publish()
            if encoded:
                await self._send(event_type, encoded, payloads, ordering_key)
        except BaseException as exc:
            if span is not None and spans is not None:
                spans.sent(span, event_ids, exc)
            raise
        if span is not None and spans is not None:
            spans.sent(span, event_ids, None)
        metrics = self._metrics
        if metrics is not None and metrics.enabled and event_ids:
            series = self._published.get(event_type)
            if series is None:
                series = self._published[event_type] = metrics.publish_series(
                    self.service_name, event_type, self._system
                )
            series.events += len(event_ids)
            series.duration.observe(time.perf_counter() - started)
        return event_ids

    async def _sample_backlogs(self, metrics: Metrics) -> None:
        """Every ``backlog_interval``: each group's pending and lag, and its events in flight."""
        while True:
            consumers = list(self._consumers)
            backlogs = await asyncio.gather(
                *(backlog_of(c.subscription) for c in consumers), return_exceptions=True
            )
            for consumer, backlog in zip(consumers, backlogs, strict=True):
                series = metrics.consumer_series(
                    self.service_name, consumer.route.event_type, consumer.group, self._system
                )
                series.in_flight = consumer.in_flight
                if isinstance(backlog, Backlog):
                    series.pending, series.lag = backlog.pending, backlog.lag
                elif not isinstance(backlog, Exception):
                    raise backlog  # a cancellation
                # a broker in trouble: the last sample stays; stats() logs the trouble
            await asyncio.sleep(metrics.backlog_interval)
