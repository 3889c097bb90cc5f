"""The line pipeline behind :mod:`quantum_core.logs`: processors, renderers, configuration.

Why a module of its own: this is how a line is made (the fixed keys in order, redaction,
exceptions, JSON), and it is the hot path. :mod:`quantum_core.logs` only decides which
configuration is active and hands out loggers; everything here is internal.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import logging
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, TextIO, cast

import structlog
from pydantic_core import to_json
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

from ._redaction import redact_mapping, redact_text
from .tracing import trace_context

_current_trace_id: Final = trace_context.get
_PACKAGE: Final = __name__.rpartition(".")[0]
# A logging call passes through these modules; a ``stack`` starts at the caller's frame.
_OUR_MODULES: Final = [f"{_PACKAGE}.logs", __name__, f"{_PACKAGE}._trading_log"]

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


def _native_head(service: str, name: str, domain: str | None) -> Processor:
    """Put the fixed keys first, in the documented order, for one of our loggers."""
    fixed: dict[str, Any] = {"service": service, "logger": name}
    if domain is not None:
        fixed["domain"] = domain

    def head(_logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        trace_id = event_dict.pop("trace_id", None)
        if trace_id is None:
            trace_id = _current_trace_id()
        line = {
            "event": event_dict.pop("event", None),
            "level": method_name,
            "timestamp": _utc_timestamp(time.time()),
            **fixed,
        }
        if trace_id is not None:
            line["trace_id"] = trace_id
        line.update(event_dict)
        return line

    return head


def _stdlib_head(service: str) -> Processor:
    """Same keys for a standard-library record; ``extra={"trace_id"/"domain": ...}`` count."""

    def head(_logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        record: logging.LogRecord = event_dict["_record"]
        fixed: dict[str, Any] = {"service": service, "logger": record.name}
        domain = getattr(record, "domain", None)
        if domain is not None:
            fixed["domain"] = domain
        trace_id = getattr(record, "trace_id", None)
        if trace_id is None:
            trace_id = _current_trace_id()
        if trace_id is not None:
            fixed["trace_id"] = trace_id
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


def _prepare(exceptions: Processor) -> Processor:
    """Our loggers' steps before the head: exceptions and stack, then redaction, in one call."""

    def prepare(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        if "exc_info" in event_dict:
            event_dict = cast(EventDict, exceptions(logger, method_name, event_dict))
        if "stack_info" in event_dict:
            event_dict = _STACK_INFO(logger, method_name, event_dict)
        return redact_mapping(event_dict)

    return prepare


def _unknown_to_text(value: Any) -> str:
    """Serialise what JSON does not know as its (redacted) ``str``; never raise."""
    try:
        return redact_text(str(value))
    except Exception:  # a broken __str__ must not break the log call
        return f"<unprintable {type(value).__name__}>"


def _render_json(_logger: WrappedLogger, _method_name: str, event_dict: EventDict) -> bytes:
    # fallback= does what serialize_unknown=True does (str of odd objects), plus redaction.
    try:
        return to_json(event_dict, fallback=_unknown_to_text, inf_nan_mode="strings")
    except Exception:  # e.g. invalid UTF-8 inside a model: degrade to text values
        safe = {str(key): _unknown_to_text(value) for key, value in event_dict.items()}
        return json.dumps(safe).encode()


def _render_json_text(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> str:
    return _render_json(logger, method_name, event_dict).decode()


_EXCEPTION_AS_DICT: Final = structlog.processors.ExceptionRenderer(
    ExceptionDictTransformer(show_locals=False)  # locals can hold secrets
)
_STACK_INFO: Final = structlog.processors.StackInfoRenderer(additional_ignores=_OUR_MODULES)

# --- configuration ------------------------------------------------------------------------


class _CurrentStdout:
    """Write to whatever ``sys.stdout`` is now: test runners and daemons swap it."""

    def write(self, text: str) -> int:
        stream = sys.stdout
        return 0 if stream is None else stream.write(text)

    def flush(self) -> None:
        stream = sys.stdout
        if stream is not None:
            stream.flush()


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


class _Config:
    """One configuration; :class:`Logger` proxies compare its identity to see it is stale."""

    def __init__(self, service: str, level: int, json_output: bool, stream: TextIO) -> None:
        self.service = service
        self.level = level
        self.stream = stream
        self.wrapper = cast(
            Callable[..., FilteringBoundLogger], structlog.make_filtering_bound_logger(level)
        )
        buffer = _utf8_buffer(stream) if json_output else None
        if buffer is not None:  # text written earlier must not land after our bytes
            with contextlib.suppress(Exception):
                stream.flush()
        self.sink: WrappedLogger = (
            structlog.BytesLogger(buffer) if buffer is not None else structlog.WriteLogger(stream)
        )
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
        # Redaction runs after exception formatting (tracebacks are covered) and before the
        # head adds the fixed keys, which are ours and need no checking on every line.
        self.prepare = _prepare(exceptions)
        self.renderer = renderer
        self.formatter = structlog.stdlib.ProcessorFormatter(
            processors=[
                exceptions,
                _redact,
                _stdlib_head(service),
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                text_renderer,
            ],
        )

    def assemble(
        self, name: str, domain: str | None, context: Mapping[str, Any]
    ) -> FilteringBoundLogger:
        head = _native_head(self.service, name, domain)
        processors = [self.prepare, head, self.renderer]
        return self.wrapper(self.sink, processors, dict(context))


class _RootHandler(logging.StreamHandler[TextIO]):
    """Our handler on the root logger; its class tells a reconfigure which one to replace."""
