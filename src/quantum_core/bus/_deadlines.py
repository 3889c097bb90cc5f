"""Handler time limits that share timers: one per moment of expiry, not one per attempt.

``asyncio.timeout`` schedules and cancels a timer for every attempt, which cost a consumer
more than the rest of an attempt's bookkeeping. Here attempts whose deadlines fall in the
same step (a millisecond, or a thousandth of the time limit when that is longer) share one
timer. A deadline is rounded up to its step: an attempt gets at least its time limit, and
at most 0.1% (or one millisecond) more. As with ``asyncio.timeout``, an expired attempt's
task is cancelled, and the cancellation is taken back when the attempt ends, so a
``stop()`` that cancelled the task meanwhile still wins.

A timer whose attempts all ended in time is left to fire on nobody rather than cancelled:
attempts that follow within the same step join it, so a consumer handling events one after
another schedules one timer per step instead of scheduling and cancelling one per event
(which was a fifth of its time per event).
"""

from __future__ import annotations

import asyncio
import math

__all__ = ["Deadline", "Deadlines"]


class Deadline:
    """The time limit of one attempt, running in ``task``."""

    __slots__ = ("cancelling", "due", "expired", "task")

    def __init__(self, task: asyncio.Task[object], due: int) -> None:
        self.task = task
        self.due = due
        self.cancelling = task.cancelling()
        self.expired = False


class Deadlines:
    """The time limits of the attempts one consumer runs."""

    def __init__(self) -> None:
        self._due: dict[int, tuple[set[Deadline], asyncio.TimerHandle]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, timeout: float) -> Deadline:
        """Cancel the current task in ``timeout`` seconds, unless :meth:`end` comes first."""
        loop = self._loop
        if loop is None:  # asyncio.get_running_loop() costs a getpid() call on Python 3.11
            loop = self._loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("a handler time limit needs to run in a task")
        step_ms = max(1, int(timeout))  # a thousandth of the limit, at least a millisecond
        due = math.ceil((loop.time() + timeout) * 1000 / step_ms) * step_ms
        deadline = Deadline(task, due)
        entry = self._due.get(due)
        if entry is None:
            entry = self._due[due] = (set(), loop.call_at(due / 1000, self._expire, due))
        entry[0].add(deadline)
        return deadline

    def end(self, deadline: Deadline) -> bool:
        """Stop watching; True when the limit expired and its cancellation is the only one."""
        if deadline.expired:
            return deadline.task.uncancel() <= deadline.cancelling
        entry = self._due.get(deadline.due)
        if entry is not None:
            entry[0].discard(deadline)  # the timer stays: the next attempts may share it
        return False

    def _expire(self, due: int) -> None:
        entry = self._due.pop(due, None)
        if entry is None:
            return
        for deadline in entry[0]:
            deadline.expired = True
            deadline.task.cancel()
