"""The NATS JetStream transport: durable topics and consumer groups on a NATS server or cluster.

Layout on the server (``prefix`` defaults to ``quantum_core``; it must be letters, digits,
``_`` or ``-``, as it is a stream name and a subject token at once):

* stream ``{prefix}``, subjects ``{prefix}.events.>``: every event; the event type is the rest
  of the subject, ``{prefix}.events.{event type}`` (event types are dot-separated words,
  valid subject tokens as they are). Kept per event type: ``maxlen`` messages
  (``max_msgs_per_subject``) and, with ``max_age``, for that long.
* one durable pull consumer per event type and subscribing group (``{service}:{handler}``),
  filtered on the event type's subject, named ``{group}__{event type}`` squashed to the
  characters a consumer name may hold, plus a hash of the exact pair (the description
  holds both readable). Replicas of a service pull from the same consumer.
* stream ``{prefix}_dead_letters``, subjects ``{prefix}.dead.>``: dead letters, one message
  per event set aside, on ``{prefix}.dead.{event type}``; its id is the stream sequence.
* KV bucket ``{prefix}_handled`` (stream ``KV_{prefix}_handled``): for ``idempotent=True``
  subscriptions, a key ``{group}.{event id}`` per event the group's handler completed,
  holding the time it expires.

Delivery: a pull request with ``no_wait`` takes what is there (up to the bus's read count);
when nothing is, a request for one message waits up to the bus's poll time; a fetch that
empties its buffer sends the next ``no_wait`` request before it returns. Explicit ack
after the handler returned; a message a consumer does not acknowledge within ``ack_wait``
goes to another replica, with its delivery count (``num_delivered``) raised. A live
consumer sends an in-progress ack (``+WPI``) for what it holds every third of ``ack_wait``,
so a slow handler or a retry wait is never mistaken for a dead consumer; a subscription
that closes hands back what it still holds at once (NAK).

Names: ``names.py``; URL options: ``url.py``; the connection: ``connection.py``; what the
transport and its subscriptions share (connection, streams, consumers): ``state.py``; dead
letters: ``dead_letters.py``; handled-records: ``handled.py``; acked publishes:
``publisher.py``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..._checks import check_choice, check_int, check_seconds, check_text
from ...bus.abilities import TopicSummary
from ...bus.registry import register_transport
from ...bus.transport import Subscription, Transport
from ...errors import TransportError
from .names import PREFIX_PATTERN, Names
from .url import parse_nats_url, redact_server

try:
    import nats.errors
    import nats.js.errors
    from nats.aio.client import Client
    from nats.js import api

    from .connection import Liveness
    from .dead_letters import delete_dead_letters, read_dead_letters, sequence_id
    from .state import NatsState, StreamSettings
    from .subscription import NatsSubscription
    from .topics import list_topics
except ModuleNotFoundError as exc:  # the nats extra is not installed
    if not (exc.name or "").startswith("nats"):
        raise
    _NATS_MISSING: ModuleNotFoundError | None = exc
else:
    _NATS_MISSING = None

__all__ = ["NatsJetStreamTransport"]

_MISSING_EXTRA = (
    "the NATS JetStream transport needs nats-py, which is not installed: "
    "pip install 'quantum-core-sdk[nats]'"
)


class NatsJetStreamTransport(Transport):
    """Topics as subjects of one JetStream stream, shared by every process on the same prefix.

    Args:
        client: A connected ``nats.aio.client.Client``, or a ``nats://`` URL (several servers
            separated by commas). A client is never closed: the transport only adds its own
            subscriptions to it, and removes them on :meth:`close`. From a URL it opens a
            connection of its own, on first use, that reconnects for ever.
        prefix: Names the streams, subjects and bucket (letters, digits, ``_``, ``-``).
        ack_wait: Seconds a delivered message may go unacknowledged, without an in-progress
            ack, before it is delivered again (to any replica): how long the events of a
            consumer that died wait for a live one. ``claim_idle`` in a URL means the same.
        max_ack_pending: Messages one group may hold unacknowledged (fetched, being handled or
            waiting for a retry) across its replicas; at the limit, JetStream delivers no more.
        maxlen: Messages the stream keeps per event type; older ones are dropped, whether or
            not every group has read them.
        max_age: Seconds the stream keeps a message (None: until ``maxlen`` drops it).
        dead_letter_maxlen: Dead letters kept per event type.
        storage: ``"file"`` (survives a server restart) or ``"memory"``.
        replicas: Copies of each stream in a JetStream cluster.
        publish_timeout: Seconds ``publish`` waits for JetStream to store a batch; also the
            bound of every other request to JetStream (``stats()``, dead letters...).
        ping_interval: Seconds between the pings that prove the connection is alive.
        max_outstanding_pings: Pings in a row left unanswered before the connection is given
            up and a new one made: a network path that froze silently is left within
            ``ping_interval * (max_outstanding_pings + 1)`` seconds (15 by default). Both
            apply to a connection the transport opens, not to a client it was given.

    An existing stream keeps the configuration it has: the options above apply when the
    transport creates it (change a stream with ``nats stream edit``).
    """

    def __init__(
        self,
        client: Client | str = "nats://127.0.0.1:4222",
        *,
        prefix: str = "quantum_core",
        ack_wait: float = 30.0,
        max_ack_pending: int = 20_000,
        maxlen: int | None = 1_000_000,
        max_age: float | None = None,
        dead_letter_maxlen: int = 100_000,
        storage: str = "file",
        replicas: int = 1,
        publish_timeout: float = 5.0,
        ping_interval: float = 5.0,
        max_outstanding_pings: int = 2,
    ) -> None:
        if _NATS_MISSING is not None:
            raise ImportError(_MISSING_EXTRA) from _NATS_MISSING
        check_text(
            "prefix",
            prefix,
            pattern=PREFIX_PATTERN,
            expected="1-64 letters, digits, '_' or '-' (it names a JetStream stream and a "
            "subject token)",
        )
        ack_wait = check_seconds("ack_wait", ack_wait, positive=True)
        publish_timeout = check_seconds("publish_timeout", publish_timeout, positive=True)
        ping_interval = check_seconds("ping_interval", ping_interval, positive=True)
        if max_age is not None:
            max_age = check_seconds("max_age", max_age, positive=True)
        if maxlen is not None:
            maxlen = check_int("maxlen", maxlen)
        max_ack_pending = check_int("max_ack_pending", max_ack_pending)
        dead_letter_maxlen = check_int("dead_letter_maxlen", dead_letter_maxlen)
        replicas = check_int("replicas", replicas)
        max_outstanding_pings = check_int("max_outstanding_pings", max_outstanding_pings)
        storage = check_choice("storage", storage, ("file", "memory"))
        if isinstance(client, str):
            servers: list[str] | None = parse_nats_url(client).servers
            given: Client | None = None
        elif isinstance(client, Client):
            servers, given = None, client
        else:
            raise TypeError(
                "NatsJetStreamTransport takes a nats:// URL or a connected "
                f"nats.aio.client.Client, got {type(client).__name__}"
            )
        self.prefix = prefix
        self.names = Names(prefix)
        self.ack_wait = float(ack_wait)
        self.max_ack_pending = max_ack_pending
        self.publish_timeout = float(publish_timeout)
        self.liveness = Liveness(float(ping_interval), max_outstanding_pings)
        settings = StreamSettings(
            ack_wait=self.ack_wait,
            max_ack_pending=max_ack_pending,
            maxlen=maxlen,
            max_age=max_age,
            dead_letter_maxlen=dead_letter_maxlen,
            storage=api.StorageType.FILE if storage == "file" else api.StorageType.MEMORY,
            replicas=replicas,
        )
        self._state = NatsState(
            self.names,
            settings,
            servers=servers,
            client=given,
            publish_timeout=self.publish_timeout,
            liveness=self.liveness,
        )

    def __repr__(self) -> str:
        servers = self._state.servers
        where = (
            [redact_server(server) for server in servers]
            if servers is not None
            else "a client it was given"
        )
        return f"<NatsJetStreamTransport servers={where} prefix={self.prefix!r}>"

    async def publish(self, topic: str, messages: Sequence[bytes]) -> None:
        """Publish every message and return once JetStream acknowledged storing each one."""
        if not messages:
            return
        subject = self.names.subject(topic)
        state = self._state
        try:
            publisher = await state.ready_publisher()
            await state.ensure_stream()
            try:
                await publisher.publish(subject, messages)
            except nats.js.errors.NoStreamResponseError:  # the stream was lost: make it again
                state.stream_lost()
                await state.ensure_stream()
                await publisher.publish(subject, messages)
        except TimeoutError:
            raise TransportError(
                f"JetStream did not confirm storing {len(messages)} message(s) on {subject!r} "
                f"within {self.publish_timeout}s (is the NATS server reachable?)"
            ) from None
        except (nats.errors.Error, OSError) as exc:
            raise TransportError(f"could not publish to {subject!r}: {exc}") from exc

    async def subscribe(
        self, topic: str, *, group: str, consumer: str, from_beginning: bool = False
    ) -> Subscription:
        """Create the group's durable consumer if needed, and a subscription pulling from it."""
        state = self._state
        client = await state.ready_client()
        js = await state.ready_js()
        durable = self.names.durable(topic, group)
        try:
            await state.ensure_stream()
            info = await state.ensure_consumer(topic, group, from_beginning=from_beginning)
        except nats.errors.Error as exc:
            raise TransportError(f"could not create consumer {durable!r}: {exc}") from exc
        ack_wait = info.config.ack_wait or self.ack_wait
        subscription = NatsSubscription(state, client, js, topic, group, durable, ack_wait)
        await subscription.start()
        state.subscriptions.add(subscription)
        return subscription

    async def restore_dead_letter(self, topic: str, record: bytes) -> None:
        """Store ``record`` as a dead letter of ``topic`` again, under a new sequence."""
        try:
            await self._state.publish_dead_letter(topic, record, f"restored:{os.urandom(8).hex()}")
        except nats.errors.Error as exc:
            raise TransportError(f"storing a dead letter of {topic!r} failed: {exc}") from exc

    async def read_dead_letters(
        self, topic: str, limit: int, *, start: str | None = None
    ) -> Sequence[tuple[str, bytes]]:
        """Read the topic's dead letters from the sequence ``start`` on, oldest first."""
        first = 1 if start is None else sequence_id(start)
        js = await self._state.ready_js()
        try:
            return await read_dead_letters(js, self.names, topic, limit, first)
        except nats.errors.Error as exc:
            raise TransportError(f"reading dead letters of {topic!r} failed: {exc}") from exc

    async def delete_dead_letters(self, topic: str, ids: Sequence[str] | None) -> int:
        """Delete these dead letters of the topic (all of them for None); return how many."""
        sequences = None if ids is None else [sequence_id(letter_id) for letter_id in ids]
        client = await self._state.ready_client()
        js = await self._state.ready_js()
        try:
            return await delete_dead_letters(
                client, js, self.names, topic, sequences, self.publish_timeout
            )
        except nats.errors.Error as exc:
            raise TransportError(f"deleting dead letters of {topic!r} failed: {exc}") from exc

    async def list_topics(self) -> Sequence[TopicSummary]:
        """Every topic under the prefix, its dead letters, and its groups' backlogs."""
        js = await self._state.ready_js()
        try:
            return await list_topics(js, self.names)
        except nats.errors.Error as exc:
            raise TransportError(f"listing the topics under {self.prefix!r} failed: {exc}") from exc

    async def ping(self) -> None:
        """Ask JetStream for the account's info: the server answers and has JetStream."""
        try:
            js = await self._state.ready_js()
            await js.account_info()
        except TransportError:
            raise
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            raise TransportError(f"NATS JetStream did not answer: {exc!r}") from exc

    async def close(self) -> None:
        """Close the subscriptions, and the connection if this transport opened it."""
        await self._state.close()


def transport_from_nats_url(url: str) -> NatsJetStreamTransport:
    """Build a transport from ``nats://[user:password@]host:4222[,host2:4222]?option=...``.

    Options in the query: ``prefix``, ``ack_wait`` (or ``claim_idle``), ``max_ack_pending``,
    ``maxlen``, ``max_age``, ``dead_letter_maxlen``, ``storage``, ``replicas``,
    ``ping_interval`` and ``max_outstanding_pings``.
    """
    if _NATS_MISSING is not None:
        raise ImportError(_MISSING_EXTRA) from _NATS_MISSING
    options = parse_nats_url(url).options
    return NatsJetStreamTransport(url.partition("?")[0], **options)


register_transport("nats", transport_from_nats_url)
