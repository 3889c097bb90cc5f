"""The trace id of the flow the current task is working on.

A trace id follows one flow (a market tick, the signal it causes, the approval, the order)
through every event and every log line. It lives in a :class:`contextvars.ContextVar`, so
each asyncio task sees its own value and a trace never leaks from one task into another.
"""

from __future__ import annotations

import contextvars
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["TraceContext", "new_trace_id", "trace_context"]

MAX_TRACE_ID_LENGTH = 128
_VISIBLE_ASCII = re.compile(rf"[\x21-\x7e]{{1,{MAX_TRACE_ID_LENGTH}}}")
_ACCEPTED = (
    f"a non-empty string of at most {MAX_TRACE_ID_LENGTH} visible ASCII characters "
    "(no spaces or control characters); trace_context.generate() makes W3C ids "
    "(32 lowercase hex digits)"
)
_ALL_ZEROS = "0" * 32

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "quantum_core_trace_id", default=None
)


def new_trace_id() -> str:
    """Return a fresh W3C trace-context id (32 lowercase hex digits, never all zeros)."""
    trace_id = os.urandom(16).hex()
    while trace_id == _ALL_ZEROS:  # pragma: no cover - one chance in 2**128
        trace_id = os.urandom(16).hex()
    return trace_id


def validate_trace_id(trace_id: object) -> str:
    """Return ``trace_id`` if it can travel in an event and a log line, else raise ValueError."""
    if isinstance(trace_id, str) and _VISIBLE_ASCII.fullmatch(trace_id):
        return trace_id
    shown = repr(trace_id)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    raise ValueError(f"invalid trace id {shown}: expected {_ACCEPTED}")


def adopt_trace_id(trace_id: str) -> None:
    """Make an already validated id current (an event's, checked when it was decoded)."""
    _current.set(trace_id)


class TraceContext:
    """Read and change the current trace id; use the shared instance :data:`trace_context`.

    Examples:
        >>> from quantum_core import trace_context
        >>> with trace_context.scope("4bf92f3577b34da6a3ce929d0e0e4736"):
        ...     trace_context.get()
        '4bf92f3577b34da6a3ce929d0e0e4736'
    """

    __slots__ = ()

    def generate(self) -> str:
        """Start a new trace: make a fresh id current and return it."""
        trace_id = new_trace_id()
        _current.set(trace_id)
        return trace_id

    def get(self) -> str | None:
        """Return the current trace id, or None when no trace is set."""
        return _current.get()

    def set(self, trace_id: str) -> contextvars.Token[str | None]:
        """Make ``trace_id`` current; returns a token for :meth:`reset`.

        Raises:
            ValueError: if ``trace_id`` is not a usable id (see the message for what is).
        """
        return _current.set(validate_trace_id(trace_id))

    def reset(self, token: contextvars.Token[str | None]) -> None:
        """Restore the trace id that was current before the :meth:`set` that gave ``token``."""
        _current.reset(token)

    def clear(self) -> None:
        """Forget the current trace id."""
        _current.set(None)

    @contextmanager
    def scope(self, trace_id: str | None = None) -> Iterator[str]:
        """Make ``trace_id`` (or a new one) current inside the block, then restore the old one."""
        value = new_trace_id() if trace_id is None else validate_trace_id(trace_id)
        token = _current.set(value)
        try:
            yield value
        finally:
            _current.reset(token)

    def __repr__(self) -> str:
        return f"<trace_context current={_current.get()!r}>"


trace_context = TraceContext()
"""The process-wide :class:`TraceContext`; every task still sees its own trace id."""
