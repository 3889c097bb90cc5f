"""The brokers a test runs on: whether one answers, a URL of the test's own, cleaning up after.

Why here: the pytest plugin (``quantum_core_transport``) and our own suite need the same
three things of every broker, and each broker needs them differently. A test gets a
namespace (a transport's ``prefix``) no other test uses, so tests on one shared server never
see each other's events, and what the namespace left on the server is deleted afterwards.

Where the servers are: ``QUANTUM_CORE_TEST_REDIS_URL``, ``QUANTUM_CORE_TEST_NATS_URL``,
``QUANTUM_CORE_TEST_AMQP_URL`` and ``QUANTUM_CORE_TEST_KAFKA_URL``, else the default port on
loopback. Nothing here imports a broker library until its broker is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import socket
import uuid
from collections.abc import Coroutine, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, NoReturn, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .._redaction import redact_text

__all__ = [
    "BROKERS",
    "AmqpBroker",
    "Broker",
    "KafkaBroker",
    "MemoryBroker",
    "NatsBroker",
    "RedisBroker",
    "delete_kafka_namespace",
    "delete_nats_namespace",
    "delete_rabbitmq_names",
    "nats_server_unavailable",
    "new_namespace",
    "skip_or_fail",
]

_T = TypeVar("_T")
_NAMESPACE_START: Final = "qc_test_"


def new_namespace() -> str:
    """A name no other test uses, valid as every broker's prefix (``qc_test_`` and 12 hex)."""
    return f"{_NAMESPACE_START}{uuid.uuid4().hex[:12]}"


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the test saying why; fail it instead when the ``CI`` variable is set.

    A developer without a server still gets a run; CI, which must run every test it was
    given, never passes by skipping.
    """
    import pytest

    ci = os.environ.get("CI", "")
    if ci.strip().lower() not in ("", "0", "false", "no"):
        pytest.fail(f"{reason}; CI={ci!r} requires it", pytrace=False)
    pytest.skip(reason)


def _with_options(url: str, **options: str) -> str:
    """``url`` with these query options set (others kept)."""
    parts = urlsplit(url)
    query = [(key, value) for key, value in parse_qsl(parts.query) if key not in options]
    return urlunsplit(parts._replace(query=urlencode([*query, *options.items()])))


def _in_a_thread(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coroutine`` on an event loop of its own: a test's loop is never touched."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="quantum_core-test") as pool:
        return pool.submit(asyncio.run, coroutine).result()


class Broker:
    """One broker as tests see it; a subclass says how to reach and clean its server."""

    scheme: str = ""
    variable: str | None = None  # the environment variable naming the server
    default_url: str = ""
    library: str | None = None  # the import name of its client library, if optional
    package: str = ""  # that library's name to pip
    install: str = ""  # what to install when it is missing

    @property
    def base_url(self) -> str:
        """The server's URL, from the environment or the loopback default."""
        return os.environ.get(self.variable, self.default_url) if self.variable else ""

    def unavailable(self) -> str | None:
        """Why no test can run on this broker now, or None when one can."""
        if self.library is not None and importlib.util.find_spec(self.library) is None:
            return f"{self.scheme}: {self.package} is not installed ({self.install})"
        why = self._server_unavailable()
        if why is None:
            return None
        where = redact_text(self.base_url)
        return (
            f"{self.scheme}: no server answers at {where} ({why}); set {self.variable} "
            "to where one runs, or leave it out with --quantum-core-transports"
        )

    def _server_unavailable(self) -> str | None:
        return None

    def url(self, namespace: str) -> str:
        """A URL whose transports keep everything under ``namespace``."""
        return _with_options(self.base_url, prefix=namespace)

    def clean(self, namespace: str) -> None:
        """Delete what the transports of ``namespace`` left on the server."""


class MemoryBroker(Broker):
    """``memory://<namespace>``: one in-process broker per test, shared by its buses.

    A plain ``memory://`` gives every bus a private broker; a test's service and probe
    buses must meet, as they would on a server, so the plugin names a broker per test.
    """

    scheme = "memory"

    def __init__(self) -> None:
        self._named: dict[str, Any] = {}
        self._registered = False

    def url(self, namespace: str) -> str:
        """The URL of a broker of the test's own, which every bus built from it shares."""
        from ..transports.memory import MemoryTransport

        self._register()
        self._named[namespace] = MemoryTransport()
        return f"memory://{namespace}"

    def clean(self, namespace: str) -> None:
        """Forget the test's broker."""
        self._named.pop(namespace, None)

    def _register(self) -> None:
        """Build ``memory://`` URLs here, so that a URL named by a test finds its broker."""
        if self._registered:
            return
        from ..bus.registry import register_transport
        from ..transports.memory import MemoryTransport

        named = self._named

        def from_url(url: str) -> MemoryTransport:
            broker: MemoryTransport | None = named.get(urlsplit(url).netloc)
            return MemoryTransport() if broker is None else broker  # plain memory:// as ever

        register_transport("memory", from_url)
        self._registered = True


class RedisBroker(Broker):
    """Redis Streams: the namespace's keys (``<namespace>:*``) are deleted afterwards."""

    scheme = "redis"
    variable = "QUANTUM_CORE_TEST_REDIS_URL"
    default_url = "redis://127.0.0.1:6379/0"

    def _server_unavailable(self) -> str | None:
        import redis

        client = redis.Redis.from_url(self.base_url, socket_timeout=2, socket_connect_timeout=2)
        try:
            client.ping()
        except redis.RedisError as exc:
            return redact_text(str(exc))
        finally:
            client.close()
        return None

    def clean(self, namespace: str) -> None:
        """Delete every key under the namespace."""
        import redis

        client = redis.Redis.from_url(self.base_url)
        try:
            keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
            for start in range(0, len(keys), 1000):
                client.unlink(*keys[start : start + 1000])
        finally:
            client.close()


class NatsBroker(Broker):
    """NATS JetStream: the namespace's streams (and KV buckets) are deleted afterwards."""

    scheme = "nats"
    variable = "QUANTUM_CORE_TEST_NATS_URL"
    default_url = "nats://127.0.0.1:4222"
    library = "nats"
    package = "nats-py"
    install = "pip install 'quantum-core-sdk[nats]'"

    def _server_unavailable(self) -> str | None:
        return nats_server_unavailable(self.base_url)

    def clean(self, namespace: str) -> None:
        """Delete every stream of the namespace, with its consumers."""
        _in_a_thread(delete_nats_namespace(self.base_url, namespace))


def nats_server_unavailable(url: str, timeout: float = 1.0) -> str | None:
    """None if a NATS server with JetStream greets us at ``url``, else why not."""
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or 4222), timeout=timeout
        ) as sock:
            greeting = sock.recv(4096)
    except OSError as exc:
        return str(exc)
    if not greeting.startswith(b"INFO "):
        return f"not a NATS server (it said {greeting[:40]!r})"
    if b'"jetstream":true' not in greeting.replace(b" ", b""):
        return "the server runs without JetStream (start it with -js)"
    return None


async def delete_nats_namespace(url: str, namespace: str) -> None:
    """Delete the streams named ``namespace`` or ``namespace_...`` (KV buckets too)."""
    import nats
    import nats.js.errors

    def ours(name: str) -> bool:
        for start in (namespace, f"KV_{namespace}", f"OBJ_{namespace}"):
            if name == start or name.startswith(f"{start}_"):
                return True
        return False

    client = await nats.connect(url, allow_reconnect=False)
    try:
        js = client.jetstream()
        for info in await js.streams_info():
            name = info.config.name
            if name is not None and ours(name):
                with contextlib.suppress(nats.js.errors.NotFoundError):
                    await js.delete_stream(name)
    finally:
        await client.close()


class AmqpBroker(Broker):
    """RabbitMQ: the namespace's exchange and the queues its transports declared are deleted.

    RabbitMQ cannot list queues over AMQP, so while a test runs, ``amqp://`` URLs carrying a
    test's namespace build a transport that notes the queues its topics and groups use; the
    prefix's catalog names those of any other transport (``delete_rabbitmq_names``).
    """

    scheme = "amqp"
    variable = "QUANTUM_CORE_TEST_AMQP_URL"
    default_url = "amqp://guest:guest@127.0.0.1:5672/"
    library = "aio_pika"
    package = "aio-pika"
    install = "pip install 'quantum-core-sdk[rabbitmq]'"

    def __init__(self) -> None:
        self._queues: dict[str, set[str]] = {}
        self._registered = False

    def _server_unavailable(self) -> str | None:
        return _in_a_thread(_amqp_server_unavailable(self.base_url))

    def url(self, namespace: str) -> str:
        """A URL whose transports note what they declare, for :meth:`clean`."""
        self._register()
        self._queues[namespace] = set()
        return super().url(namespace)

    def clean(self, namespace: str) -> None:
        """Delete the exchange and the queues the namespace's transports used."""
        queues = self._queues.pop(namespace, set())
        _in_a_thread(delete_rabbitmq_names(self.base_url, namespace, queues))

    def _register(self) -> None:
        if self._registered:
            return
        from ..bus.registry import register_transport
        from ..transports.rabbitmq.transport import transport_from_amqp_url
        from ._noting_rabbitmq import NotingRabbitMQTransport

        queues = self._queues

        def from_url(url: str) -> Any:
            noted = queues.get(dict(parse_qsl(urlsplit(url).query)).get("prefix", ""))
            if noted is None:
                return transport_from_amqp_url(url)
            return NotingRabbitMQTransport(url, noted)

        register_transport("amqp", from_url)
        register_transport("amqps", from_url)
        self._registered = True


async def _amqp_server_unavailable(url: str) -> str | None:
    import aio_pika

    try:
        connection = await aio_pika.connect(url, timeout=5)
    except Exception as exc:
        return redact_text(str(exc) or type(exc).__name__)
    await connection.close()
    return None


async def delete_rabbitmq_names(url: str, exchange: str, queues: Iterable[str]) -> None:
    """Delete these queues, those the prefix's catalog names, the catalog and the exchange.

    ``exchange`` is the prefix. The catalog (``transports/rabbitmq/catalog.py``) finds
    what transports nobody noted created (built from a URL, say). What is gone already is
    no error.
    """
    import aio_pika

    from ..transports.rabbitmq.names import catalog_stream

    names = {*queues, *await _catalogued_names(url, exchange), catalog_stream(exchange)}
    connection = await aio_pika.connect(url)
    try:
        for name in sorted(names):
            channel = await connection.channel()
            try:
                await channel.queue_delete(name)
            except aio_pika.exceptions.ChannelClosed:  # gone already: take another channel
                continue
            finally:
                if not channel.is_closed:
                    await channel.close()
        channel = await connection.channel()
        try:
            await channel.exchange_delete(exchange)
        finally:
            if not channel.is_closed:
                await channel.close()
    finally:
        await connection.close()


async def _catalogued_names(url: str, prefix: str) -> set[str]:
    """The queue names of every topic and group the prefix's catalog lists."""
    from ..transports.rabbitmq import RabbitMQTransport
    from ..transports.rabbitmq.names import dead_letter_queue, group_queue, history_stream

    transport = RabbitMQTransport(url, prefix=prefix, publish_timeout=30)
    try:
        topics = await transport.list_topics()
    finally:
        await transport.close()
    names: set[str] = set()
    for topic in topics:
        names.add(history_stream(prefix, topic.event_type))
        names.add(dead_letter_queue(prefix, topic.event_type))
        names.update(group_queue(prefix, topic.event_type, group.name) for group in topic.groups)
    return names


class KafkaBroker(Broker):
    """Kafka (Tansu in tests, on 127.0.0.1:19092): the namespace's topics are deleted after.

    Consumer groups are left to the broker's own expiry: Tansu cannot delete them, and an
    empty group of a deleted topic holds nothing.
    """

    scheme = "kafka"
    variable = "QUANTUM_CORE_TEST_KAFKA_URL"
    default_url = "kafka://127.0.0.1:19092"
    library = "aiokafka"
    package = "aiokafka"
    install = "pip install 'quantum-core-sdk[kafka]'"

    def url(self, namespace: str) -> str:
        """The namespace as prefix, with the fast rebalances tests want (2 s sessions)."""
        return _with_options(self.base_url, prefix=namespace, session_timeout="2")

    def _server_unavailable(self) -> str | None:
        parts = urlsplit(self.base_url)
        host, _, port = parts.netloc.split(",")[0].rpartition(":")
        try:
            with socket.create_connection((host, int(port or 9092)), timeout=1.0):
                return None
        except (OSError, ValueError) as exc:
            return str(exc)

    def clean(self, namespace: str) -> None:
        """Delete every topic whose name starts with the namespace."""
        _in_a_thread(delete_kafka_namespace(self.base_url, namespace))


async def delete_kafka_namespace(url: str, namespace: str) -> None:
    """Delete the topics named ``namespace.…`` (what is gone already is no error)."""
    from aiokafka.admin import AIOKafkaAdminClient

    servers = urlsplit(url.partition("?")[0]).netloc.split(",")
    admin = AIOKafkaAdminClient(bootstrap_servers=servers, request_timeout_ms=10_000)
    await admin.start()
    try:
        topics = [name for name in await admin.list_topics() if name.startswith(f"{namespace}.")]
        if topics:
            await admin.delete_topics(topics)
    finally:
        await admin.close()


BROKERS: Final[dict[str, Broker]] = {
    broker.scheme: broker
    for broker in (MemoryBroker(), RedisBroker(), NatsBroker(), AmqpBroker(), KafkaBroker())
}
"""Every broker a test can run on, by URL scheme, in the order tests run on them."""
