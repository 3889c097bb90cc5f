"""``redis://`` and ``rediss://`` URLs: the transport's own options out of the query.

``redis://localhost:6379/0?prefix=trading&claim_idle=10``: ``prefix``, ``maxlen``,
``max_age``, ``claim_idle`` and ``wait_replicas`` are the transport's; the rest of the URL
(the query's other options too) goes to redis-py as it is. ``redis+cluster://`` URLs too.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from ..._url_options import URLOptions

__all__ = ["split_options"]


def split_options(url: str) -> tuple[str, dict[str, Any]]:
    """Return the URL for redis-py (without our options) and our options, parsed.

    Raises:
        ValueError: naming the option whose value does not parse, or that is given twice.
    """
    parts = urlsplit(url)
    query = URLOptions(parts.query, label="Redis")
    given = {
        "prefix": query.text("prefix"),
        "maxlen": query.integer("maxlen"),
        "max_age": query.seconds("max_age"),
        "claim_idle": query.seconds("claim_idle"),
        "wait_replicas": query.integer("wait_replicas", minimum=0),
    }
    options = {name: value for name, value in given.items() if value is not None}
    return urlunsplit(parts._replace(query=urlencode(query.rest()))), options
