"""``kafka://`` URLs: the bootstrap servers, and the transport's options out of the query.

``kafka://host:9092[,host2:9092]?prefix=trading&partitions=6&session_timeout=10``. Errors
name the option and its value, never the whole URL. Credentials are not taken from the URL:
a ``user:password@`` part is refused (SASL is not supported yet), so a password never ends
up in a repr, a log line or an error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

__all__ = ["KafkaURL", "parse_kafka_url"]


@dataclass(frozen=True, slots=True)
class KafkaURL:
    """A ``kafka://`` URL taken apart: ``host:port`` servers and the transport's options."""

    servers: list[str]
    options: dict[str, Any]


def _seconds(value: str) -> float:
    number = float(value)
    if not 0 < number < float("inf"):
        raise ValueError(value)
    return number


def _count(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


_OPTIONS: dict[str, tuple[Callable[[str], Any], str]] = {
    "prefix": (str, "letters, digits, '_' or '-'"),
    "partitions": (_count, "a whole number >= 1"),
    "replication_factor": (_count, "a whole number >= 1"),
    "session_timeout": (_seconds, "a positive number of seconds"),
    "revoke_wait": (_seconds, "a positive number of seconds"),
    "request_timeout": (_seconds, "a positive number of seconds"),
}


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
    options: dict[str, Any] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name not in _OPTIONS:
            raise ValueError(
                f"unknown option {name!r} in a kafka:// URL; known: {', '.join(sorted(_OPTIONS))}"
            )
        if name in options:
            raise ValueError(f"kafka:// URL option {name!r} is given twice")
        convert, expected = _OPTIONS[name]
        try:
            options[name] = convert(value)
        except ValueError:
            raise ValueError(
                f"kafka:// URL option {name}={value!r} is not valid: expected {expected}"
            ) from None
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
