"""Connections of our own, copied from a user's Redis client or URL.

The bus and the policy store never use, change or close the client they are given: they open
connections with the same settings, always reading bytes (so no stored value can fail to
decode, whatever the client's ``decode_responses``), connecting in bounded time, and with
TCP keepalive on, so a connection whose peer vanished without a word (a network path that
dropped every packet) is found dead within about 25 s even while nobody uses it.

It also says whether the installed redis-py is one the transport's fast path was tested
with (:func:`fast_path_tested`): that path leans on redis-py's private parser and
connection internals, so on any other release the public API is used instead.

A Redis Cluster is named by a ``redis+cluster://host:port[,host:port...]`` (or
``rediss+cluster://``) URL or given as a ``redis.asyncio.cluster.RedisCluster`` client:
:func:`cluster_settings` reads its startup nodes and connection settings the same way, and
:func:`open_cluster` opens a client of our own with them.
"""

from __future__ import annotations

import inspect
import re
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import SSLConnection, parse_url
from redis.backoff import AbstractBackoff
from redis.exceptions import ClusterError, RedisClusterException, RedisError

from ._backoff import backoff
from .logs import get_logger

__all__ = [
    "CLUSTER_SCHEMES",
    "CONNECT_TIMEOUT",
    "TESTED_REDIS_PY",
    "JitteredBackoff",
    "cluster_settings",
    "connection_settings",
    "fast_path_tested",
    "is_cluster",
    "not_a_cluster",
    "open_cluster",
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

CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
"""URL schemes naming a Redis Cluster (``rediss+cluster``: over TLS)."""
_CLUSTER_SETTINGS = frozenset(inspect.signature(RedisCluster.__init__).parameters) - {
    "self",
    "host",
    "port",
    "startup_nodes",
    "db",
    "path",
}  # what this redis-py's RedisCluster takes besides where the nodes are


def is_cluster(client: object) -> bool:
    """Whether ``client`` is a ``RedisCluster`` or a ``redis+cluster://`` URL."""
    if isinstance(client, str):
        return urlsplit(client).scheme.lower() in CLUSTER_SCHEMES
    return isinstance(client, RedisCluster)


def cluster_settings(
    client: RedisCluster | str, *, owner: str
) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """Return the startup nodes and the ``RedisCluster`` settings of a cluster client or URL.

    The URL is ``redis+cluster://[user:password@]host:port[,host:port...][/0][?options]``;
    its query options are redis-py's, as in a ``redis://`` URL.

    Raises:
        ValueError: for a URL that names no node, or a database other than 0.
        TypeError: naming ``owner`` and what it accepts, for anything else.
    """
    if isinstance(client, RedisCluster):
        nodes = client.get_nodes() or list(client.nodes_manager.startup_nodes.values())
        startup = [(node.host, int(node.port)) for node in nodes]
        given = dict(client.get_connection_kwargs())
        if given.get("connection_class") is SSLConnection:
            given["ssl"] = True
    elif isinstance(client, str) and is_cluster(client):
        startup, given = _parse_cluster_url(client)
    else:
        raise TypeError(
            f"{owner} needs a redis.asyncio.cluster.RedisCluster client or a "
            f"redis+cluster:// URL, got {type(client).__module__}.{type(client).__name__}"
        )
    settings = {name: value for name, value in given.items() if name in _CLUSTER_SETTINGS}
    settings["decode_responses"] = False
    if settings.get("socket_connect_timeout") is None:
        settings["socket_connect_timeout"] = CONNECT_TIMEOUT
    settings["socket_keepalive"] = True
    if not settings.get("socket_keepalive_options"):
        settings["socket_keepalive_options"] = dict(_KEEPALIVE)
    return startup, settings


def _parse_cluster_url(url: str) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    startup: list[tuple[str, int]] = []
    for item in filter(None, hosts.split(",")):
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"cluster URL nodes must be host:port, got {item!r}")
        startup.append((host.strip("[]"), int(port)))
    if not startup:
        raise ValueError("a redis+cluster:// URL names at least one node, host:port")
    scheme = "rediss" if parts.scheme.lower().startswith("rediss") else "redis"
    first = f"{userinfo}@" if userinfo else ""
    first_host, first_port = startup[0]
    bracketed = f"[{first_host}]" if ":" in first_host else first_host  # IPv6
    where = f"{first}{bracketed}:{first_port}"
    single = urlunsplit((scheme, where, parts.path, parts.query, ""))
    settings: dict[str, Any] = dict(parse_url(single))
    if int(settings.pop("db", 0) or 0) != 0:
        raise ValueError("a Redis Cluster has database 0 only; drop the /<db> from the URL")
    if settings.pop("connection_class", None) is SSLConnection:
        settings["ssl"] = True
    return startup, settings


def open_cluster(startup: list[tuple[str, int]], settings: dict[str, Any]) -> RedisCluster:
    """A ``RedisCluster`` of our own (not yet connected: its first command discovers the slots)."""
    nodes = [ClusterNode(host, port) for host, port in startup]
    return _OurCluster(startup_nodes=nodes, **settings)


class _OurCluster(RedisCluster):
    """A RedisCluster whose commands fail with redis-py's ``RedisError`` tree only.

    redis-py raises ``RedisClusterException`` (not a ``RedisError``) when it cannot route a
    command, such as for a slot no master serves: here it becomes a ``ClusterError``, so
    the code that maps Redis failures to ours (``except RedisError``) sees it too.
    """

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().execute_command(*args, **kwargs)
        except RedisClusterException as exc:
            raise ClusterError(str(exc) or type(exc).__name__) from exc


async def not_a_cluster(startup: list[tuple[str, int]], settings: dict[str, Any]) -> str | None:
    """Why a cluster client could not start: a node that answers but is no cluster, if any."""
    for host, port in startup:
        kwargs = {k: settings[k] for k in ("username", "password", "ssl") if k in settings}
        probe = redis.asyncio.Redis(
            host=host, port=port, socket_timeout=CONNECT_TIMEOUT,
            socket_connect_timeout=CONNECT_TIMEOUT, **kwargs,
        )  # fmt: skip
        try:
            info = await probe.info("cluster")
        except (RedisError, OSError):
            continue
        finally:
            await probe.aclose()
        if not info.get("cluster_enabled"):
            return (
                f"Redis at {host}:{port} is not a cluster (cluster_enabled:0): name a single "
                "Redis with redis:// (or rediss://), a cluster with redis+cluster://"
            )
    return None


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
