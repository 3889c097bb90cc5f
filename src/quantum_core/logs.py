"""Structured logging for quantum_core services: one JSON object per line, one format for all.

Why: log lines are the audit trail of a trading flow. Every line carries the service, the
logger, the domain and the trace id (:mod:`quantum_core.tracing`), so one flow can be followed
across services, and secrets are masked (:mod:`quantum_core._redaction`) before a line leaves.

How it is built:

* Our loggers (:func:`get_logger`) do not go through a structlog processor chain: each
  logger builds, per configuration, one small function per level that makes the whole line
  (fixed keys, redaction, JSON by ``pydantic_core.to_json``) and writes it to the stream's
  byte buffer in one write and a flush; a level below the configured one is a bare
  ``return``. The calls between structlog's processors were a large share of a line's cost
  (issue 8, ``bench/bench_logging.py``).
* Standard-library records (uvicorn, asyncpg, aiohttp...) reach the same steps through
  structlog's ``ProcessorFormatter`` on one handler on the root logger, so both kinds of
  lines look the same and interleave in order (both are flushed per line).
* Before :func:`configure_logging`, nothing is printed: a logger hands each call to the
  standard-library logger of its name (:mod:`quantum_core._log_stdlib`), so a library's
  lines follow the application's ``logging`` setup, as a library's should.
* :func:`configure_logging` may run again at any time, and services make their loggers at
  import time, so a :class:`Logger` is a small proxy that caches its level functions
  together with the configuration they were built from and rebuilds them when that is no
  longer the active one.

This module is the public face: the active configuration, :func:`configure_logging`,
:func:`get_logger` and :class:`Logger`. How a line is made lives in
:mod:`quantum_core._log_pipeline` (before configuring, :mod:`quantum_core._log_stdlib`), the
trading events in :mod:`quantum_core._trading_log`.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Mapping
from typing import Any, Final, TextIO

from ._log_pipeline import NOT_BUILT, Emitters, StreamConfig
from ._log_pipeline import RootHandler as _RootHandler
from ._log_stdlib import StdlibConfig
from ._redaction import redact_text
from ._trading_log import Quantity as Quantity
from ._trading_log import TradingLogger

__all__ = ["Logger", "TradingLogger", "configure_logging", "get_logger"]

_LEVELS: Final = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARNING": logging.WARNING,
    "WARN": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
}

# --- configuration ------------------------------------------------------------------------

_active: StreamConfig | StdlibConfig | None = None


def _default_config() -> StreamConfig | StdlibConfig:
    """The configuration before :func:`configure_logging`: lines go to stdlib ``logging``.

    A library must not print on its own; until the application chose our lines, they
    follow its standard-library setup (see :mod:`quantum_core._log_stdlib`).
    """
    global _active
    if _active is None:
        _active = StdlibConfig()
    return _active


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
    config = StreamConfig(service_name.strip(), level, bool(json_output), out)

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
        # The level methods built from one configuration; each knows which one.
        self._built: Emitters = NOT_BUILT

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

    def _current(self) -> Emitters:
        """The level methods for the active configuration, built when that changed."""
        config = _active or _default_config()
        built = self._built
        if built.config is not config:
            built = self._built = config.assemble(self._name, self._domain, self._context)
        return built

    # Each method is written out in full: this is the hot path, and a shared helper would
    # cost one more call per line. A level below the configured one is a bare return.

    def debug(self, event: str, *args: Any, **fields: Any) -> None:
        """Log at DEBUG level."""
        built = self._built
        try:
            (built if built.config is _active else self._current()).debug(event, args, fields)
        except Exception as error:
            _report_failure(error)

    def info(self, event: str, *args: Any, **fields: Any) -> None:
        """Log at INFO level."""
        built = self._built
        try:
            (built if built.config is _active else self._current()).info(event, args, fields)
        except Exception as error:
            _report_failure(error)

    def warning(self, event: str, *args: Any, **fields: Any) -> None:
        """Log at WARNING level."""
        built = self._built
        try:
            (built if built.config is _active else self._current()).warning(event, args, fields)
        except Exception as error:
            _report_failure(error)

    warn = warning

    def error(self, event: str, *args: Any, **fields: Any) -> None:
        """Log at ERROR level."""
        built = self._built
        try:
            (built if built.config is _active else self._current()).error(event, args, fields)
        except Exception as error:
            _report_failure(error)

    def critical(self, event: str, *args: Any, **fields: Any) -> None:
        """Log at CRITICAL level."""
        built = self._built
        try:
            (built if built.config is _active else self._current()).critical(event, args, fields)
        except Exception as error:
            _report_failure(error)

    def exception(self, event: str, *args: Any, **fields: Any) -> None:
        """Log at ERROR level with the exception being handled as structured ``exception``."""
        built = self._built
        try:
            (built if built.config is _active else self._current()).exception(event, args, fields)
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
