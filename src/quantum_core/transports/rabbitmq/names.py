"""Names on a RabbitMQ broker: one place decides them, and checks what RabbitMQ refuses.

Layout (``prefix`` defaults to ``quantum_core``):

* exchange ``{prefix}``: a durable topic exchange; each event is published with its event
  type as the routing key.
* queue ``{prefix}.group.{event type}.{group}``: a durable quorum queue per consumer group
  (``{service}:{handler}``), bound to the exchange with the event type's routing key.
* queue ``{prefix}.history.{event type}``: a stream bound the same way, the topic's
  retained history, from which a ``from_beginning`` group is filled when it is created.
* queue ``{prefix}.dead.{event type}``: the topic's dead letters (a durable classic queue).
* queue ``{prefix}.catalog``: a small stream noting the topics and groups the transports
  created, which ``list_topics`` reads (``catalog.py``).
"""

from __future__ import annotations

import hashlib
import re

from ..._checks import check_text

__all__ = [
    "catalog_stream",
    "check_prefix",
    "check_topic",
    "dead_letter_queue",
    "group_queue",
    "history_stream",
]

_MAX_NAME = 255  # AMQP 0-9-1 short strings: queue names and routing keys
_PREFIX = re.compile(r"(?!amq\.)[a-zA-Z0-9\-_.:@,/]{1,100}")
_TOPIC = re.compile(r"[^*#]+")
_UNSAFE = re.compile(r"[^a-zA-Z0-9\-_.:@,/ ]+")  # what pamqp takes in a queue name, but "#", "+"


def check_prefix(prefix: object) -> str:
    """Return ``prefix`` if RabbitMQ can use it as an exchange name, else raise ValueError."""
    return check_text(
        "prefix",
        prefix,
        pattern=_PREFIX,
        expected="1 to 100 letters, digits or '-_.:@,/', not starting with 'amq.' (reserved "
        "by RabbitMQ)",
    )


def check_topic(topic: object) -> str:
    """Return ``topic`` if it can be a routing key that matches only itself."""
    return check_text(
        "a RabbitMQ event type",
        topic,
        pattern=_TOPIC,
        max_bytes=_MAX_NAME,
        expected="a non-empty routing key of at most 255 bytes without '*' or '#' (they are "
        "wildcards in a topic exchange)",
    )


def group_queue(prefix: str, topic: str, group: str) -> str:
    """The quorum queue of ``group`` on ``topic``."""
    return _fit(f"{prefix}.group.{topic}.{group}")


def history_stream(prefix: str, topic: str) -> str:
    """The stream keeping ``topic``'s history, for groups that start from the beginning."""
    return _fit(f"{prefix}.history.{topic}")


def dead_letter_queue(prefix: str, topic: str) -> str:
    """The queue of ``topic``'s dead letters."""
    return _fit(f"{prefix}.dead.{topic}")


def catalog_stream(prefix: str) -> str:
    """The stream noting the prefix's topics and groups (``catalog.py``)."""
    return _fit(f"{prefix}.catalog")


def _fit(name: str) -> str:
    """Escape what a queue name cannot hold, then shorten a name over 255 bytes."""
    return _shorten(_UNSAFE.sub(_escape, name))


def _escape(match: re.Match[str]) -> str:
    """``+`` and each UTF-8 byte in hex: ``<locals>`` becomes ``+3clocals+3e``."""
    return "".join(f"+{byte:02x}" for byte in match.group().encode())


def _shorten(name: str) -> str:
    """Shorten a name over RabbitMQ's 255 bytes, keeping it unique with a digest."""
    raw = name.encode()
    if len(raw) <= _MAX_NAME:
        return name
    digest = hashlib.sha256(raw).hexdigest()[:16]
    head = raw[: _MAX_NAME - len(digest) - 1].decode(errors="ignore")
    return f"{head}@{digest}"  # "@": a character pamqp takes in a queue name ("~" it refuses)
