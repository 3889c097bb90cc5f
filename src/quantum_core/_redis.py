"""Connections of our own, copied from a user's Redis client or URL.

The bus and the policy store never use, change or close the client they are given: they open
connections with the same settings, always reading bytes (so no stored value can fail to
decode, whatever the client's ``decode_responses``) and connecting in bounded time.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as redis

__all__ = ["CONNECT_TIMEOUT", "connection_settings"]

CONNECT_TIMEOUT = 2.0


def connection_settings(client: redis.Redis | str, *, owner: str) -> tuple[Any, dict[str, Any]]:
    """Return the pool class and connection settings of ``client`` (a client or a URL).

    Raises:
        TypeError: naming ``owner`` and what it accepts, for anything else.
    """
    if isinstance(client, str):
        pool = redis.ConnectionPool.from_url(client)
    elif isinstance(client, redis.Redis):
        pool = client.connection_pool
    else:
        raise TypeError(
            f"{owner} needs a redis.asyncio.Redis client or a redis:// URL, "
            f"got {type(client).__module__}.{type(client).__name__}"
        )
    settings = dict(pool.connection_kwargs)
    settings["decode_responses"] = False
    if settings.get("socket_connect_timeout") is None:
        settings["socket_connect_timeout"] = CONNECT_TIMEOUT
    settings["connection_class"] = pool.connection_class
    return type(pool), settings
