"""A consumer's view of a broker outage: backoff between failed fetches, and its log lines."""

from __future__ import annotations

import time

from ..logs import get_logger

__all__ = ["Outage"]

_log = get_logger("quantum_core.bus")
_OUTAGE_BACKOFF = 0.05  # seconds; doubles per failed fetch: 0.1, 0.2, ... up to the cap
_OUTAGE_BACKOFF_MAX = 5.0


class Outage:
    """Backoff between failed fetches, logged once when they start and once when they end.

    A broker that is down for a minute must not write hundreds of identical lines: the
    first failure is a warning (with its traceback), the later ones are debug lines, and
    the first fetch that works again logs ``transport_recovered``.
    """

    def __init__(self, handler: str) -> None:
        self._handler = handler
        self._failures = 0
        self._since = 0.0

    def failed(self, error: Exception) -> float:
        """Count a failed fetch; return the seconds to wait before the next one."""
        self._failures += 1
        delay = min(_OUTAGE_BACKOFF * 2.0 ** min(self._failures, 16), _OUTAGE_BACKOFF_MAX)
        if self._failures == 1:
            self._since = time.monotonic()
            _log.warning(
                "event_fetch_failed",
                handler=self._handler,
                retry_in=delay,
                retry_max=_OUTAGE_BACKOFF_MAX,
                exc_info=error,
            )
        else:
            _log.debug(
                "event_fetch_still_failing",
                handler=self._handler,
                failures=self._failures,
                retry_in=delay,
                error=str(error),
            )
        return delay

    def ended(self) -> None:
        """A fetch worked: log the recovery if there was an outage."""
        if self._failures:
            _log.info(
                "transport_recovered",
                handler=self._handler,
                failed_fetches=self._failures,
                outage_seconds=round(time.monotonic() - self._since, 3),
            )
            self._failures = 0
