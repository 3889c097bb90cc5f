"""Failed tries of one broker operation in a row: the backoff between them, and their log lines.

A consumer tries again what the broker refused, until it works: a fetch, an ack, a
dead-letter write. A broker that is down for a minute must not write hundreds of identical
lines, so each run of failures (an *outage*) is logged once when it starts (a warning, with
the exception and when the next try comes) and once when it ends (info); the tries in
between are debug lines.
"""

from __future__ import annotations

import time

from .._backoff import backoff
from ..logs import get_logger
from .dead_letters import describe_error

__all__ = ["Outage"]

_log = get_logger("quantum_core.bus")
_OUTAGE_BACKOFF = 0.05  # seconds; doubles per failed fetch: 0.1, 0.2, ... up to the cap
_OUTAGE_BACKOFF_MAX = 5.0
RETRY_FIRST = 0.1  # seconds before an ack or a dead-letter write is tried again, doubling
RETRY_MOST = 5.0  # ... up to this, with jitter


class Outage:
    """Count the failures in a row of one operation; say how long to wait; log the outage.

    ``operation`` names the log lines: ``{operation}_failed`` (warning, the first failure),
    ``{operation}_still_failing`` (debug, the later ones) and ``recovered`` (info, the first
    success after failures, with how many there were as ``counted_as``). ``fields`` go on
    every line. The waits are the library's one backoff (:mod:`quantum_core._backoff`) from
    ``first`` up to ``most``, jittered: consumers that lost a broker together do not come
    back together.
    """

    def __init__(
        self,
        operation: str,
        *,
        recovered: str,
        first: float = RETRY_FIRST,
        most: float = RETRY_MOST,
        counted_as: str = "failures",
        **fields: object,
    ) -> None:
        self._operation = operation
        self._recovered = recovered
        self._first = first
        self._most = most
        self._counted_as = counted_as
        self._fields = fields
        self._failures = 0
        self._since = 0.0

    @classmethod
    def of_fetches(cls, handler: str) -> Outage:
        """The fetch loop's: 0.1 s, doubling, at most 5 s, jittered (half fixed, half random)."""
        return cls(
            "event_fetch",
            recovered="transport_recovered",
            first=2 * _OUTAGE_BACKOFF,
            most=_OUTAGE_BACKOFF_MAX,
            counted_as="failed_fetches",
            handler=handler,
        )

    @property
    def failures(self) -> int:
        """Failures in a row so far (0 when the last try worked)."""
        return self._failures

    def failed(self, error: BaseException, **details: object) -> float:
        """Count a failure; return the seconds to wait before the next try.

        ``details`` go on this failure's line only.
        """
        self._failures += 1
        delay = backoff(self._failures, self._first, self._most)
        if self._failures == 1:
            self._since = time.monotonic()
            _log.warning(
                f"{self._operation}_failed",
                **self._fields,
                **details,
                retry_in=round(delay, 3),
                retry_max=self._most,
                exc_info=error,
            )
        else:
            _log.debug(
                f"{self._operation}_still_failing",
                **self._fields,
                **details,
                failures=self._failures,
                retry_in=round(delay, 3),
                error=describe_error(error),
            )
        return delay

    def ended(self) -> None:
        """A try worked: log the recovery if there was an outage."""
        if self._failures:
            _log.info(
                self._recovered,
                **self._fields,
                **{self._counted_as: self._failures},
                outage_seconds=round(time.monotonic() - self._since, 3),
            )
            self._failures = 0
