"""What every command shares: the Redis it talks to, its errors, and output without secrets.

Why a module of its own: the rules an operator relies on live here once, for every command.
An error is one line on stderr with an exit code, never a traceback; nothing printed ever
shows a password from the URL or a DSN (the URL is masked, and the password itself is
scrubbed wherever it appears); a server that does not answer fails within ``--timeout``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    AuthenticationError,
    RedisClusterException,
    RedisError,
    ResponseError,
)

from .._checks import check_name
from .._redaction import redact_text
from .._redis import cluster_settings, is_cluster, open_cluster
from ..bus import EventBus, Transport
from ..bus.registry import transport_from_url
from ..health._secrets import Scrubber
from ..transports.redis import RedisStreamsTransport
from ..transports.redis.names import ClusterNames, RedisNames
from ..transports.redis.url import split_options

__all__ = [
    "DEFAULT_PREFIX",
    "DEFAULT_URL",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_UNHEALTHY",
    "EXIT_USAGE",
    "CliError",
    "Context",
    "Output",
    "Target",
    "UsageError",
    "broker_transport",
    "resolve_target",
]

DEFAULT_URL: Final = "redis://localhost:6379/0"
DEFAULT_PREFIX: Final = "quantum_core"
CLI_SERVICE: Final = "quantum-core-cli"
"""The service name of the CLI's own bus: the ``source`` of what it publishes."""

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_UNHEALTHY: Final = 3
"""``health``'s verdict UNHEALTHY: a code of its own, so a probe tells it from a usage error."""

_URL_FORMS: Final = (
    "redis://host:port/db, rediss://host:port/db, unix:///path/to/socket or, for a Redis "
    "Cluster, redis+cluster://host:port,host:port (credentials go before the host as "
    "user:password@)"
)
# The other brokers: ``dlq`` works through their transport's dead-letter abilities.
_BROKER_FORMS: Final = {
    "kafka": "kafka://host:port[,host:port...][?prefix=...]",
    "nats": "nats://[user:password@]host:port[,host:port...][?prefix=...]",
    "amqp": "amqp://user:password@host:port/vhost[?prefix=...] (amqps:// over TLS)",
}
_BROKER_NAMES: Final = {"kafka": "Kafka cluster", "nats": "NATS server", "amqp": "RabbitMQ broker"}


class CliError(Exception):
    """A failure the operator can act on: printed as one line on stderr, no traceback."""

    exit_code: int = EXIT_FAILED


class UsageError(CliError):
    """The command line itself is wrong: an argument, an option or the URL."""

    exit_code = EXIT_USAGE


@dataclass(frozen=True, slots=True)
class Target:
    """The Redis a command talks to, and the key prefixes it looks under.

    Attributes:
        url: The Redis URL without the transport's own query options (``?prefix=``...).
        address: ``host:port/db`` or the socket path, for messages: never a password.
        prefix: The bus's key prefix (streams ``{prefix}:stream:{event type}``).
        policy_prefix: The policy store's key prefix (``{policy_prefix}:current``).
        timeout: Seconds to connect, and to wait for one reply.
        scheme: ``"redis"``, or ``"kafka"``, ``"nats"``, ``"amqp"`` for another broker
            (``dlq`` only, through the transport).
        cluster: Whether the URL names a Redis Cluster (``redis+cluster://``).
    """

    url: str
    address: str
    prefix: str
    policy_prefix: str
    timeout: float
    scheme: str = "redis"
    cluster: bool = False

    @property
    def names(self) -> RedisNames:
        """The bus's key layout under the prefix (hash-tagged on a cluster)."""
        return ClusterNames(self.prefix) if self.cluster else RedisNames(self.prefix)

    def stream_key(self, event_type: str) -> str:
        """The stream of ``event_type``."""
        return self.names.stream(event_type)

    def dead_letter_key(self, event_type: str) -> str:
        """The dead-letter stream of ``event_type``."""
        return self.names.dead_letters(event_type)


def resolve_target(url: str, *, prefix: str | None, policy_prefix: str, timeout: float) -> Target:
    """Check the URL and the prefixes; the URL's ``?prefix=`` applies unless ``prefix`` is given.

    Raises:
        UsageError: for a URL redis-py cannot use, or a prefix with spaces.
    """
    scheme = url.partition("://")[0].lower().replace("amqps", "amqp")
    if scheme == "memory":
        raise UsageError(
            "memory:// is the in-process transport: its topics live inside one program, so "
            f"there is nothing to reach from outside; expected {_URL_FORMS}, or a "
            f"{', '.join(_BROKER_FORMS.values())} URL"
        )
    if scheme in _BROKER_FORMS and "://" in url:
        return _broker_target(
            url, scheme, prefix=prefix, policy_prefix=policy_prefix, timeout=timeout
        )
    masked = redact_text(url)
    try:
        clean, options = split_options(url)  # the transport's own options, as it reads them
        url_prefix = options.get("prefix")
        parts = urlsplit(clean)
        cluster = is_cluster(clean)
        if cluster:
            startup, _ = cluster_settings(clean, owner="quantum-core")
            address = "cluster " + ",".join(f"{host}:{port}" for host, port in startup)
        else:
            database = parts.path.strip("/") if parts.scheme in ("redis", "rediss") else ""
            if database and not database.isdigit():
                raise ValueError(f"the database must be a number, got {database!r}")
            pool = redis.ConnectionPool.from_url(clean)
            # Refuses options redis-py does not know; does not connect. redis-py leaves it bare.
            pool.make_connection()  # type: ignore[no-untyped-call]
            address = _address(pool.connection_kwargs)
    except (ValueError, TypeError) as error:
        raise UsageError(f"invalid Redis URL {masked!r}: {error}; expected {_URL_FORMS}") from None
    bus_prefix = next(p for p in (prefix, url_prefix, DEFAULT_PREFIX) if p is not None)
    for name, value in (("--prefix", bus_prefix), ("--policy-prefix", policy_prefix)):
        try:
            check_name(name, value)
        except ValueError as error:
            raise UsageError(str(error)) from None
    if cluster:
        try:
            ClusterNames(bus_prefix)
        except ValueError as error:
            raise UsageError(str(error)) from None
    return Target(
        url=clean,
        address=address,
        prefix=bus_prefix,
        policy_prefix=policy_prefix,
        timeout=timeout,
        cluster=cluster,
    )


def _broker_target(
    url: str, scheme: str, *, prefix: str | None, policy_prefix: str, timeout: float
) -> Target:
    """Another broker: ``dlq`` reads its dead letters through its transport.

    Its URL module is imported here only (it loads the broker's client library).
    """
    try:
        base, url_prefix, address = _broker_url(url, scheme)
    except (ValueError, TypeError) as error:
        raise UsageError(
            f"invalid {scheme} URL {redact_text(url)!r}: {error}; expected {_BROKER_FORMS[scheme]}"
        ) from None
    bus_prefix = next(p for p in (prefix, url_prefix, DEFAULT_PREFIX) if p is not None)
    try:
        check_name("--prefix", bus_prefix)
    except ValueError as error:
        raise UsageError(str(error)) from None
    return Target(
        url=base,
        address=address,
        prefix=bus_prefix,
        policy_prefix=policy_prefix,
        timeout=timeout,
        scheme=scheme,
    )


def _broker_url(url: str, scheme: str) -> tuple[str, str | None, str]:
    """The URL without the transport's options, the URL's prefix, and a password-free address."""
    if scheme == "kafka":
        from ..transports.kafka.url import parse_kafka_url

        kafka = parse_kafka_url(url)
        address = ",".join(kafka.servers)
        return f"kafka://{address}", kafka.options.get("prefix"), address
    if scheme == "nats":
        from ..transports.nats.url import parse_nats_url

        nats = parse_nats_url(url)
        hosts = [urlsplit(server) for server in nats.servers]
        address = ",".join(f"{part.hostname}:{part.port or 4222}" for part in hosts)
        return url.partition("?")[0], nats.options.get("prefix"), address
    from ..transports.rabbitmq.url import split_options as split_amqp

    clean, options = split_amqp(url)
    part = urlsplit(clean)
    address = f"{part.hostname}:{part.port or 5672}{part.path or '/'}"
    return clean, options.get("prefix"), address


def _address(settings: dict[str, Any]) -> str:
    if "path" in settings:
        return f"unix://{settings['path']}"
    host, port = settings.get("host", "localhost"), settings.get("port", 6379)
    return f"{host}:{port}/{settings.get('db', 0)}"


def open_client(target: Target) -> Any:
    """A client that connects within ``timeout`` and never retries: failure shows at once.

    A ``RedisCluster`` for a cluster URL: it finds the masters from the nodes named.
    """
    if target.cluster:
        startup, settings = cluster_settings(target.url, owner="quantum-core")
        settings.update(
            socket_connect_timeout=target.timeout,
            socket_timeout=target.timeout,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
            encoding_errors="backslashreplace",
        )
        return open_cluster(startup, settings)
    return redis.Redis.from_url(
        target.url,
        socket_connect_timeout=target.timeout,
        socket_timeout=target.timeout,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
        encoding_errors="backslashreplace",  # a key that is not UTF-8 still prints
    )


def unreachable(target: Target, error: BaseException) -> CliError:
    """The one-line error for a Redis that cannot be used, saying what to check."""
    if isinstance(error, AuthenticationError) or (
        isinstance(error, ResponseError) and str(error).startswith(("NOAUTH", "WRONGPASS"))
    ):
        return CliError(
            f"Redis at {target.address} refused the credentials: {_text(error)}; check the "
            "user and password in --url / REDIS_URL"
        )
    return CliError(
        f"cannot reach Redis at {target.address} (within {target.timeout:g} s): {_text(error)}; "
        "check --url / REDIS_URL and that the server is up"
    )


def _text(error: BaseException) -> str:
    return str(error).rstrip(". ") or type(error).__name__


class Context:
    """One command's connections, opened when first needed and all closed at the end.

    Args:
        target: The bus's broker and prefix (``--url``, ``--prefix``).
        policy_url: The policy store's Redis (``--policy-url``); None: the bus's Redis when
            ``--url`` is one, else ``$REDIS_URL``, else the default.
    """

    def __init__(self, target: Target, policy_url: str | None = None) -> None:
        self.target = target
        self._policy_url = policy_url
        self._policy_target: Target | None = None
        self._client: Any = None
        self._policy_client: Any = None
        self._bus: EventBus | None = None

    @property
    def policy_target(self) -> Target:
        """The Redis the policy store lives in, checked.

        Raises:
            UsageError: when ``--policy-url`` is not a Redis URL.
        """
        if self._policy_target is None:
            url = self._policy_url
            if url is None and self.target.scheme == "redis":
                self._policy_target = self.target
                return self.target
            url = url or os.environ.get("REDIS_URL") or DEFAULT_URL
            target = resolve_target(
                url,
                prefix=None,
                policy_prefix=self.target.policy_prefix,
                timeout=self.target.timeout,
            )
            if target.scheme != "redis":
                raise UsageError(
                    f"--policy-url must name a Redis: the risk policy is kept in Redis, "
                    f"not on a {_BROKER_NAMES[target.scheme]} ({target.address}); expected "
                    f"{_URL_FORMS}"
                )
            self._policy_target = target
        return self._policy_target

    async def policy_redis(self) -> Any:
        """A client of the policy store's Redis that has answered PING.

        Raises:
            CliError: when the server cannot be reached or refuses the credentials.
        """
        target = self.policy_target
        if target is self.target:
            return await self.redis()
        if self._policy_client is None:
            self._policy_client = await _pinged(target)
        return self._policy_client

    async def redis(self) -> Any:
        """A client that has answered PING.

        Raises:
            CliError: when the server cannot be reached or refuses the credentials.
        """
        if self.target.scheme != "redis":
            broker = _BROKER_NAMES[self.target.scheme]
            raise UsageError(f"this command needs Redis; {self.target.address} is a {broker}")
        if self._client is None:
            self._client = await _pinged(self.target)
        return self._client

    async def bus(self) -> EventBus:
        """A publish-only EventBus under the bus prefix (dead letters, replays, announces)."""
        if self._bus is None:
            target = self.target
            transport = (
                RedisStreamsTransport(await self.redis(), prefix=target.prefix)
                if target.scheme == "redis"
                else broker_transport(target)
            )
            self._bus = EventBus(transport, service_name=CLI_SERVICE)
            await self._bus.initialize()
        return self._bus

    async def aclose(self) -> None:
        """Close every connection the command opened."""
        if self._bus is not None:
            await self._bus.transport.close()
        for client in (self._client, self._policy_client):
            if client is not None:
                await client.aclose()


async def _pinged(target: Target) -> Any:
    """A client of the Redis ``target`` names, once it answered PING."""
    client = open_client(target)
    try:
        await client.ping()
    except (RedisError, RedisClusterException, OSError) as error:
        await client.aclose()
        raise unreachable(target, error) from None
    return client


def broker_transport(target: Target) -> Transport:
    """The transport of a NATS, RabbitMQ or Kafka target, with the CLI's prefix and timeout."""
    return transport_from_url(_with_options(target))


def _with_options(target: Target) -> str:
    """The broker's URL with the transport options the CLI sets: the prefix, the timeout."""
    options = {"prefix": target.prefix}
    if target.scheme == "kafka":
        options["request_timeout"] = f"{target.timeout:g}"
    joiner = "&" if "?" in target.url else "?"
    return target.url + joiner + "&".join(f"{key}={value}" for key, value in options.items())


class Output:
    """Everything the CLI prints: tables or JSON on stdout, messages on stderr, all scrubbed.

    Streams are looked up at each write, so a caller (a test) that swaps ``sys.stdout``
    gets the output.
    """

    def __init__(self, scrubber: Scrubber, *, json_mode: bool = False) -> None:
        self.scrubber = scrubber
        self.json_mode = json_mode

    def line(self, text: str = "") -> None:
        """Write one line of human-readable output."""
        sys.stdout.write(self.scrubber.text(text) + "\n")

    def json(self, value: Any) -> None:
        """Write ``value`` as indented JSON."""
        text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
        sys.stdout.write(self.scrubber.text(text) + "\n")

    def table(self, headers: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
        """Write a table, columns aligned, ``-`` for a missing value."""
        cells = [list(headers)] + [["-" if v is None else str(v) for v in row] for row in rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
        for row in cells:
            self.line("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())

    def note(self, text: str) -> None:
        """Write a message for the operator on stderr (not part of the output)."""
        sys.stderr.write(self.scrubber.text(text) + "\n")
        sys.stderr.flush()

    def error(self, text: str) -> None:
        """Write ``quantum-core: error: <text>`` as one line on stderr."""
        self.note("quantum-core: error: " + " ".join(str(text).split()))


def one_line(text: str, width: int) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."
