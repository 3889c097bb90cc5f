"""``amqp://`` URLs for the RabbitMQ transport: our options out of the query, secrets hidden.

``amqp://user:password@host:5672/vhost?prefix=trading&history_max_bytes=0``: the options
of :class:`RabbitMQTransport` ride in the query beside the few aio-pika understands; any
other name is a mistake (a typo would otherwise be ignored silently), so it is an error.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from ..._url_options import URLOptions

__all__ = ["redact_url", "split_options"]

CLIENT_OPTIONS = frozenset(
    {
        "heartbeat",
        "timeout",
        "name",
        "auth",
        "cafile",
        "capath",
        "cadata",
        "keyfile",
        "certfile",
        "no_verify_ssl",
        "reconnect_interval",
        "fail_fast",
        "interleave",
        "happy_eyeballs_delay",
    }
)
"""Query options aio-pika (aiormq) reads itself; they stay in the URL it is given."""


def split_options(url: str) -> tuple[str, dict[str, Any]]:
    """Return the URL for aio-pika (without our options) and our options, parsed.

    Raises:
        ValueError: naming the option that is unknown, given twice or whose value does not
            parse.
    """
    if not isinstance(url, str):
        raise TypeError(f"a RabbitMQ URL must be a string, got {type(url).__name__}")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("amqp", "amqps"):
        raise ValueError(
            f"not a RabbitMQ URL: {redact_url(url)!r}; expected amqp://user:password@host:5672/"
            "vhost (or amqps://)"
        )
    if not parts.hostname:
        raise ValueError(f"RabbitMQ URL {redact_url(url)!r} names no host")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise ValueError(f"RabbitMQ URL {redact_url(url)!r} has an invalid port") from None
    query = URLOptions(parts.query, label="RabbitMQ")
    given = {
        "prefix": query.text("prefix"),
        "history_max_bytes": query.integer("history_max_bytes", minimum=0),
        "history_max_age": query.seconds("history_max_age"),
        "dead_letter_max": query.integer("dead_letter_max"),
        "consumer_timeout": query.seconds("consumer_timeout"),
        "publish_timeout": query.seconds("publish_timeout"),
    }
    rest = query.rest(CLIENT_OPTIONS)
    options = {name: value for name, value in given.items() if value is not None}
    return urlunsplit(parts._replace(query=urlencode(rest))), options


def redact_url(url: str) -> str:
    """The URL with its password replaced by ``***``, for reprs, logs and errors."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address goes back into brackets
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{user}:***@{host}" + (f":{port}" if port is not None else "")
    return urlunsplit(parts._replace(netloc=netloc))
