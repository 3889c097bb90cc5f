"""``nats://`` URLs: the servers for nats-py, the transport's options out of the query.

``nats://[user:password@]host:4222[,host2:4222]?prefix=trading&ack_wait=30``. Errors name
the option and its value, never the URL (it may hold a password); :func:`redact_server`
gives a server URL without its password, for reprs, logs and errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from ..._url_options import URLOptions

__all__ = ["NatsURL", "parse_nats_url", "redact_server"]


@dataclass(frozen=True, slots=True)
class NatsURL:
    """A ``nats://`` URL taken apart: the servers for nats-py and the transport's options."""

    servers: list[str]
    options: dict[str, Any]


def parse_nats_url(url: str) -> NatsURL:
    """Split ``nats://[user:password@]host:port[,host:port...]?option=value...``.

    The query holds the transport's options; everything before it goes to nats-py. Errors
    name the option and its value, never the URL (it may hold a password).
    """
    base, _, query = url.partition("?")
    given = URLOptions(query, label="nats://", aliases={"claim_idle": "ack_wait"})
    read = {
        "ping_interval": given.seconds("ping_interval"),
        "max_outstanding_pings": given.integer("max_outstanding_pings"),
        "prefix": given.text("prefix"),
        "ack_wait": given.seconds("ack_wait"),
        "max_ack_pending": given.integer("max_ack_pending"),
        "maxlen": given.integer("maxlen"),
        "max_age": given.seconds("max_age"),
        "dead_letter_maxlen": given.integer("dead_letter_maxlen"),
        "storage": given.choice("storage", ("file", "memory")),
        "replicas": given.integer("replicas"),
    }
    given.rest(client_options=())
    options = {name: value for name, value in read.items() if value is not None}
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
