"""One running subscription: fetch, decode, dispatch with bounded concurrency, retry, acknowledge.

Without an ordering key, events are handled concurrently up to the subscription's limit, by
at most that many worker tasks that take events in the order they were fetched; a worker
whose handler finishes without waiting goes straight on to the next event, so a batch of
quick handlers costs a task switch or two, not a task per event. A worker wakes another
only when events are left behind it. With an ordering key, events that share a key wait for
each other in the order they were fetched (the publish order, on one consumer), while other
keys go on. A handler runs in its worker's (or its key's) task, but in a context of its
own, made afresh for each run (``_fresh_context.py``): the trace and ``current_event()`` of
its event, and nothing a handler before it set.

A handler that fails is tried again after a backoff (``_retry.py``). While it waits, the
event holds no concurrency slot and no place in the fetch buffer: it is *parked*, together
with the events of its key queued behind it, so it delays nothing else. Parked events are
bounded too (``_PARKED_PER_SLOT``); beyond that the consumer stops fetching until some finish.
A dead-letter write the broker refuses is tried again the same way, parked between tries,
until it goes or ``stop()`` comes (``_outage.py`` spaces the tries and logs the outage once).

Nothing a handler or an ordering key function does stops the consumer: an error is a failed
attempt, a key that cannot be computed or hashed sets its event aside as a dead letter, and
a fetch loop that dies of a bug of ours is logged at error level and started again. Only
``SystemExit`` and ``KeyboardInterrupt`` from a handler go through: the process is ending.

An idempotent route (``subscribe(..., idempotent=True)``) looks up the group's
handled-record of an event before its first attempt, and writes it between the handler's
return and the ack: a redelivery of a completed event is acknowledged without running it.

Throughput: a consumer whose buffer is full waits until half a read's worth of room is free
before it reads again, so reads stay large; acks of handlers that finished together share
one call (``_acks.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from dataclasses import dataclass, field
from typing import Any

from ..errors import DeliveryGoneError
from ..logs import get_logger
from ..observability._gate import spans as tracing_spans
from ..observability._metrics import BUCKETS, Metrics
from ..tracing import adopt_trace_id
from ._acks import AckBatcher
from ._deadlines import Deadlines
from ._limit import Limit
from ._outage import Outage
from ._retry import HandlerTimeoutError, RetryPolicy, call_handler
from .abilities import HandledRecords, handled_records
from .context import enter_event
from .dead_letters import REPLAY_FOR, dead_letter_record, describe_error
from .envelope import Envelope, decode
from .stats import Counters, SubscriptionStats
from .transport import Backlog, Delivery, Subscription

__all__ = ["Consumer", "EventHandler", "KeyFunction", "Route"]

EventHandler = Callable[[dict[str, Any]], Awaitable[Any]]
"""An async function taking the event's payload dict."""

KeyFunction = Callable[[dict[str, Any]], Hashable | None]

_log = get_logger("quantum_core.bus")
_BUFFER_PER_SLOT = 4  # keyed routes fetch ahead, so one busy key does not idle the others
_PARKED_PER_SLOT = 64  # events waiting for a retry (or behind one, in its key) per slot
_PARKED_MIN = 256
_STOP_GRACE = 0.5  # seconds stop() may take beyond its timeout: acks, cancellations
_FLUSH_MIN = 0.1  # seconds the acks of handlers that finished at the deadline get at least
_LOOP_RESTART = 1.0  # seconds before a fetch loop that died of a bug starts again


@dataclass(frozen=True, slots=True)
class Route:
    """What one subscription asked for."""

    event_type: str
    handler: EventHandler
    name: str
    concurrency: int
    retry: RetryPolicy
    ordering_key: KeyFunction | None = None
    from_beginning: bool = False
    idempotency_ttl: float | None = None  # None: not idempotent


@dataclass(slots=True)
class _Lane:
    """The events of one ordering key waiting behind the one being handled."""

    queue: deque[tuple[Delivery, Envelope]] = field(default_factory=deque)
    parked: bool = False


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
        system: str = "memory",
        metrics: Metrics | None = None,
    ) -> None:
        self.route = route
        self.subscription = subscription
        # Checked by EventBus.start() for an idempotent route; looked up once, not per event.
        self._records = handled_records(subscription)
        self.group = f"{service_name}:{route.name}"
        self.counters = Counters()
        self._system = system  # messaging.system of the spans, transport label of the metrics
        self._series = (
            None
            if metrics is None
            else metrics.consumer_series(service_name, route.event_type, self.group, system)
        )
        self._service_name = service_name
        self._read_count = read_count
        self._poll_seconds = poll_seconds
        self._slots = Limit(route.concurrency)
        self._buffer_limit = route.concurrency * (_BUFFER_PER_SLOT if route.ordering_key else 1)
        # Once full, wait until half a read's worth is free: one large read, not many small.
        self._fetch_min = max(1, min(read_count, self._buffer_limit) // 2)
        self._acks = AckBatcher(subscription, route.name)
        self._deadlines = Deadlines()
        self._park_limit = max(_PARKED_MIN, route.concurrency * _PARKED_PER_SLOT)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._lanes: dict[Hashable, _Lane] = {}
        self._ready: deque[tuple[Delivery, Envelope]] = deque()  # unkeyed, for a worker
        self._idle: deque[asyncio.Future[None]] = deque()  # one per worker waiting for work
        self._workers = 0
        self._waking = 0  # workers woken or started that have not looked at _ready yet
        self._retrying_workers = 0  # workers waiting to retry: they hold no slot
        self._buffered = 0  # fetched, not finished, not parked
        self._parked = 0
        self._dead_letters_given_up = 0  # by stop(), while their write was refused
        self._room = asyncio.Event()
        self._stopping = False
        self._stopped = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        # What every handler run starts from: copied per run, never entered itself.
        self._handler_context = contextvars.Context()

    @property
    def in_flight(self) -> int:
        """Events fetched and not yet finished (handled, dead-lettered or abandoned)."""
        return self._buffered + self._parked

    def stats(self, backlog: Backlog) -> SubscriptionStats:
        """The counters so far, with the group's ``backlog``."""
        c = self.counters
        return SubscriptionStats(
            event_type=self.route.event_type,
            name=self.route.name,
            handled=c.handled,
            failed=c.failed,
            retried=c.retried,
            dead_lettered=c.dead_lettered,
            retrying=c.retrying,
            pending=backlog.pending,
            lag=backlog.lag,
            skipped_duplicates=c.skipped_duplicates,
        )

    def start(self) -> None:
        """Begin fetching in a task of its own."""
        # A context of its own: no trace or event of whoever called start() leaks into it.
        self._loop_task = asyncio.create_task(
            self._fetch_until_stopped(),
            name=f"quantum_core consumer {self.route.name}",
            context=contextvars.Context(),
        )

    async def stop(self, timeout: float) -> int:
        """Stop fetching, give handlers in flight ``timeout`` seconds, cancel the rest.

        Events waiting for a retry (or for their dead-letter write to be tried again) are
        given up at once. Returns how many handlers were cancelled; their events, and the
        given-up ones, stay unacknowledged. Returns once the events whose handlers finished
        are acknowledged, or their acks were given up: within ``timeout`` plus half a
        second, whatever the broker does.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            return await self._stop(deadline, deadline + _STOP_GRACE)
        finally:
            await self._acks.flush(max(deadline + _STOP_GRACE - loop.time(), _FLUSH_MIN))

    async def _stop(self, deadline: float, hard_deadline: float) -> int:
        self._stopping = True
        self._stopped.set()
        if self.counters.retrying:
            _log.warning(
                "event_retries_given_up_on_stop",
                handler=self.route.name,
                events=self.counters.retrying,
            )
        loop = asyncio.get_running_loop()
        loop_task = self._loop_task
        if loop_task is not None:
            self._room.set()
            loop_task.cancel()
            wait = min(self._poll_seconds + 1, max(hard_deadline - loop.time(), 0))
            await asyncio.wait({loop_task}, timeout=wait)
            if not loop_task.done():
                _log.warning("consumer_loop_did_not_stop", handler=self.route.name)
        while self._idle:  # idle workers end; busy ones go on with _ready
            waiter = self._idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self._waking += 1
        while self._in_flight and (left := deadline - loop.time()) > 0:
            await asyncio.wait(set(self._in_flight), timeout=left)  # workers may wake others
        unfinished = set(self._in_flight)
        for task in unfinished:
            task.cancel()
        if unfinished:  # a handler that swallows its cancellation is not waited for
            await asyncio.wait(unfinished, timeout=max(hard_deadline - loop.time(), _FLUSH_MIN))
            if not all(task.done() for task in unfinished):
                _log.warning("event_handlers_ignored_cancellation", handler=self.route.name)
        if self._dead_letters_given_up:
            _log.warning(
                "dead_letters_given_up_on_stop",
                handler=self.route.name,
                events=self._dead_letters_given_up,
                left="pending on the broker, delivered again to a consumer of the group",
            )
        never_started = len(self._ready)  # left for a worker that was cancelled
        if never_started:
            self._buffered -= never_started
            self._ready.clear()
        return len(unfinished) + never_started

    async def _fetch_until_stopped(self) -> None:
        """Run the fetch loop; one that dies of a bug is logged, then started again."""
        while not self._stopping:
            try:
                await self._fetch_loop()
            except Exception:
                _log.exception(
                    "consumer_loop_failed", handler=self.route.name, restart_in=_LOOP_RESTART
                )
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_LOOP_RESTART):
                        await self._stopped.wait()

    async def _fetch_loop(self) -> None:
        outage = Outage.of_fetches(self.route.name)
        while not self._stopping:
            free = self._buffer_limit - self._buffered
            if free < self._fetch_min or self._parked >= self._park_limit:
                self._room.clear()
                await self._room.wait()
                continue
            try:
                deliveries = await self.subscription.fetch(
                    min(free, self._read_count), self._poll_seconds
                )
            except Exception as exc:  # a consumer outlives a broker hiccup
                await asyncio.sleep(outage.failed(exc))
                continue
            outage.ended()
            if self._stopping:  # fetched while stopping: left pending for another consumer
                return
            if self._series is not None:
                self._series.received += len(deliveries)
            for delivery in deliveries:
                self._dispatch(delivery)

    def _dispatch(self, delivery: Delivery) -> None:
        self._buffered += 1
        try:
            envelope = decode(delivery.data)
        except ValueError as exc:
            _log.error(
                "event_malformed_set_aside",
                event_type=self.route.event_type,
                handler=self.route.name,
                error=str(exc),
            )
            self._spawn(self._set_aside(delivery, None, exc))
            return
        replayed_for = envelope.headers.get(REPLAY_FOR)
        if replayed_for is not None and replayed_for != self.group:
            self._skip(delivery)  # replayed for another group's handler
            return
        key_function = self.route.ordering_key
        key: Hashable | None = None
        lane: _Lane | None = None
        if key_function is not None:
            try:
                key = key_function(envelope.payload)
                if key is not None:
                    lane = self._lanes.get(key)  # hashes the key: unhashable raises here
            except Exception as exc:  # the key function's bug is this event's failure
                self._spawn(self._set_aside(delivery, envelope, self._key_failed(envelope, exc)))
                return
        if key is None:
            self._ready.append((delivery, envelope))
            self._wake()
            return
        if lane is not None:  # the key's worker is busy: wait in line
            lane.queue.append((delivery, envelope))
            if lane.parked:
                self._park(1)
            return
        self._lanes[key] = lane = _Lane()
        lane.queue.append((delivery, envelope))
        self._spawn(self._drain_lane(key, lane))

    def _key_failed(self, envelope: Envelope, error: Exception) -> ValueError:
        """Log why the event's ordering key could not be had; the error to dead-letter it with.

        Handled without its key, it could overtake the events of its key: set aside, it
        keeps the order promise, and a replay after the key function is fixed handles it.
        """
        _log.error(
            "ordering_key_failed",
            handler=self.route.name,
            event_id=envelope.id,
            trace_id=envelope.trace_id,
            exc_info=error,
        )
        failure = ValueError(
            f"the ordering_key of {self.route.name!r} failed for this event: "
            f"{type(error).__name__}: {describe_error(error)}; it must return a hashable value "
            "(such as a str, int or tuple) or None for no key"
        )
        failure.__cause__ = error
        return failure

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._in_flight.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if task.cancelled():
            return
        error = task.exception()  # read: asyncio prints what nobody read, at exit
        if error is not None and not isinstance(error, SystemExit | KeyboardInterrupt):
            _log.error("consumer_task_failed", handler=self.route.name, exc_info=error)

    def _finished(self) -> None:
        self._buffered -= 1
        self._room.set()

    def _park(self, count: int) -> None:
        self._buffered -= count
        self._parked += count
        self._room.set()

    def _unpark(self, count: int) -> None:
        self._parked -= count
        self._buffered += count

    def _wake(self) -> None:
        """Put one more worker on ``_ready``; it wakes the next if events are left behind it."""
        if self._waking:
            return
        while self._idle:
            waiter = self._idle.popleft()
            if not waiter.done():  # else its worker was cancelled
                waiter.set_result(None)
                self._waking += 1
                return
        if self._workers - self._retrying_workers < self.route.concurrency:
            self._workers += 1
            self._waking += 1
            self._spawn(self._work())

    async def _work(self) -> None:
        """Handle events from ``_ready`` until there are none; wait for more, or end."""
        self._waking -= 1
        try:
            while True:
                if not self._ready:
                    surplus = self._workers - self._retrying_workers > self.route.concurrency
                    if self._stopping or surplus:
                        return
                    await self._wait_for_work()
                    continue
                delivery, envelope = self._ready.popleft()
                if self._ready:
                    self._wake()
                try:
                    await self._handle(delivery, envelope, None)
                finally:
                    self._finished()
        finally:
            self._workers -= 1

    async def _wait_for_work(self) -> None:
        """Wait idle until ``_wake`` (or ``stop()``) sets this worker's future."""
        waiter = asyncio.get_running_loop().create_future()
        self._idle.append(waiter)
        try:
            await waiter
        finally:
            if waiter.done() and not waiter.cancelled():
                self._waking -= 1

    async def _drain_lane(self, key: Hashable, lane: _Lane) -> None:
        try:
            while lane.queue:
                delivery, envelope = lane.queue.popleft()
                try:
                    done = await self._handle(delivery, envelope, lane)
                finally:
                    self._finished()
                if not done:  # stop() came during a retry: the rest waits for a replica
                    break
        finally:
            if lane.queue:  # what waited in line stays unacknowledged
                self._buffered -= len(lane.queue)
                lane.queue.clear()
                self._room.set()
            del self._lanes[key]

    async def _handle(self, delivery: Delivery, envelope: Envelope, lane: _Lane | None) -> bool:
        """Attempt until handled or out of attempts, then acknowledge or set aside.

        Returns False when ``stop()`` cut the retries short: the event stays unacknowledged.
        """
        policy = self.route.retry
        attempt = delivery.delivery_count
        last = policy.last_attempt(attempt)
        checked = self.route.idempotency_ttl is None
        spans = tracing_spans()  # None unless an OpenTelemetry SDK is configured
        series = self._series  # None unless Prometheus metrics are on
        span = None
        started = 0.0
        if not checked:  # the record store's log lines carry the event's trace
            adopt_trace_id(envelope.trace_id)  # validated by decode()
        while True:
            error: BaseException | None = None
            if not checked:  # an unreachable record store fails the attempt, like the handler
                try:
                    seen = await self._handled_records().was_handled(envelope.id)
                except Exception as exc:
                    error = exc
                else:
                    if seen:
                        await self._skip_duplicate(delivery, envelope)
                        return True
                    checked = True
            if error is None:
                if not self._slots.take_now():  # a free slot costs no coroutine
                    await self._slots.take()
                try:
                    context = self._handler_context.copy()  # about 40 ns: nothing leaks
                    context.run(enter_event, envelope, attempt, self.route.name)
                    if spans is not None:  # the attempt's span, current in the handler
                        span = spans.start_process(
                            self._system,
                            self.route.event_type,
                            self.group,
                            envelope.id,
                            envelope.trace_id,
                            envelope.headers,
                            attempt,
                        )
                        context.run(spans.enter, span)
                    if series is not None:
                        started = time.perf_counter()
                    error = await call_handler(
                        self.route.handler,
                        envelope.payload,
                        policy.timeout,
                        self._deadlines,
                        context,
                    )
                except BaseException as exc:  # stop() cancelled it: the span still ends
                    if span is not None and spans is not None:
                        spans.processed(span, exc, None, dead_letter=False)
                    raise
                finally:
                    self._slots.give()
                if series is not None:  # Histogram.observe, inline: it runs for every event
                    took = time.perf_counter() - started
                    histogram = series.duration
                    histogram.counts[bisect_left(BUCKETS, took)] += 1
                    histogram.sum += took
            if error is None:
                if series is not None:
                    series.ok += 1
                if span is not None and spans is not None:
                    spans.processed(span, None, None, dead_letter=False)
                self.counters.handled += 1
                ttl = self.route.idempotency_ttl
                if ttl is not None:  # only idempotent routes keep records; others skip the call
                    await self._record_handled(envelope, ttl)
                self._acks.add(delivery)
                return True
            # The handler ran in a context of its own: the lines from here on are the
            # worker's, and carry the event's trace too (set only now: the success path
            # above logs nothing, and an event costs one trace change, not two).
            adopt_trace_id(envelope.trace_id)
            self.counters.failed += 1
            retry_in = None if attempt >= last or self._stopping else policy.delay(attempt)
            if series is not None:
                if isinstance(error, HandlerTimeoutError):
                    series.timed_out += 1
                elif attempt >= last:
                    series.dead_lettered += 1
                else:
                    series.retried += 1
            if span is not None and spans is not None:
                spans.processed(span, error, retry_in, dead_letter=attempt >= last)
                span = None
            log = _log.error if attempt >= last else _log.warning
            log(
                "event_handler_failed",
                event_id=envelope.id,
                event_type=envelope.type,
                handler=self.route.name,
                attempt=attempt,
                max_attempts=last,
                retry_in=retry_in,
                exc_info=error,
            )
            if attempt >= last:
                return await self._dead_letter(
                    delivery, envelope, error, attempt, lane, worker=lane is None
                )
            if retry_in is None or not await self._wait_to_retry(retry_in, lane):
                return False  # stopping: left unacknowledged, for another replica
            self.counters.retried += 1
            attempt += 1

    async def _wait_to_retry(self, delay: float, lane: _Lane | None) -> bool:
        """Wait ``delay`` seconds for the next attempt; False if ``stop()`` came meanwhile."""
        self.counters.retrying += 1
        try:
            return await self._park_for(delay, lane, worker=lane is None)
        finally:
            self.counters.retrying -= 1

    async def _park_for(self, delay: float, lane: _Lane | None, *, worker: bool) -> bool:
        """Wait ``delay`` seconds holding nothing; False if ``stop()`` came meanwhile.

        With a ``lane``, the events of its key wait too, parked; a ``worker`` lets another
        start meanwhile.
        """
        self._park(1 + (len(lane.queue) if lane else 0))
        if lane is not None:
            lane.parked = True
        elif worker:
            self._retrying_workers += 1
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stopped.wait()
        finally:
            if lane is not None:
                lane.parked = False
            elif worker:
                self._retrying_workers -= 1
            self._unpark(1 + (len(lane.queue) if lane else 0))
        return not self._stopping

    async def _record_handled(self, envelope: Envelope, ttl: float) -> None:
        """For an idempotent route: remember the handler completed, before acknowledging."""
        try:
            await self._handled_records().mark_handled((envelope.id,), ttl)
        except Exception:  # acknowledged anyway: only a crash before the ack would rerun it
            _log.exception(
                "event_handled_record_failed", handler=self.route.name, event_id=envelope.id
            )

    def _handled_records(self) -> HandledRecords:
        if self._records is None:  # EventBus.start() refuses an idempotent route without
            raise TypeError(f"{type(self.subscription).__name__} keeps no handled-records")
        return self._records

    async def _skip_duplicate(self, delivery: Delivery, envelope: Envelope) -> None:
        self.counters.skipped_duplicates += 1
        _log.info(
            "event_duplicate_skipped",
            event_id=envelope.id,
            event_type=envelope.type,
            handler=self.route.name,
            attempt=delivery.delivery_count,
        )
        self._acks.add(delivery)

    def _skip(self, delivery: Delivery) -> None:
        self._acks.add(delivery)  # a failed ack leaves it pending: it is skipped again
        self._finished()

    async def _set_aside(
        self, delivery: Delivery, envelope: Envelope | None, error: Exception
    ) -> None:
        """Dead-letter an event no handler will see: unreadable, or without a usable key."""
        try:
            if envelope is not None:
                adopt_trace_id(envelope.trace_id)
            await self._dead_letter(
                delivery, envelope, error, delivery.delivery_count, None, worker=False
            )
        finally:
            self._finished()

    async def _dead_letter(
        self,
        delivery: Delivery,
        envelope: Envelope | None,
        error: BaseException,
        attempts: int,
        lane: _Lane | None,
        *,
        worker: bool,
    ) -> bool:
        """Set an event aside with why, so it is neither lost nor redelivered forever.

        A write the broker refuses is tried again, parked between tries like a retry, until
        it goes, unless the transport says the delivery is gone (``DeliveryGoneError``: it
        comes again). Returns False when ``stop()`` came first: the event stays
        unacknowledged.
        """
        record = dead_letter_record(
            service=self._service_name,
            handler=self.route.name,
            event_type=self.route.event_type,
            envelope=envelope,
            data=delivery.data,
            attempts=attempts,
            error=error,
        )
        outage: Outage | None = None
        while True:
            try:
                await self.subscription.dead_letter(delivery, record)
            except DeliveryGoneError as exc:  # it comes again, and is set aside then
                _log.warning(
                    "dead_letter_handed_back",
                    handler=self.route.name,
                    event_id=envelope.id if envelope else None,
                    error=describe_error(exc),
                    then="delivered again, to this consumer or another one of the group",
                )
                return True
            except Exception as exc:
                if outage is None:
                    outage = Outage(
                        "dead_letter",
                        recovered="dead_letter_written",
                        handler=self.route.name,
                        event_id=envelope.id if envelope else None,
                    )
                if not await self._park_for(outage.failed(exc), lane, worker=worker):
                    self._dead_letters_given_up += 1  # left unacknowledged, for a replica
                    return False
                continue
            if outage is not None:
                outage.ended()
            self.counters.dead_lettered += 1
            if self._series is not None:
                self._series.dead_letters += 1
            return True
