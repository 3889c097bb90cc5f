"""Where a log line finds the current OpenTelemetry span, once tracing is on.

A leaf module: the log pipeline reads :data:`current` for every line, and the tracing gate
(:mod:`quantum_core.observability._gate`) sets it when an SDK is found. While it is None,
log lines carry ``trace_context``'s id, as they did before OpenTelemetry.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["current"]

current: Callable[[], tuple[str, str] | None] | None = None
"""Returns the current span's (trace id, span id) in hex, or None when no span is current."""
