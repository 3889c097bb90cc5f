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

This module is the public face: :func:`configure_logging`, and :func:`get_logger`,
:class:`Logger` and :class:`TradingLogger` re-exported. The logger and the active
configuration live in :mod:`quantum_core._logger` (what the rest of the library imports),
how a line is made in :mod:`quantum_core._log_pipeline` (before configuring,
:mod:`quantum_core._log_stdlib`), the trading events in :mod:`quantum_core._trading_log`;
none of them imports this module, so there is no import cycle.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import Final, TextIO

from ._log_pipeline import RootHandler as _RootHandler
from ._log_pipeline import StreamConfig as _StreamConfig
from ._logger import Logger, get_logger
from ._logger import active_config as _active_config
from ._logger import use_config as _use_config
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
    if not isinstance(service_name, str) or not service_name.strip():
        raise ValueError(
            f"invalid service_name {service_name!r}: expected a non-empty string naming the "
            "service, e.g. 'ai_engine'"
        )
    level = _parse_level(log_level)
    out = sys.stdout if stream is None else stream
    if out is None:
        raise ValueError("sys.stdout is None (no console); pass stream= to configure_logging")
    config = _StreamConfig(service_name.strip(), level, bool(json_output), out)

    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _RootHandler)]:
        root.removeHandler(old)
        old.close()  # unregisters it; the stream is the caller's and stays open
    handler = _RootHandler(out)
    handler.setFormatter(config.formatter)
    root.addHandler(handler)
    root.setLevel(level)
    _use_config(config)


@contextlib.contextmanager
def logging_restored() -> Iterator[None]:
    """Put logging back as it was when the block ends, also on error.

    For code that points log lines elsewhere for a while (the CLI sends them to stderr while a
    command runs, :func:`quantum_core.testing.capture_logs` into a list): the configuration
    our loggers write with, our handler on the root logger and the root level come back.
    Other root handlers (the application's, pytest's) are left alone.
    """
    root = logging.getLogger()
    ours = [handler for handler in root.handlers if isinstance(handler, _RootHandler)]
    level, active = root.level, _active_config()
    for handler in ours:  # taken off, not closed: they come back afterwards
        root.removeHandler(handler)
    try:
        yield
    finally:
        for handler in [h for h in root.handlers if isinstance(h, _RootHandler)]:
            root.removeHandler(handler)
            handler.close()
        for handler in ours:
            root.addHandler(handler)
        root.setLevel(level)
        _use_config(active)
