"""``redis://`` and ``rediss://`` URLs: the transport's own options out of the query.

``redis://localhost:6379/0?prefix=trading&claim_idle=10``: ``prefix``, ``maxlen``,
``max_age`` and ``claim_idle`` are the transport's; the rest of the URL (the query's other
options too) goes to redis-py as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["TRANSPORT_OPTIONS", "split_options"]

TRANSPORT_OPTIONS: dict[str, Callable[[str], Any]] = {
    "prefix": str,
    "maxlen": int,
    "max_age": float,
    "claim_idle": float,
    "wait_replicas": int,
}
"""Options of RedisStreamsTransport a URL may carry, with the type each value must parse as."""


def split_options(url: str) -> tuple[str, dict[str, Any]]:
    """Return the URL for redis-py (without our options) and our options, parsed.

    Raises:
        ValueError: naming the option whose value does not parse.
    """
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    options: dict[str, Any] = {}
    for name, value in query:
        if name in TRANSPORT_OPTIONS:
            parse = TRANSPORT_OPTIONS[name]
            try:
                options[name] = parse(value)
            except ValueError:
                kind = getattr(parse, "__name__", "value")
                raise ValueError(f"URL option {name}={value!r} is not a valid {kind}") from None
    rest = urlencode([(k, v) for k, v in query if k not in TRANSPORT_OPTIONS])
    return urlunsplit(parts._replace(query=rest)), options
