"""``nats://`` URLs: the servers for nats-py, the transport's options out of the query.

``nats://[user:password@]host:4222[,host2:4222]?prefix=trading&ack_wait=30``. Errors name
the option and its value, never the URL (it may hold a password); :func:`redact_server`
gives a server URL without its password, for reprs, logs and errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

__all__ = ["NatsURL", "parse_nats_url", "redact_server"]


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
