"""The Logger our code and users' code write through, and the configuration it reads.

Why a module of its own: :class:`Logger` and :func:`get_logger` are what every other module
imports (the bus, the policy, :mod:`quantum_core._trading_log`), while
:mod:`quantum_core.logs` is the public face that also configures; with the logger here,
nothing imports back up and there is no import cycle.

The hot path is hand-tuned (issue 8, ``bench/bench_logging.py``): each level method is
written out in full and compares the configuration its functions were built from with the
active one, a module global read in the method's own module (``_active``), before one call.
:func:`use_config` is how :func:`quantum_core.logs.configure_logging` (and whoever must put
a previous configuration back, as the CLI does) changes it.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Mapping
from typing import Any

from ._log_pipeline import NOT_BUILT, Emitters, StreamConfig
from ._log_stdlib import StdlibConfig
from ._redaction import redact_text

__all__ = ["LogConfig", "Logger", "active_config", "get_logger", "use_config"]

LogConfig = StreamConfig | StdlibConfig
"""A configuration: lines to a stream (configured), or to stdlib ``logging`` (before)."""

# The active configuration; None until the first line or configure_logging().
_active: LogConfig | None = None


def active_config() -> LogConfig | None:
    """The configuration loggers write with now; None before the first line is written."""
    return _active


def use_config(config: LogConfig | None) -> None:
    """Make ``config`` the active configuration (None: as before any configuration).

    Loggers rebuild their level functions on their next line, so this is safe at any time.
    """
    global _active
    _active = config


def _default_config() -> LogConfig:
    """The configuration before :func:`quantum_core.logs.configure_logging`: to stdlib logging.

    A library must not print on its own; until the application chose our lines, they
    follow its standard-library setup (see :mod:`quantum_core._log_stdlib`).
    """
    global _active
    if _active is None:
        _active = StdlibConfig()
    return _active


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
