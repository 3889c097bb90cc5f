"""Connections of our own, copied from a user's Redis client or URL.

The bus and the policy store never use, change or close the client they are given: they open
connections with the same settings, always reading bytes (so no stored value can fail to
decode, whatever the client's ``decode_responses``), connecting in bounded time, and with
TCP keepalive on, so a connection whose peer vanished without a word (a network path that
dropped every packet) is found dead within about 25 s even while nobody uses it.

It also says whether the installed redis-py is one the transport's fast path was tested
with (:func:`fast_path_tested`): that path leans on redis-py's private parser and
connection internals, so on any other release the public API is used instead.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio
from redis.backoff import AbstractBackoff

from ._backoff import backoff
from .logs import get_logger

__all__ = [
    "CONNECT_TIMEOUT",
    "TESTED_REDIS_PY",
    "JitteredBackoff",
    "connection_settings",
    "fast_path_tested",
    "redis_py_version",
]

CONNECT_TIMEOUT = 2.0

TESTED_REDIS_PY = ((5, 3), (8, 2))
"""The oldest and newest redis-py minor releases the fast path is tested with (both ends run
in CI: ``make test-matrix``, on every supported Python); keep ``pyproject.toml``'s range in step."""

# Probe an idle connection after 10 s of silence, every 5 s, give up after 3 unanswered.
_KEEPALIVE = {
    option: value
    for name, value in (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3))
    if (option := getattr(socket, name, None)) is not None
}

_log = get_logger("quantum_core.redis")


@dataclass(frozen=True, slots=True)
class JitteredBackoff(AbstractBackoff):
    """redis-py's ``Retry`` waiting as the rest of the library does (:mod:`quantum_core._backoff`).

    ``first`` seconds after the first failure, doubling, at most ``most``, half of each wait
    random: clients that lost one Redis together do not retry together.
    """

    first: float
    most: float

    def compute(self, failures: int) -> float:
        """Seconds to wait after ``failures`` failures in a row (redis-py counts from 1)."""
        return backoff(failures, self.first, self.most)


def connection_settings(
    client: redis.asyncio.Redis | str, *, owner: str
) -> tuple[Any, dict[str, Any]]:
    """Return the pool class and connection settings of ``client`` (a client or a URL).

    Raises:
        TypeError: naming ``owner`` and what it accepts, for anything else.
    """
    if isinstance(client, str):
        pool = redis.asyncio.ConnectionPool.from_url(client)
    elif isinstance(client, redis.asyncio.Redis):
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
    if issubclass(
        pool.connection_class, redis.asyncio.Connection
    ):  # TCP (or TLS), not a unix socket
        settings["socket_keepalive"] = True
        if not settings.get("socket_keepalive_options"):
            settings["socket_keepalive_options"] = dict(_KEEPALIVE)
    return type(pool), settings


def redis_py_version() -> tuple[int, int]:
    """The installed redis-py's (major, minor); (0, 0) when it cannot be read."""
    found = re.match(r"(\d+)\.(\d+)", getattr(redis, "__version__", ""))
    return (int(found[1]), int(found[2])) if found else (0, 0)


def fast_path_tested() -> bool:
    """Whether the installed redis-py is within :data:`TESTED_REDIS_PY`.

    Outside it the caller takes redis-py's public path, and a debug line says so: a new
    redis-py release may change the private parts the fast path uses, and must not break
    an application that upgraded it.
    """
    version = redis_py_version()
    oldest, newest = TESTED_REDIS_PY
    if oldest <= version <= newest:
        return True
    _log.debug(
        "redis_fast_path_off",
        redis_py=getattr(redis, "__version__", "unknown"),
        tested=f"{oldest[0]}.{oldest[1]} to {newest[0]}.{newest[1]}",
    )
    return False
