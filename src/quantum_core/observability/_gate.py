"""Whether spans are made: the one check the bus makes per publish and per handler attempt.

OpenTelemetry's guidance for libraries: depend on the API only, and let the application
bring the SDK. Without an SDK the API is a no-op, but even a no-op span costs a few
microseconds per event (context lookups, a proxy tracer), a tenth of an in-memory event.
So nothing here imports ``opentelemetry``: an application that configured an SDK has
imported ``opentelemetry.trace`` already, so this looks for it in ``sys.modules`` (at most
once a second, and whenever a bus, a policy store or a health checker is made) and asks its
global tracer provider whether it is a real one. Until then :func:`spans` returns None
after one clock read, and ``import quantum_core`` loads no OpenTelemetry module at all.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._spans import Spans

__all__ = ["configure_tracing", "refresh", "spans", "traced"]

_RECHECK_SECONDS = 1.0

_active: Spans | None = None
_next_check = 0.0
_provider: Any = None  # configure_tracing(tracer_provider=...): used instead of the global one
_enabled = True


def spans() -> Spans | None:
    """The span maker when an OpenTelemetry SDK is configured, else None (cheaply)."""
    active = _active
    if active is not None or not _enabled:
        return active
    now = time.monotonic()
    if now < _next_check:
        return None
    return refresh(now)


@contextmanager
def traced(name: str, **attributes: Any) -> Iterator[Any]:
    """A span named ``name``, current inside the block; nothing when no SDK is configured.

    Yields the span (to add attributes to) or None.
    """
    active = spans()
    if active is None:
        yield None
        return
    with active.current(name, attributes) as span:
        yield span


def refresh(now: float | None = None) -> Spans | None:
    """Look again whether an SDK is configured (a new bus, store or checker calls this)."""
    global _active, _next_check
    if _active is not None or not _enabled:
        return _active
    _next_check = (time.monotonic() if now is None else now) + _RECHECK_SECONDS
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None and _provider is None:
        return None
    provider = _provider
    if provider is None:
        assert trace is not None  # noqa: S101 - checked just above
        provider = trace.get_tracer_provider()
        if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
            return None
    from . import _spans  # imports opentelemetry: it is there, an SDK is configured

    _active = _spans.Spans(provider)
    _spans.show_span_in_log_lines()
    return _active


def configure_tracing(*, tracer_provider: Any = None, enabled: bool = True) -> None:
    """Choose where quantum_core's spans go; by default, OpenTelemetry's global provider.

    Spans are made whenever an OpenTelemetry SDK is configured (``trace.set_tracer_provider``)
    and the ``otel`` extra (``opentelemetry-api``) is installed; nothing needs calling. Call
    this to use another provider than the global one (tests; several pipelines in one
    process), or with ``enabled=False`` to make no spans even with an SDK configured.

    Args:
        tracer_provider: An OpenTelemetry ``TracerProvider``; None for the global one.
        enabled: False: no spans, no ``traceparent`` headers, log lines as without an SDK.
    """
    global _active, _provider, _enabled, _next_check
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled must be True or False, got {enabled!r}")
    if tracer_provider is not None and not callable(getattr(tracer_provider, "get_tracer", None)):
        raise TypeError(
            f"tracer_provider must be an OpenTelemetry TracerProvider (with get_tracer), "
            f"got {tracer_provider!r}"
        )
    _active, _provider, _enabled, _next_check = None, tracer_provider, enabled, 0.0
    if not enabled or refresh() is None:
        from .. import _span_ids

        _span_ids.current = None
