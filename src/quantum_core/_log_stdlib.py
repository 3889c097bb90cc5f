"""Before :func:`quantum_core.logs.configure_logging`: every line a standard-library record.

Why: a library must not write to stdout on its own. Until the application chose our JSON
lines, a logger of ours hands each call to ``logging.getLogger(its name)``, so quantum_core's
lines (loggers ``quantum_core.*``) follow whatever the application set up: nothing below
WARNING by default, the application's handlers and format after ``logging.basicConfig``.

A record carries the line in its message, ``event key=value ... trace_id=...`` (what a plain
``%(message)s`` format shows), and the same values as attributes (``record.event``,
``record.trace_id``, ``record.domain`` and one per field whose name a record does not use
itself), for structured formatters. Both are redacted like a JSON line; so are the traceback
and stack text a handler will print. Whether a level is shown is the standard library's
decision at call time, so a ``setLevel`` later applies at once.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
from collections.abc import Mapping
from types import FrameType
from typing import Any, Final

from pydantic_core import to_json

from ._log_pipeline import (
    LEVEL_NAMES,
    OUR_MODULES,
    Emit,
    Emitters,
    current_span_ids,
    interpolate,
    unknown_to_text,
)
from ._redaction import redact_fields, redact_text, redact_value
from .tracing import trace_context

__all__ = ["StdlibConfig"]

_current_trace_id: Final = trace_context.get
# Names a LogRecord holds itself (``extra`` may not overwrite them): such fields stay in the
# message only.
_RECORD_ATTRIBUTES: Final = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_NEEDS_QUOTES: Final = re.compile(r'[\s"=]')
_EXCEPTION_TEXT: Final = logging.Formatter()  # the standard library's default rendering
_OURS: Final = frozenset(OUR_MODULES)


class StdlibConfig:
    """The configuration before ``configure_logging``: stdlib loggers of the same names."""

    def assemble(self, name: str, domain: str | None, context: Mapping[str, Any]) -> Emitters:
        """Return the level methods of logger ``name`` with bound fields ``context``."""
        logger = logging.getLogger(name)
        bound = {key: value for key, value in context.items() if key != "event"}
        methods = {
            level_name: _forwarder(logger, level, domain, bound)
            for level, level_name in LEVEL_NAMES.items()
        }
        return Emitters(self, methods)


def _forwarder(
    logger: logging.Logger, level: int, domain: str | None, context: dict[str, Any]
) -> Emit:
    """Make the method that hands a call at ``level`` to ``logger`` as one record."""
    enabled = logger.isEnabledFor

    def emit(event: Any, args: tuple[Any, ...], fields: dict[str, Any]) -> None:
        if not enabled(level):
            return
        if args:
            event = interpolate(event, args)
        if context:
            fields = {**context, **fields}
        exc_info = _exception(fields.pop("exc_info", None))
        stack_info = bool(fields.pop("stack_info", False))
        trace_id = fields.pop("trace_id", None)
        span_ids = None
        if trace_id is None:
            span_ids = current_span_ids()
            trace_id = _current_trace_id() if span_ids is None else span_ids[0]
        else:
            trace_id = redact_value(trace_id)
        event = redact_value(event)
        message = [str(event)]
        attributes: dict[str, Any] = {"event": event, "domain": domain, "trace_id": trace_id}
        if span_ids is not None:
            attributes["span_id"] = span_ids[1]
        for key, value in redact_fields(fields).items():
            text, attributes[key] = _shown(value)
            message.append(f"{key}={text}")
        if trace_id is not None:
            message.append(f"trace_id={_shown(trace_id)[0]}")
        if span_ids is not None:
            message.append(f"span_id={span_ids[1]}")
        extra = {key: value for key, value in attributes.items() if key not in _RECORD_ATTRIBUTES}
        caller = _caller()
        code = caller.f_code
        record = logger.makeRecord(
            logger.name,
            level,
            code.co_filename,
            caller.f_lineno,
            " ".join(message),
            (),
            exc_info,
            code.co_name,
            extra,
            _stack_text(caller) if stack_info else None,
        )
        if exc_info is not None:  # what a formatter prints: the traceback, redacted
            record.exc_text = redact_text(_EXCEPTION_TEXT.formatException(exc_info))
        logger.handle(record)

    return emit


def _exception(exc_info: Any) -> Any:
    """``exc_info=`` as the standard library reads it: True, an exception, or a tuple."""
    if not exc_info:
        return None
    if isinstance(exc_info, BaseException):
        return (type(exc_info), exc_info, exc_info.__traceback__)
    if not isinstance(exc_info, tuple):
        exc_info = sys.exc_info()
    return exc_info if exc_info[0] is not None else None


def _caller() -> FrameType:
    """The frame that called our logger: the first one outside our logging modules."""
    frame = sys._getframe(2)
    while frame.f_globals.get("__name__") in _OURS and frame.f_back is not None:
        frame = frame.f_back
    return frame


def _stack_text(frame: FrameType) -> str:
    """``stack_info=True`` as the standard library writes it, from the caller on, redacted."""
    lines = "".join(traceback.format_stack(frame))
    return redact_text(f"Stack (most recent call last):\n{lines}".rstrip("\n"))


def _shown(value: Any) -> tuple[str, Any]:
    """A (redacted) field's text in the message and its value on the record.

    Numbers, booleans and None stay as they are; other values become what the JSON line
    would hold (objects as their redacted text), so no attribute carries an object whose
    ``str`` was never checked for secrets.
    """
    if type(value) in (int, float, bool, type(None)):
        return _json_text(value), value
    if type(value) is not str:
        text = _json_text(value)
        value = json.loads(text)
        if not isinstance(value, str):
            return text, value
    if value and not _NEEDS_QUOTES.search(value):
        return value, value
    return json.dumps(value, ensure_ascii=False), value


def _json_text(value: Any) -> str:
    try:
        return to_json(value, fallback=unknown_to_text, inf_nan_mode="strings").decode()
    except Exception:  # e.g. invalid UTF-8 inside a model: its text instead
        return json.dumps(unknown_to_text(value))
