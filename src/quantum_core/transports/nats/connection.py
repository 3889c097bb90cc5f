"""The connection to NATS: connecting with bounded liveness, and reading JetStream's answers.

``connect`` connects (failing soon if no server answers at first), then reconnects for ever,
logging each loss and return once; :class:`Liveness` says how soon a silent connection is
given up. ``status_of`` and ``is_not_found`` read JetStream's status messages and errors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

from ..._backoff import backoff
from ...errors import TransportError
from ...logs import get_logger
from .url import redact_server

__all__ = [
    "STREAM_CONFIG_DIFFERS",
    "STREAM_NOT_FOUND",
    "Liveness",
    "connect",
    "is_not_found",
    "status_of",
]

_log = get_logger("quantum_core.bus.nats")

STREAM_CONFIG_DIFFERS = 10058
"""JetStream's error code when a stream (or bucket) exists with other settings."""
STREAM_NOT_FOUND = 10059
"""JetStream's error code for a stream that does not exist."""
_CONSUMER_NOT_FOUND = 10014
_RECONNECT_FIRST = 0.25  # seconds between tries of a lost server: doubling, jittered (the
_RECONNECT_MOST = 1.0  # library's one backoff), so clients that lost it do not return together


def status_of(msg: Msg) -> str | None:
    """The status code of a JetStream status message (404, 408, 409, 100...), else None."""
    if msg.reply or not msg.headers:  # a stored message always comes with its ack subject
        return None
    status = msg.headers.get("Status")
    return status if isinstance(status, str) else None


def is_not_found(error: BaseException, *, stream: bool = True, consumer: bool = True) -> bool:
    """Whether a JetStream API error says the stream (or the consumer) does not exist."""
    if not isinstance(error, nats.js.errors.NotFoundError):
        return False
    codes = {STREAM_NOT_FOUND} if stream else set()
    if consumer:
        codes.add(_CONSUMER_NOT_FOUND)
    return error.err_code in codes


@dataclass(frozen=True, slots=True)
class Liveness:
    """How soon a connection that went silent is given up (and a new one made).

    nats-py pings the server every ``ping_interval`` seconds and gives the connection up
    when more than ``max_outstanding_pings`` pings in a row went unanswered: a path that
    froze (packets dropped, no RST, which TCP alone notices after many minutes) is left
    within ``ping_interval * (max_outstanding_pings + 1)`` seconds. nats-py's own default
    is 120 s x 2, six minutes of a consumer that hears nothing; ours is 5 s x 2, 15 s.
    """

    ping_interval: float = 5.0
    max_outstanding_pings: int = 2

    @property
    def bound(self) -> float:
        """Seconds after which a silent connection is given up, at most."""
        return self.ping_interval * (self.max_outstanding_pings + 1)


async def connect(
    servers: list[str], closing: Callable[[], bool], liveness: Liveness | None = None
) -> Client:
    """Connect to NATS: fail soon if no server answers at first, then reconnect for ever.

    Losing and regaining the connection is logged once each (``nats_disconnected``,
    ``nats_reconnected``), never with a password; ``closing()`` says the loss is ours.
    A connection that stops answering pings is given up as ``liveness`` says.
    """
    liveness = liveness or Liveness()
    shown = ", ".join(redact_server(server) for server in servers)
    down = False
    failures = 0  # failed connects since the last success: the next wait's backoff
    client: Client | None = None

    async def disconnected() -> None:
        nonlocal down
        if not closing() and not down:
            down = True
            _log.warning("nats_disconnected", servers=shown)

    async def reconnected() -> None:
        nonlocal down, failures
        failures = 0
        if client is not None:
            client.options["reconnect_time_wait"] = _RECONNECT_FIRST
        if down:
            down = False
            _log.info("nats_reconnected", servers=shown)

    async def error(exc: Exception) -> None:
        nonlocal failures
        _log.debug("nats_connection_error", servers=shown, error=repr(exc))
        if client is not None:  # nats-py waits this long before it tries a server again
            failures += 1
            wait = backoff(failures, _RECONNECT_FIRST, _RECONNECT_MOST)
            client.options["reconnect_time_wait"] = wait

    try:
        client = await nats.connect(
            servers,
            name="quantum_core",
            allow_reconnect=True,
            max_reconnect_attempts=1,  # the first connect gives up soon, with an error
            reconnect_time_wait=_RECONNECT_FIRST,
            connect_timeout=2,
            disconnected_cb=disconnected,
            reconnected_cb=reconnected,
            error_cb=error,
            # nats-py types it as int; a fraction of a second works and helps tests.
            ping_interval=cast(int, liveness.ping_interval),
            max_outstanding_pings=liveness.max_outstanding_pings,
        )
    except (nats.errors.Error, OSError, TimeoutError) as exc:
        raise TransportError(f"could not connect to NATS at {shown}: {exc!r}") from exc
    client.options["max_reconnect_attempts"] = -1  # once connected, reconnect for ever
    return client
