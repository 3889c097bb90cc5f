"""What the NATS JetStream transport needs besides its two classes: names, URLs, acked publishes.

Names on the server (see ``transport.py`` for the whole layout) are derived here, in one
place, so the transport, its subscriptions and the tests agree on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

from ...errors import TransportError
from ...logs import get_logger

__all__ = [
    "PREFIX_PATTERN",
    "AckedPublisher",
    "Liveness",
    "Names",
    "NatsURL",
    "connect",
    "is_not_found",
    "parse_nats_url",
    "redact_server",
    "sequence_id",
    "status_of",
]

_log = get_logger("quantum_core.bus.nats")

PREFIX_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""A prefix is a stream name and a subject token at once: letters, digits, '_' and '-'."""

_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_KEY_SAFE = re.compile(r"[A-Za-z0-9_-]{1,128}")
_STREAM_NOT_FOUND = 10059
_CONSUMER_NOT_FOUND = 10014


@dataclass(frozen=True, slots=True)
class Names:
    """Stream, subject, consumer and bucket names of one prefix."""

    prefix: str

    @property
    def stream(self) -> str:
        """The stream every event of the prefix is stored in."""
        return self.prefix

    @property
    def dead_stream(self) -> str:
        """The stream dead letters of the prefix are stored in."""
        return f"{self.prefix}_dead_letters"

    @property
    def handled_bucket(self) -> str:
        """The KV bucket of handled-records (``idempotent=True``)."""
        return f"{self.prefix}_handled"

    def subject(self, topic: str) -> str:
        """The subject a topic's events are published on."""
        return f"{self.prefix}.events.{topic}"

    def dead_subject(self, topic: str) -> str:
        """The subject a topic's dead letters are published on."""
        return f"{self.prefix}.dead.{topic}"

    @staticmethod
    def durable(topic: str, group: str) -> str:
        """The durable consumer of ``group`` on ``topic``: readable, unique, a valid name.

        Consumer names may not hold '.', '*', '>' or spaces, which group and topic names
        do; the readable part is squashed to safe characters and a hash of the exact pair
        keeps two different pairs from ever sharing a consumer.
        """
        readable = _NAME_UNSAFE.sub("_", f"{group}__{topic}").strip("_")[:80]
        digest = hashlib.sha256(f"{topic}\n{group}".encode()).hexdigest()[:12]
        return f"{readable}_{digest}"

    @staticmethod
    def group_token(group: str) -> str:
        """A group as one KV key token (a handled-record is per group, like on Redis)."""
        readable = _NAME_UNSAFE.sub("_", group).strip("_")[:60]
        digest = hashlib.sha256(group.encode()).hexdigest()[:12]
        return f"{readable}_{digest}"

    def handled_key(self, group: str, event_id: str) -> str:
        """The KV key recording that ``group`` handled ``event_id``."""
        if _KEY_SAFE.fullmatch(event_id):
            token = event_id
        else:  # ids from other publishers may hold anything: hash them into a valid key
            token = "sha256-" + hashlib.sha256(event_id.encode()).hexdigest()
        return f"{self.group_token(group)}.{token}"


def sequence_id(text: object) -> int:
    """A dead letter's id (its stream sequence, a decimal string) as a number."""
    if isinstance(text, str) and text.isascii() and text.isdigit() and len(text) <= 20:
        number = int(text)
        if 1 <= number < 2**64:
            return number
    raise ValueError(
        f"not a dead-letter id of the NATS JetStream transport (a stream sequence such as "
        f"'42'): {text!r}"
    )


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
    codes = {_STREAM_NOT_FOUND} if stream else set()
    if consumer:
        codes.add(_CONSUMER_NOT_FOUND)
    return error.err_code in codes


# -- URLs -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NatsURL:
    """A ``nats://`` URL taken apart: the servers for nats-py and the transport's options."""

    servers: list[str]
    options: dict[str, Any]


def _seconds(value: str) -> float:
    number = float(value)
    if not number > 0 or number == float("inf"):
        raise ValueError(value)
    return number


def _count(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


def _storage(value: str) -> str:
    if value not in ("file", "memory"):
        raise ValueError(value)
    return value


_URL_OPTIONS: dict[str, tuple[Any, str]] = {
    "ping_interval": (_seconds, "a positive number of seconds"),
    "max_outstanding_pings": (_count, "a whole number >= 1"),
    "prefix": (str, "letters, digits, '_' or '-'"),
    "ack_wait": (_seconds, "a positive number of seconds"),
    "claim_idle": (_seconds, "a positive number of seconds (the same as ack_wait)"),
    "max_ack_pending": (_count, "a whole number >= 1"),
    "maxlen": (_count, "a whole number >= 1"),
    "max_age": (_seconds, "a positive number of seconds"),
    "dead_letter_maxlen": (_count, "a whole number >= 1"),
    "storage": (_storage, "'file' or 'memory'"),
    "replicas": (_count, "a whole number >= 1"),
}


def parse_nats_url(url: str) -> NatsURL:
    """Split ``nats://[user:password@]host:port[,host:port...]?option=value...``.

    The query holds the transport's options; everything before it goes to nats-py. Errors
    name the option and its value, never the URL (it may hold a password).
    """
    base, _, query = url.partition("?")
    options: dict[str, Any] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in _URL_OPTIONS:
            known = ", ".join(sorted(_URL_OPTIONS))
            raise ValueError(f"unknown option {name!r} in a nats:// URL; known: {known}")
        convert, expected = _URL_OPTIONS[name]
        try:
            converted = convert(value)
        except ValueError:
            raise ValueError(
                f"nats:// URL option {name}={value!r} is not valid: expected {expected}"
            ) from None
        if name == "claim_idle":
            name = "ack_wait"
        if name in options:
            raise ValueError(f"nats:// URL option {name!r} is given twice (claim_idle is ack_wait)")
        options[name] = converted
    scheme = urlsplit(base).scheme or "nats"
    servers = []
    for part in base.split(","):
        server = part.strip()
        if not server:
            continue
        if "://" not in server:
            server = f"{scheme}://{server}"
        parts = urlsplit(server)
        if not parts.hostname:
            raise ValueError(
                f"a nats:// URL needs a host, such as nats://127.0.0.1:4222; got "
                f"{redact_server(server)!r}"
            )
        servers.append(server)
    if not servers:
        raise ValueError("a nats:// URL needs a host, such as nats://127.0.0.1:4222")
    return NatsURL(servers=servers, options=options)


def redact_server(server: str) -> str:
    """A server URL without its password (or token): safe to log, repr and raise."""
    try:
        parts = urlsplit(server)
        port = parts.port
    except ValueError:
        return "<a nats:// URL that cannot be parsed>"
    if parts.username is None and parts.password is None:
        return server
    user = unquote(parts.username or "")
    who = "***" if parts.password is None else f"{quote(user)}:***"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{who}@{host}" + (f":{port}" if port is not None else "")
    return parts._replace(netloc=netloc).geturl()


# -- the connection ----------------------------------------------------------------------------


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

    async def disconnected() -> None:
        nonlocal down
        if not closing() and not down:
            down = True
            _log.warning("nats_disconnected", servers=shown)

    async def reconnected() -> None:
        nonlocal down
        if down:
            down = False
            _log.info("nats_reconnected", servers=shown)

    async def error(exc: Exception) -> None:
        _log.debug("nats_connection_error", servers=shown, error=repr(exc))

    try:
        client = await nats.connect(
            servers,
            name="quantum_core",
            allow_reconnect=True,
            max_reconnect_attempts=1,  # the first connect gives up soon, with an error
            reconnect_time_wait=0.5,
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


# -- publishing with JetStream acknowledgements ---------------------------------------------


class AckedPublisher:
    """Publish to JetStream and wait for every message's PubAck, many in flight at once.

    One wildcard reply subscription serves every publish of the connection: a batch of 100
    is 100 PUBs written in one go and 100 acknowledgements awaited together, which is what
    nats-py's ``publish_async`` does, without its per-message semaphore task.
    """

    def __init__(self, client: Client, timeout: float) -> None:
        self._client = client
        self._timeout = timeout
        self._inbox = client.new_inbox()
        self._tokens = itertools.count(1)
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._subscription: Any = None

    async def start(self) -> None:
        """Subscribe to the reply subjects."""
        self._subscription = await self._client.subscribe(f"{self._inbox}.*", cb=self._on_reply)

    async def stop(self) -> None:
        """Unsubscribe; publishes still waiting fail."""
        subscription, self._subscription = self._subscription, None
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(TransportError("the NATS transport was closed"))
        self._waiting.clear()
        if subscription is not None and not self._client.is_closed:
            with contextlib.suppress(nats.errors.Error):  # the connection went away meanwhile
                await subscription.unsubscribe()

    async def publish(
        self,
        subject: str,
        messages: Sequence[bytes],
        headers: dict[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """Publish ``messages`` and return their PubAcks, once every one came back.

        Raises ``nats.js.errors.NoStreamResponseError`` when no stream takes the subject,
        ``nats.js.errors.APIError`` when the stream refused one, and ``TimeoutError``.
        """
        if len(messages) == 1:  # nats-py's own request: one round trip, no extra task hop
            try:
                reply = await self._client.request(
                    subject, messages[0], timeout=self._timeout, headers=headers
                )
            except nats.errors.NoRespondersError:
                raise nats.js.errors.NoStreamResponseError() from None
            except nats.errors.TimeoutError:
                raise TimeoutError from None
            return [_pub_ack(reply.data)]
        loop = asyncio.get_running_loop()
        tokens: list[str] = []
        futures: list[asyncio.Future[dict[str, Any]]] = []
        try:
            # The writes too: with nats-py's buffer full, a publish waits for the socket.
            async with asyncio.timeout(self._timeout):
                for data in messages:
                    token = str(next(self._tokens))
                    future: asyncio.Future[dict[str, Any]] = loop.create_future()
                    self._waiting[token] = future
                    tokens.append(token)
                    futures.append(future)
                    await self._client.publish(
                        subject, data, reply=f"{self._inbox}.{token}", headers=headers
                    )
                return await asyncio.gather(*futures)
        finally:
            for token in tokens:
                self._waiting.pop(token, None)
            for future in futures:  # an error no caller reads is no error to report
                if not future.done():
                    future.cancel()
                elif not future.cancelled():
                    future.exception()

    async def _on_reply(self, msg: Msg) -> None:
        token = msg.subject[len(self._inbox) + 1 :]
        future = self._waiting.pop(token, None)
        if future is None or future.done():
            return
        if msg.headers and msg.headers.get("Status") == "503":
            future.set_exception(nats.js.errors.NoStreamResponseError())
            return
        try:
            future.set_result(_pub_ack(msg.data))
        except Exception as exc:  # an error the stream sent back, or an unreadable reply
            future.set_exception(exc)


def _pub_ack(data: bytes) -> dict[str, Any]:
    """A PubAck read from its JSON; the stream's error raised as nats-py's APIError."""
    try:
        reply = json.loads(data)
    except ValueError:
        raise TransportError(f"JetStream sent an unreadable ack: {data[:200]!r}") from None
    if not isinstance(reply, dict):
        raise TransportError(f"JetStream sent an unreadable ack: {data[:200]!r}")
    if "error" in reply:
        nats.js.errors.APIError.from_error(reply["error"])  # raises the error it builds
    return reply
