"""The line pipeline behind :mod:`quantum_core.logs`: processors, renderers, configuration.

Why a module of its own: this is how a line is made (the fixed keys in order, redaction,
exceptions, JSON), and it is the hot path. :mod:`quantum_core._logger` only knows which
configuration is active and hands out loggers; everything here is internal.

Our loggers' lines are made by one closure per logger and level (:meth:`StreamConfig.assemble`);
standard-library records by structlog's ``ProcessorFormatter`` with the same steps as
processors. Both share the timestamp, exception, redaction and rendering code below.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, TextIO

import structlog
from pydantic_core import to_json
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, Processor, WrappedLogger

from . import _span_ids
from ._redaction import redact_fields, redact_mapping, redact_text, redact_value
from .tracing import trace_context

_current_trace_id: Final = trace_context.get
_PACKAGE: Final = __name__.rpartition(".")[0]
# A logging call passes through these modules; a ``stack`` starts at the caller's frame.
OUR_MODULES: Final = [
    f"{_PACKAGE}.logs",
    f"{_PACKAGE}._logger",
    __name__,
    f"{_PACKAGE}._log_stdlib",
    f"{_PACKAGE}._trading_log",
]

# --- processors ---------------------------------------------------------------------------

# Formatting a timestamp is a visible share of a line's cost: strftime runs once a second,
# the text once a millisecond. Each cache is one tuple, so a thread sees a consistent pair.
_MILLIS: Final = tuple(f".{ms:03d}Z" for ms in range(1000))
_second: tuple[int, str] = (-1, "")
_millisecond: tuple[int, str] = (-1, "")


def _utc_timestamp(epoch: float) -> str:
    """Format ``epoch`` (seconds) as ``2025-12-01T12:00:00.000Z``."""
    global _second, _millisecond
    millis = int(epoch * 1000)
    cached_millis, text = _millisecond
    if millis != cached_millis:
        whole, fraction = divmod(millis, 1000)
        cached_whole, prefix = _second
        if whole != cached_whole:
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
            _second = (whole, prefix)
        text = prefix + _MILLIS[fraction]
        _millisecond = (millis, text)
    return text


def current_span_ids() -> tuple[str, str] | None:
    """The current OpenTelemetry span's (trace id, span id), once tracing is on; else None."""
    span_source = _span_ids.current
    return None if span_source is None else span_source()


def _stdlib_head(service: str) -> Processor:
    """Same keys for a standard-library record; ``extra={"trace_id"/"domain": ...}`` count."""

    def head(_logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        record: logging.LogRecord = event_dict["_record"]
        fixed: dict[str, Any] = {"service": service, "logger": record.name}
        domain = getattr(record, "domain", None)
        if domain is not None:
            fixed["domain"] = domain
        trace_id = getattr(record, "trace_id", None)
        span_ids = None
        if trace_id is None:
            span_ids = current_span_ids()
            trace_id = _current_trace_id() if span_ids is None else span_ids[0]
        if trace_id is not None:
            fixed["trace_id"] = trace_id
        if span_ids is not None:
            fixed["span_id"] = span_ids[1]
        line = {
            "event": event_dict.pop("event", None),
            "level": method_name,
            "timestamp": _utc_timestamp(record.created),
            **fixed,
        }
        line.update(event_dict)
        return line

    return head


def _redact(_logger: WrappedLogger, _method_name: str, event_dict: EventDict) -> EventDict:
    return redact_mapping(event_dict)


def unknown_to_text(value: Any) -> str:
    """Serialise what JSON does not know as its (redacted) ``str``; never raise."""
    try:
        return redact_text(str(value))
    except Exception:  # a broken __str__ must not break the log call
        return f"<unprintable {type(value).__name__}>"


def _render_json(_logger: WrappedLogger, _method_name: str, event_dict: EventDict) -> bytes:
    # fallback= does what serialize_unknown=True does (str of odd objects), plus redaction.
    try:
        return to_json(event_dict, fallback=unknown_to_text, inf_nan_mode="strings")
    except Exception:  # e.g. invalid UTF-8 inside a model: degrade to text values
        safe = {str(key): unknown_to_text(value) for key, value in event_dict.items()}
        return json.dumps(safe).encode()


def _render_json_text(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> str:
    return _render_json(logger, method_name, event_dict).decode()


_EXCEPTION_AS_DICT: Final = structlog.processors.ExceptionRenderer(
    ExceptionDictTransformer(show_locals=False)  # locals can hold secrets
)
_STACK_INFO: Final = structlog.processors.StackInfoRenderer(additional_ignores=OUR_MODULES)

# --- configuration ------------------------------------------------------------------------


def _utf8_buffer(stream: TextIO) -> Any:
    """Return the binary buffer under ``stream`` if UTF-8 bytes may be written to it."""
    try:
        buffer = getattr(stream, "buffer", None)
        encoding = codecs.lookup(stream.encoding).name if buffer is not None else ""
    except (AttributeError, LookupError, TypeError, ValueError):
        return None
    return buffer if encoding == "utf-8" else None


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


# A logger method as the pipeline sees it: the event, the ``%`` arguments, the fields.
Emit = Callable[[Any, tuple[Any, ...], dict[str, Any]], None]


def _nop(_event: Any, _args: tuple[Any, ...], _fields: dict[str, Any]) -> None:
    """A level below the configured one: the call costs a bare return."""


def interpolate(event: Any, args: tuple[Any, ...]) -> Any:
    """``%``-format like structlog and stdlib: one non-empty mapping is used by key."""
    if len(args) == 1 and isinstance(args[0], Mapping) and args[0]:
        return event % args[0]
    return event % args


class Emitters:
    """One logger's level methods under one configuration; ``config`` tells it is stale."""

    __slots__ = ("config", "critical", "debug", "error", "exception", "info", "warning")

    def __init__(self, config: object, methods: Mapping[str, Emit]) -> None:
        self.config = config
        self.debug = methods["debug"]
        self.info = methods["info"]
        self.warning = methods["warning"]
        self.error = methods["error"]
        self.critical = methods["critical"]
        error = self.error

        def exception(event: Any, args: tuple[Any, ...], fields: dict[str, Any]) -> None:
            fields.setdefault("exc_info", True)
            error(event, args, fields)

        self.exception = _nop if error is _nop else exception


# What a Logger holds before its first call: its config is never the active one.
NOT_BUILT: Final = Emitters(
    object(), dict.fromkeys(("debug", "info", "warning", "error", "critical"), _nop)
)

LEVEL_NAMES: Final = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warning",
    logging.ERROR: "error",
    logging.CRITICAL: "critical",
}


class StreamConfig:
    """One configuration; :class:`Logger` proxies compare its identity to see it is stale.

    A line of our loggers is made by one closure per logger and level (:meth:`_emitter`),
    not by a chain of structlog processors: the same steps in the same order, without the
    calls between them.
    """

    def __init__(self, service: str, level: int, json_output: bool, stream: TextIO) -> None:
        self.service = service
        self.level = level
        self.stream = stream
        buffer = _utf8_buffer(stream) if json_output else None
        if buffer is not None:  # text written earlier must not land after our bytes
            with contextlib.suppress(Exception):
                stream.flush()
        self.binary = buffer is not None
        out: Any = buffer if buffer is not None else stream
        self._write: Callable[[Any], object] = out.write
        self._flush: Callable[[], object] = out.flush
        self._lock = threading.Lock()  # one line, one write: threads never mix two lines
        self._newline: str | bytes = b"\n" if buffer is not None else "\n"
        renderer: Processor
        if json_output:
            exceptions: Processor = _EXCEPTION_AS_DICT
            renderer = _render_json if buffer is not None else _render_json_text
            text_renderer: Processor = _render_json_text
        else:  # format first, so that redaction covers the traceback text too
            exceptions = structlog.processors.format_exc_info
            renderer = text_renderer = structlog.dev.ConsoleRenderer(
                colors=_is_tty(stream), exception_formatter=structlog.dev.plain_traceback
            )
        self._exceptions = exceptions
        self._renderer = renderer
        # Redaction runs after exception formatting (tracebacks are covered) and before the
        # head adds the fixed keys, which are ours and need no checking on every line.
        self.formatter = structlog.stdlib.ProcessorFormatter(
            processors=[
                exceptions,
                _redact,
                _stdlib_head(service),
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                text_renderer,
            ],
        )

    def assemble(self, name: str, domain: str | None, context: Mapping[str, Any]) -> Emitters:
        """Return the level methods of logger ``name`` with bound fields ``context``."""
        fixed: dict[str, Any] = {"service": self.service, "logger": name}
        if domain is not None:
            fixed["domain"] = domain
        # The event of the call always wins over a bound one, as with structlog.
        bound = {key: value for key, value in context.items() if key != "event"}
        methods = {
            level_name: self._emitter(level_name, fixed, bound) if level >= self.level else _nop
            for level, level_name in LEVEL_NAMES.items()
        }
        return Emitters(self, methods)

    def _emitter(self, level_name: str, fixed: dict[str, Any], context: dict[str, Any]) -> Emit:
        """Make the method that writes one line at ``level_name``; everything is bound once.

        The steps, in order: ``%``-interpolation, bound fields then the call's, exception
        and stack, redaction of everything the caller gave (not of the fixed keys, which are
        ours), the fixed keys first, rendering, one write and a flush.
        """
        write, flush, lock, newline = self._write, self._flush, self._lock, self._newline
        # Processors type their results loosely; ours return the dict, the text or bytes.
        render: Callable[..., Any] = self._renderer
        exceptions: Callable[..., Any] = self._exceptions
        stack: Callable[..., Any] = _STACK_INFO
        sink = self  # processors take a logger argument; ours ignore it
        now, timestamp, current_trace_id = time.time, _utc_timestamp, _current_trace_id

        def emit(event: Any, args: tuple[Any, ...], fields: dict[str, Any]) -> None:
            if args:
                event = interpolate(event, args)
            if context:
                fields = {**context, **fields}
            if "exc_info" in fields:
                fields = exceptions(sink, level_name, fields)
            if "stack_info" in fields:
                fields = stack(sink, level_name, fields)
            trace_id = fields.pop("trace_id", None)
            span_ids = None
            if trace_id is None:
                span_source = _span_ids.current  # set once an OpenTelemetry SDK is in use
                if span_source is not None:
                    span_ids = span_source()
                trace_id = current_trace_id() if span_ids is None else span_ids[0]
            else:
                trace_id = redact_value(trace_id)
            line = {
                "event": redact_value(event),
                "level": level_name,
                "timestamp": timestamp(now()),
                **fixed,
            }
            if trace_id is not None:
                line["trace_id"] = trace_id
            if span_ids is not None:
                line["span_id"] = span_ids[1]
            if fields:
                line.update(redact_fields(fields))
            text = render(sink, level_name, line) + newline
            with lock:
                write(text)
                flush()

        return emit


class RootHandler(logging.StreamHandler[TextIO]):
    """Our handler on the root logger; its class tells a reconfigure which one to replace."""
