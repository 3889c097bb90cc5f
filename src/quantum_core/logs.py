"""Structured logging for quantum_core services: one JSON object per line, one format for all.

Why: log lines are the audit trail of a trading flow. Every line carries the service, the
logger, the domain and the trace id (:mod:`quantum_core.tracing`), so one flow can be followed
across services, and secrets are masked (:mod:`quantum_core._redaction`) before a line leaves.

How it is built:

* Our loggers (:func:`get_logger`) write straight to the stream on structlog's fast path: a
  level-filtering bound logger (calls below the level are a bare ``return``), JSON rendered
  by ``pydantic_core.to_json`` into a :class:`structlog.BytesLogger`.
* Standard-library records (uvicorn, asyncpg, aiohttp...) reach the same processors through
  one handler on the root logger, so both kinds of lines look the same and interleave in
  order (both are flushed per line).
* :func:`configure_logging` may run again at any time. structlog's ``cache_logger_on_first_use``
  would freeze loggers made before that, and services make theirs at import time, so a
  :class:`Logger` is a small proxy that caches its assembled structlog logger together with
  the configuration it was built from and rebuilds when that is no longer the active one.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import logging
import sys
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, ClassVar, Final, TextIO, TypeAlias, cast

import structlog
from pydantic_core import to_json
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

from ._redaction import redact_mapping, redact_text
from .tracing import trace_context

__all__ = ["Logger", "TradingLogger", "configure_logging", "get_logger"]

_LEVELS: Final = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARNING": logging.WARNING,
    "WARN": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
}
_DEFAULT_SERVICE: Final = "quantum_core"
_current_trace_id: Final = trace_context.get

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
_STACK_INFO: Final = structlog.processors.StackInfoRenderer(additional_ignores=[__name__])

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


_active: _Config | None = None


def _default_config() -> _Config:
    """The configuration used before :func:`configure_logging`; leaves stdlib alone."""
    global _active
    if _active is None:
        _active = _Config(_DEFAULT_SERVICE, logging.INFO, True, cast(TextIO, _CurrentStdout()))
    return _active


class _RootHandler(logging.StreamHandler[TextIO]):
    """Our handler on the root logger; its class tells a reconfigure which one to replace."""


def _parse_level(log_level: object) -> int:
    level = _LEVELS.get(log_level.strip().upper()) if isinstance(log_level, str) else None
    if level is None:
        raise ValueError(
            f"invalid log_level {log_level!r}: expected one of DEBUG, INFO, WARNING, ERROR, "
            "CRITICAL (any case)"
        )
    return level


def configure_logging(
    service_name: str,
    log_level: str = "INFO",
    json_output: bool = True,
    *,
    stream: TextIO | None = None,
) -> None:
    """Send every log line of this process, ours and the standard library's, to ``stream``.

    Safe to call again: the last call wins, also for loggers made before it, and the root
    handler of the previous call is replaced, never duplicated. Other root handlers stay.

    Args:
        service_name: Name of the service, written into every line as ``service``.
        log_level: DEBUG, INFO, WARNING, ERROR or CRITICAL, in any case.
        json_output: One JSON object per line if True, else readable console lines.
        stream: Where lines go; ``sys.stdout`` as it is at the time of this call if None.

    Raises:
        ValueError: if ``service_name`` is empty or ``log_level`` is not a known level.
    """
    global _active
    if not isinstance(service_name, str) or not service_name.strip():
        raise ValueError(
            f"invalid service_name {service_name!r}: expected a non-empty string naming the "
            "service, e.g. 'ai_engine'"
        )
    level = _parse_level(log_level)
    out = sys.stdout if stream is None else stream
    if out is None:
        raise ValueError("sys.stdout is None (no console); pass stream= to configure_logging")
    config = _Config(service_name.strip(), level, bool(json_output), out)

    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _RootHandler)]:
        root.removeHandler(old)
        old.close()  # unregisters it; the stream is the caller's and stays open
    handler = _RootHandler(out)
    handler.setFormatter(config.formatter)
    root.addHandler(handler)
    root.setLevel(level)
    _active = config


# --- loggers ------------------------------------------------------------------------------


def _report_failure(error: Exception) -> None:
    """Like stdlib's ``Handler.handleError``: a log call never raises into trading code."""
    if not logging.raiseExceptions or sys.stderr is None:
        return
    with contextlib.suppress(Exception):  # nowhere left to report to
        sys.stderr.write(f"--- quantum_core logging error: {redact_text(repr(error))}\n")


_NOT_BUILT: Final = (object(), None)  # its first item is never the active configuration


class Logger:
    """A named logger of one domain; get one with :func:`get_logger`.

    Cheap to create at import time and always writes with the configuration that is active
    at call time. Methods take an event name, optional ``%``-style arguments and key/value
    fields; ``trace_id=`` overrides the current trace id, ``exc_info=True`` adds the
    exception being handled.
    """

    __slots__ = ("_built", "_context", "_domain", "_name")

    def __init__(
        self, name: str, domain: str | None = None, context: Mapping[str, Any] | None = None
    ) -> None:
        self._name = name
        self._domain = domain
        self._context: Mapping[str, Any] = dict(context or {})
        # (configuration, structlog logger built from it), swapped as one tuple.
        self._built: tuple[object, Any] = _NOT_BUILT

    @property
    def name(self) -> str:
        """The logger name, written as ``logger``."""
        return self._name

    @property
    def domain(self) -> str | None:
        """The domain (e.g. ``"ai_engine"``), written as ``domain`` when set."""
        return self._domain

    def bind(self, **fields: Any) -> Logger:
        """Return a logger that adds ``fields`` to every line; this one is unchanged."""
        return Logger(self._name, self._domain, {**self._context, **fields})

    def _rebuild(self) -> FilteringBoundLogger:
        config = _active or _default_config()
        bound = config.assemble(self._name, self._domain, self._context)
        self._built = (config, bound)
        return bound

    def debug(self, event: str, *args: Any, **fields: Any) -> None:
        """Log at DEBUG level."""
        config, bound = self._built
        try:
            (bound if config is _active else self._rebuild()).debug(event, *args, **fields)
        except Exception as error:
            _report_failure(error)

    def info(self, event: str, *args: Any, **fields: Any) -> None:
        """Log at INFO level."""
        config, bound = self._built
        try:
            (bound if config is _active else self._rebuild()).info(event, *args, **fields)
        except Exception as error:
            _report_failure(error)

    def warning(self, event: str, *args: Any, **fields: Any) -> None:
        """Log at WARNING level."""
        config, bound = self._built
        try:
            (bound if config is _active else self._rebuild()).warning(event, *args, **fields)
        except Exception as error:
            _report_failure(error)

    warn = warning

    def error(self, event: str, *args: Any, **fields: Any) -> None:
        """Log at ERROR level."""
        config, bound = self._built
        try:
            (bound if config is _active else self._rebuild()).error(event, *args, **fields)
        except Exception as error:
            _report_failure(error)

    def critical(self, event: str, *args: Any, **fields: Any) -> None:
        """Log at CRITICAL level."""
        config, bound = self._built
        try:
            (bound if config is _active else self._rebuild()).critical(event, *args, **fields)
        except Exception as error:
            _report_failure(error)

    def exception(self, event: str, *args: Any, **fields: Any) -> None:
        """Log at ERROR level with the exception being handled as structured ``exception``."""
        config, bound = self._built
        try:
            (bound if config is _active else self._rebuild()).exception(event, *args, **fields)
        except Exception as error:
            _report_failure(error)

    def __repr__(self) -> str:
        return f"<Logger name={self._name!r} domain={self._domain!r}>"


def get_logger(name: str | None = None, domain: str | None = None) -> Logger:
    """Return a logger; cheap enough to call at import time, before configure_logging.

    The usual pattern is ``log = get_logger(__name__, domain="ai_engine")`` at module top.

    Args:
        name: Written as ``logger``; the calling module's ``__name__`` if None.
        domain: Written as ``domain`` when given (``"ai_engine"``, ``"risk"``, ...).

    Raises:
        ValueError: if ``name`` or ``domain`` is not a non-empty string.
    """
    if name is None:
        name = str(sys._getframe(1).f_globals.get("__name__", "root"))
    if not isinstance(name, str) or not name:
        raise ValueError(f"invalid logger name {name!r}: expected a non-empty string")
    if domain is not None and (not isinstance(domain, str) or not domain):
        raise ValueError(f"invalid domain {domain!r}: expected a non-empty string or None")
    return Logger(name, domain)


# --- trading events -----------------------------------------------------------------------

Quantity: TypeAlias = float | Decimal
"""A quantity or price: a float, or a Decimal where exactness matters."""


class TradingLogger:
    """The fixed events of a trade's life cycle, so dashboards and alerts can rely on them.

    Each method writes one line on logger ``quantum_core.trading`` with a fixed event name and
    fixed fields, then ``trace_id`` (the current trace if not given) and any ``**extra``;
    ``domain=`` sets the line's domain.

    | event              | level   | fields                                              |
    |--------------------|---------|-----------------------------------------------------|
    | `signal_generated` | info    | symbol, action, confidence                          |
    | `trade_approved`   | info    | symbol, action                                      |
    | `trade_rejected`   | warning | symbol, action, reason                              |
    | `order_submitted`  | info    | symbol, order_id, action, quantity                  |
    | `order_filled`     | info    | symbol, order_id, action, quantity, price           |
    | `order_cancelled`  | info    | symbol, order_id, reason (null when not given)      |
    | `position_opened`  | info    | symbol, side, quantity, entry_price                 |
    | `position_closed`  | info    | symbol, side, quantity, exit_price, pnl_usd         |

    Example:
        >>> TradingLogger.order_submitted(  # doctest: +SKIP
        ...     symbol="BTCUSDT", order_id="o-1", action="BUY", quantity=0.5, trace_id=tid
        ... )
    """

    LOGGER_NAME: ClassVar[str] = "quantum_core.trading"
    _loggers: ClassVar[dict[str | None, Logger]] = {}

    @classmethod
    def _logger(cls, domain: str | None) -> Logger:
        logger = cls._loggers.get(domain)
        if logger is None:
            logger = get_logger(cls.LOGGER_NAME, domain)
            if len(cls._loggers) < 64:  # domains are few; never grow without bound
                cls._loggers[domain] = logger
        return logger

    @classmethod
    def signal_generated(
        cls,
        symbol: str,
        action: str,
        confidence: float,
        trace_id: str | None = None,
        *,
        domain: str | None = None,
        **extra: Any,
    ) -> None:
        """Log ``signal_generated``: a strategy wants to trade."""
        cls._logger(domain).info(
            "signal_generated",
            symbol=symbol,
            action=action,
            confidence=confidence,
            trace_id=trace_id,
            **extra,
        )

    @classmethod
    def trade_approved(
        cls,
        symbol: str,
        action: str,
        trace_id: str | None = None,
        *,
        domain: str | None = None,
        **extra: Any,
    ) -> None:
        """Log ``trade_approved``: risk checks passed."""
        cls._logger(domain).info(
            "trade_approved", symbol=symbol, action=action, trace_id=trace_id, **extra
        )

    @classmethod
    def trade_rejected(
        cls,
        symbol: str,
        action: str,
        reason: str,
        trace_id: str | None = None,
        *,
        domain: str | None = None,
        **extra: Any,
    ) -> None:
        """Log ``trade_rejected`` at WARNING: risk checks refused the trade, and why."""
        cls._logger(domain).warning(
            "trade_rejected",
            symbol=symbol,
            action=action,
            reason=reason,
            trace_id=trace_id,
            **extra,
        )

    @classmethod
    def order_submitted(
        cls,
        symbol: str,
        order_id: str,
        action: str,
        quantity: Quantity,
        trace_id: str | None = None,
        *,
        domain: str | None = None,
        **extra: Any,
    ) -> None:
        """Log ``order_submitted``: the order went to the exchange."""
        cls._logger(domain).info(
            "order_submitted",
            symbol=symbol,
            order_id=order_id,
            action=action,
            quantity=quantity,
            trace_id=trace_id,
            **extra,
        )

    @classmethod
    def order_filled(
        cls,
        symbol: str,
        order_id: str,
        action: str,
        quantity: Quantity,
        price: Quantity,
        trace_id: str | None = None,
        *,
        domain: str | None = None,
        **extra: Any,
    ) -> None:
        """Log ``order_filled``: the exchange executed the order at ``price``."""
        cls._logger(domain).info(
            "order_filled",
            symbol=symbol,
            order_id=order_id,
            action=action,
            quantity=quantity,
            price=price,
            trace_id=trace_id,
            **extra,
        )

    @classmethod
    def order_cancelled(
        cls,
        symbol: str,
        order_id: str,
        reason: str | None = None,
        trace_id: str | None = None,
        *,
        domain: str | None = None,
        **extra: Any,
    ) -> None:
        """Log ``order_cancelled``: the order will not (fully) fill."""
        cls._logger(domain).info(
            "order_cancelled",
            symbol=symbol,
            order_id=order_id,
            reason=reason,
            trace_id=trace_id,
            **extra,
        )

    @classmethod
    def position_opened(
        cls,
        symbol: str,
        side: str,
        quantity: Quantity,
        entry_price: Quantity,
        trace_id: str | None = None,
        *,
        domain: str | None = None,
        **extra: Any,
    ) -> None:
        """Log ``position_opened``."""
        cls._logger(domain).info(
            "position_opened",
            symbol=symbol,
            side=side,
            quantity=quantity,
            entry_price=entry_price,
            trace_id=trace_id,
            **extra,
        )

    @classmethod
    def position_closed(
        cls,
        symbol: str,
        side: str,
        quantity: Quantity,
        exit_price: Quantity,
        pnl_usd: Quantity,
        trace_id: str | None = None,
        *,
        domain: str | None = None,
        **extra: Any,
    ) -> None:
        """Log ``position_closed`` with the realised profit or loss in USD."""
        cls._logger(domain).info(
            "position_closed",
            symbol=symbol,
            side=side,
            quantity=quantity,
            exit_price=exit_price,
            pnl_usd=pnl_usd,
            trace_id=trace_id,
            **extra,
        )
