"""The spans themselves, following OpenTelemetry's messaging semantic conventions.

Imported only once an SDK is configured (``_gate.py``), so it may import the API freely.

* ``publish``/``publish_many``: a PRODUCER span ``send {event type}``; its context travels in
  the event's headers as W3C ``traceparent``/``tracestate`` (through the application's
  propagators), on every transport, as the envelope carries the headers.
* Each handler attempt: a CONSUMER span ``process {event type}`` whose parent is the
  producer's context read back from the headers; the handler runs with it current, so its
  own spans and log lines belong to it. A failed attempt records the exception and sets
  ``error.type``; the retry it leads to, or the dead letter, is a span event.
* One id for a flow: an event's ``trace_id`` is the producer span's trace id (unless the
  caller passed one), and when no span is current but a W3C trace id is (``trace_context``,
  or the event of a publisher without an SDK), the span joins that trace, so the trace id in
  log lines, events and the tracing backend is the same one.

A ``traceparent`` that cannot be read is ignored with a debug line: the attempt starts a new
trace, and the handler runs as usual.
"""

from __future__ import annotations

import os
import re
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)

from .. import _span_ids
from .._redaction import redact_text
from .._version import __version__
from ..logs import get_logger
from ..tracing import adopt_trace_id, trace_context

__all__ = ["Spans", "show_span_in_log_lines"]

_log = get_logger("quantum_core.bus")
_W3C_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_EMPTY = otel_context.Context()
_SHOWN_HEADER_CHARS = 100


def show_span_in_log_lines() -> None:
    """From now on, a log line written while a span is current carries its ids."""
    _span_ids.current = _current_ids


def _current_ids() -> tuple[str, str] | None:
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return f"{span_context.trace_id:032x}", f"{span_context.span_id:016x}"


def _joined(trace_id: str | None) -> otel_context.Context:
    """A context whose remote parent has quantum_core's W3C ``trace_id``, to join its trace.

    The parent's span id is made up: the tracing backend shows the span as the trace's
    first, with a parent it never received.
    """
    if not isinstance(trace_id, str) or not _W3C_TRACE_ID.fullmatch(trace_id):
        return _EMPTY
    if trace_id == "0" * 32:
        return _EMPTY
    parent = SpanContext(
        trace_id=int(trace_id, 16),
        span_id=int.from_bytes(os.urandom(8), "big") or 1,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    return trace.set_span_in_context(NonRecordingSpan(parent), _EMPTY)


def error_type(error: BaseException) -> str:
    """``error.type``: the exception's fully qualified class name."""
    cls = type(error)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


class Spans:
    """Makes quantum_core's spans with one tracer."""

    def __init__(self, provider: Any) -> None:
        self.tracer = provider.get_tracer("quantum_core", __version__)

    # -- publishing ---------------------------------------------------------------------

    def start_send(
        self,
        system: str,
        event_type: str,
        trace_id: str | None,
        headers: dict[str, str] | None,
        count: int,
        batch: bool,
    ) -> tuple[Span, str | None, dict[str, str] | None]:
        """Start ``send {event_type}``; return it, the event's trace id and its headers."""
        parent = otel_context.get_current()
        if not trace.get_current_span(parent).get_span_context().is_valid:
            parent = _joined(trace_id or trace_context.get())
        attributes: dict[str, Any] = {
            "messaging.system": system,
            "messaging.destination.name": event_type,
            "messaging.operation.name": "send",
            "messaging.operation.type": "send",
        }
        if batch:
            attributes["messaging.batch.message_count"] = count
        span = self.tracer.start_span(
            f"send {event_type}", context=parent, kind=SpanKind.PRODUCER, attributes=attributes
        )
        span_context = span.get_span_context()
        if not span_context.is_valid or not isinstance(headers, dict | None):
            return span, trace_id, headers  # bad headers: encoding says what is wrong
        carried = dict(headers) if headers else {}
        propagate.inject(carried, context=trace.set_span_in_context(span, parent))
        if trace_id is None:
            trace_id = f"{span_context.trace_id:032x}"
        return span, trace_id, carried

    @staticmethod
    def sent(span: Span, event_ids: list[str], error: BaseException | None) -> None:
        """End a ``send`` span: the event id of a single event, or the error."""
        if error is not None:
            _failed(span, error)
        elif len(event_ids) == 1 and span.is_recording():
            span.set_attribute("messaging.message.id", event_ids[0])
        span.end()

    # -- handling -----------------------------------------------------------------------

    def start_process(
        self,
        system: str,
        event_type: str,
        group: str,
        event_id: str,
        event_trace_id: str,
        headers: Mapping[str, str],
        attempt: int,
    ) -> Span:
        """Start ``process {event_type}`` for one attempt, child of the producer's span."""
        parent = _EMPTY
        try:
            parent = propagate.extract(headers, context=_EMPTY)
        except Exception as exc:  # a propagator's bug must not fail the handler
            _log.debug("event_trace_headers_unreadable", event_id=event_id, error=repr(exc))
        if not trace.get_current_span(parent).get_span_context().is_valid:
            traceparent = headers.get("traceparent")
            if traceparent is None:  # a publisher without an SDK: join its trace id
                parent = _joined(event_trace_id)
            else:
                _log.debug(
                    "event_traceparent_ignored",
                    event_id=event_id,
                    trace_id=event_trace_id,
                    traceparent=str(traceparent)[:_SHOWN_HEADER_CHARS],
                    then="a new trace starts for this attempt",
                )
                parent = _EMPTY
        span: Span = self.tracer.start_span(
            f"process {event_type}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": system,
                "messaging.destination.name": event_type,
                "messaging.consumer.group.name": group,
                "messaging.message.id": event_id,
                "messaging.operation.name": "process",
                "messaging.operation.type": "process",
                "quantum_core.attempt": attempt,
            },
        )
        return span

    @staticmethod
    def enter(span: Span) -> None:
        """Make ``span`` current in the handler's own context, and its trace the flow's.

        Run it in that context (``Context.run``): the context is thrown away after the
        attempt, so nothing needs detaching.
        """
        otel_context.attach(trace.set_span_in_context(span, _EMPTY))
        span_context = span.get_span_context()
        if span_context.is_valid:
            trace_id = f"{span_context.trace_id:032x}"
            if trace_id != trace_context.get():
                adopt_trace_id(trace_id)

    @staticmethod
    def processed(
        span: Span, error: BaseException | None, retry_in: float | None, dead_letter: bool
    ) -> None:
        """End a ``process`` span: ok, or failed with what follows (a retry, a dead letter)."""
        if error is not None:
            _failed(span, error)
            if dead_letter:
                span.add_event("dead_letter", {"quantum_core.reason": "out of attempts"})
            elif retry_in is not None:
                span.add_event("retry", {"quantum_core.retry_in_s": retry_in})
        span.end()

    # -- the policy store and the health checks ------------------------------------------

    @contextmanager
    def current(self, name: str, attributes: dict[str, Any]) -> Iterator[Span]:
        """A span of our own (a policy change, a health check), current inside the block.

        Its trace is the current span's, else ``trace_context``'s W3C id; inside the block
        ``trace_context`` has the span's trace id, so what it publishes and logs is one
        trace with it.
        """
        parent = otel_context.get_current()
        if not trace.get_current_span(parent).get_span_context().is_valid:
            parent = _joined(trace_context.get())
        span = self.tracer.start_span(name, context=parent, attributes=attributes)
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        span_context = span.get_span_context()
        trace_token = (
            trace_context.set(f"{span_context.trace_id:032x}") if span_context.is_valid else None
        )
        try:
            yield span
        except BaseException as exc:
            _failed(span, exc)
            raise
        finally:
            if trace_token is not None:
                trace_context.reset(trace_token)
            otel_context.detach(token)
            span.end()


def _failed(span: Span, error: BaseException) -> None:
    """Record ``error`` on ``span``, its message and traceback redacted like a log line's."""
    if span.is_recording():
        message = redact_text(str(error))
        span.record_exception(
            error,
            attributes={
                "exception.message": message,
                "exception.stacktrace": redact_text("".join(traceback.format_exception(error))),
            },
        )
        span.set_attribute("error.type", error_type(error))
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {message}"[:200]))
