"""How a handler is tried: a time limit per attempt, then backoff with jitter between attempts.

The bus owns these semantics, so they are the same on every transport. The attempt number
starts at the transport's delivery count (an event redelivered after a crash starts higher)
and grows by one for every retry in this process.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .._backoff import backoff
from .._checks import check_int, check_seconds
from ..errors import EventBusError
from ._deadlines import Deadlines
from ._fresh_context import start_in

__all__ = ["HandlerTimeoutError", "RetryPolicy", "call_handler"]


class HandlerTimeoutError(EventBusError, TimeoutError):
    """A handler did not finish within its subscription's ``timeout`` and was cancelled."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempts, backoff and time limit of one subscription.

    Attributes:
        max_attempts: Attempts in all, counting deliveries by the transport, before the
            event is dead-lettered. Each delivery gets at least one attempt.
        backoff: Seconds before the second attempt; each later wait doubles.
        backoff_max: The longest wait between two attempts.
        timeout: Seconds one attempt may run before it is cancelled; None for no limit.
    """

    max_attempts: int
    backoff: float
    backoff_max: float
    timeout: float | None

    @classmethod
    def of(
        cls,
        *,
        max_attempts: object,
        backoff: object,
        backoff_max: object,
        timeout: object,
        timeout_name: str = "timeout",
    ) -> RetryPolicy:
        """Check what a user passed (``timeout=math.inf`` for no limit) and build a policy."""
        attempts = check_int("max_attempts", max_attempts)
        limit = check_seconds(timeout_name, timeout, positive=True, allow_infinite=True)
        return cls(
            max_attempts=attempts,
            backoff=check_seconds("retry_backoff", backoff),
            backoff_max=check_seconds("retry_backoff_max", backoff_max),
            timeout=None if limit == math.inf else limit,
        )

    def override(
        self, max_attempts: int | None, backoff: float | None, timeout: float | None
    ) -> RetryPolicy:
        """This policy with what a subscription chose instead (None: keep this one's)."""
        return RetryPolicy.of(
            max_attempts=self.max_attempts if max_attempts is None else max_attempts,
            backoff=self.backoff if backoff is None else backoff,
            backoff_max=self.backoff_max,
            timeout=(math.inf if self.timeout is None else self.timeout)
            if timeout is None
            else timeout,
        )

    def last_attempt(self, first: int) -> int:
        """The number of the last attempt for a delivery whose first attempt is ``first``."""
        return max(self.max_attempts, first)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed ``attempt``: see :func:`backoff`."""
        return backoff(attempt, self.backoff, self.backoff_max)


Handler = Callable[[dict[str, Any]], Awaitable[Any]]


async def call_handler(
    handler: Handler,
    payload: dict[str, Any],
    timeout: float | None,
    deadlines: Deadlines | None = None,
    context: contextvars.Context | None = None,
) -> BaseException | None:
    """Run one attempt; return what it raised (None when it returned).

    A handler still running after ``timeout`` seconds is cancelled and reported as a
    :class:`HandlerTimeoutError` whose cause shows where it hung. A ``CancelledError`` the
    handler raised on its own (not a cancellation of this task) is a failure like any
    other; a real cancellation (``stop()``) propagates, and so do ``SystemExit`` and
    ``KeyboardInterrupt``: the process is ending. Any other ``BaseException`` is a failure.
    ``deadlines``, when given, keeps the time limit with timers shared among attempts
    (``_deadlines.py``). ``context``, when given, is the context the handler runs in.
    """
    if timeout is not None and deadlines is not None:
        return await _call_with_deadline(handler, payload, timeout, deadlines, context)
    scope: asyncio.Timeout | None = None
    try:
        if timeout is None:
            await _run(handler, payload, context)
        else:
            async with asyncio.timeout(timeout) as scope:
                await _run(handler, payload, context)
    except TimeoutError as exc:
        if scope is None or not scope.expired():
            return exc
        return _timed_out(timeout, exc)
    except asyncio.CancelledError as exc:
        return _own_cancellation(exc)
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:  # one handler's bug never stops the rest
        return exc
    return None


async def _call_with_deadline(
    handler: Handler,
    payload: dict[str, Any],
    timeout: float,
    deadlines: Deadlines,
    context: contextvars.Context | None,
) -> BaseException | None:
    deadline = deadlines.start(timeout)
    try:
        if context is None:
            await handler(payload)
        elif (rest := start_in(context, handler(payload))) is not None:
            await rest  # the handler waits for something: the slow path, per wait
    except asyncio.CancelledError as exc:
        if deadlines.end(deadline):
            return _timed_out(timeout, exc)
        return _own_cancellation(exc)
    except BaseException as exc:
        deadlines.end(deadline)
        if isinstance(exc, SystemExit | KeyboardInterrupt):
            raise
        return exc  # one handler's bug never stops the rest
    deadlines.end(deadline)
    return None


async def _run(
    handler: Handler, payload: dict[str, Any], context: contextvars.Context | None
) -> None:
    if context is None:
        await handler(payload)
    elif (rest := start_in(context, handler(payload))) is not None:
        await rest


def _timed_out(timeout: float | None, cause: BaseException) -> HandlerTimeoutError:
    error = HandlerTimeoutError(f"handler did not finish within {timeout:g} s; cancelled")
    error.__cause__ = cause
    return error


def _own_cancellation(exc: asyncio.CancelledError) -> asyncio.CancelledError:
    """A CancelledError the handler raised itself is its failure; a real one propagates."""
    task = asyncio.current_task()
    if task is None or task.cancelling():
        raise exc
    return exc
