"""``kafka://`` URLs: the bootstrap servers, and the transport's options out of the query.

``kafka://host:9092[,host2:9092]?prefix=trading&partitions=6&session_timeout=10``. Errors
name the option and its value, never the whole URL. Credentials are not taken from the URL:
a ``user:password@`` part is refused (SASL is not supported yet), so a password never ends
up in a repr, a log line or an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..._url_options import URLOptions

__all__ = ["KafkaURL", "parse_kafka_url"]


@dataclass(frozen=True, slots=True)
class KafkaURL:
    """A ``kafka://`` URL taken apart: ``host:port`` servers and the transport's options."""

    servers: list[str]
    options: dict[str, Any]


def parse_kafka_url(url: str) -> KafkaURL:
    """Split ``kafka://host:port[,host:port...]?option=value...``; errors never echo the URL."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # such as an unbalanced '[' (IPv6)
        raise ValueError(f"a kafka:// URL that cannot be parsed: {exc}") from None
    if parts.scheme.lower() != "kafka":
        raise ValueError(f"not a kafka:// URL (scheme {parts.scheme!r})")
    netloc = parts.netloc
    if "@" in netloc:
        raise ValueError(
            "credentials in a kafka:// URL are not supported (SASL is not implemented); "
            "give only host:port servers"
        )
    given = URLOptions(parts.query, label="kafka://")
    read = {
        "prefix": given.text("prefix"),
        "partitions": given.integer("partitions"),
        "replication_factor": given.integer("replication_factor"),
        "session_timeout": given.seconds("session_timeout"),
        "revoke_wait": given.seconds("revoke_wait"),
        "request_timeout": given.seconds("request_timeout"),
    }
    given.rest(client_options=())
    options = {name: value for name, value in read.items() if value is not None}
    servers = [server.strip() for server in netloc.split(",") if server.strip()]
    if not servers:
        raise ValueError("a kafka:// URL needs a server, such as kafka://127.0.0.1:9092")
    for server in servers:
        host, _, port = server.rpartition(":")
        if not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
            raise ValueError(
                f"a kafka:// server must be host:port, such as 127.0.0.1:9092; got {server!r}"
            )
    return KafkaURL(servers=servers, options=options)
