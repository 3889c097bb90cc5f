"""The policy in Redis, shared by every process that uses the same server and key prefix.

Layout (``prefix`` defaults to ``quantum_core:policy``):

* ``{prefix}:current``: the policy, one JSON document (see ``codec.py``; a seed is marked);
* ``{prefix}:history``: the audit history, newest first, trimmed to ``history_size``;
* ``{prefix}:changes``: the pub/sub channel every write publishes its new version on.

A write is WATCH / GET / MULTI: SET, LPUSH + LTRIM, PUBLISH / EXEC, so the policy, its audit
entry and the notification are one atomic step, and a write that raced another one is
refused and retried above. The client passed in is never closed or changed: the backend
opens its own connections with the same settings (reading bytes, bounded retries, TCP
keepalive), one of them for the pub/sub listener (see ``_listener.py``).

On a Redis Cluster (a ``RedisCluster`` client or a ``redis+cluster://`` URL) the three names
share the hash tag ``{prefix}`` (``{quantum_core:policy}:current`` ...), so one script
(:data:`_CLUSTER_WRITE`) writes the policy and its audit entry and publishes, atomically,
in place of WATCH / MULTI (which a cluster pipeline of redis-py 5 cannot do). Notifications
use classic pub/sub, which a cluster delivers to subscribers on every node: the listener
subscribes on any node, another one after a failure, and asks for a reload each time.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar, cast

import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError, WatchError

from .._checks import check_int, check_name, check_seconds
from .._redis import (
    JitteredBackoff,
    cluster_settings,
    connection_settings,
    is_cluster,
    open_cluster,
)
from ..models import RiskPolicy
from ._listener import RedisWatch
from .backends import ChangeCallback, PolicyBackend, PolicyWatch
from .codec import (
    PolicyChange,
    StoredPolicy,
    decode_change,
    decode_stored,
    encode_change,
    encode_policy,
    is_seed,
)
from .errors import PolicyDataError, PolicyUnavailableError

__all__ = ["DEFAULT_KEY_PREFIX", "RedisPolicyBackend"]

DEFAULT_KEY_PREFIX: Final = "quantum_core:policy"
_UNREADABLE: Final = object()
# A connection idle for 10 s is probed every 5 s, and given up after 3 probes unanswered: the
# kernel then fails its reads, even where no PING of ours is waiting for an answer.
_KEEPALIVE: Final = {"TCP_KEEPIDLE": 10, "TCP_KEEPALIVE": 10, "TCP_KEEPINTVL": 5, "TCP_KEEPCNT": 3}
_T = TypeVar("_T")
# Compare-and-set of the policy on a cluster, with its audit entry and notification.
# KEYS: current, history. ARGV: what must be stored now ('none', 'same' as ARGV[2], or
# 'other-type'), the bytes read, the new document, the audit entry ('' for none), history
# size, channel, notice. Returns 1 when written, 0 when the key moved meanwhile.
_CLUSTER_WRITE = """
local kind = redis.call('TYPE', KEYS[1])['ok']
if ARGV[1] == 'none' then
  if kind ~= 'none' then return 0 end
elseif ARGV[1] == 'same' then
  if kind ~= 'string' or redis.call('GET', KEYS[1]) ~= ARGV[2] then return 0 end
elseif kind == 'string' or kind == 'none' then
  return 0
else
  redis.call('DEL', KEYS[1])
end
redis.call('SET', KEYS[1], ARGV[3])
if ARGV[4] ~= '' then
  redis.call('LPUSH', KEYS[2], ARGV[4])
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[5]) - 1)
end
redis.call('PUBLISH', ARGV[6], ARGV[7])
return 1
"""


class RedisPolicyBackend(PolicyBackend):
    """The policy document in Redis, with an audit history and change notifications.

    Args:
        client: A ``redis.asyncio.Redis`` client (any ``decode_responses``, RESP2 or RESP3)
            or a ``redis://`` / ``rediss://`` / ``unix://`` URL; for a Redis Cluster, a
            ``redis.asyncio.cluster.RedisCluster`` client or a ``redis+cluster://`` URL.
        key_prefix: Namespace of the keys and channel; processes sharing it share a policy.
        history_size: How many audit entries Redis keeps.
        timeout: Seconds one operation may take before it fails as unavailable.
        poll_interval: Seconds between the periodic checks that catch a missed notification.
    """

    def __init__(
        self,
        client: redis.Redis | RedisCluster | str,
        *,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        history_size: int = 1000,
        timeout: float = 2.0,
        poll_interval: float = 1.0,
    ) -> None:
        self.key_prefix = check_name("key_prefix", key_prefix)
        self.history_size = check_int("history_size", history_size)
        self.timeout = check_seconds("timeout", timeout, positive=True)
        self.poll_interval = check_seconds("poll_interval", poll_interval, positive=True)
        self._startup: list[tuple[str, int]] | None = None
        if is_cluster(client):
            self._startup, self._settings = cluster_settings(
                cast("RedisCluster | str", client), owner="RedisPolicyBackend"
            )
            self._pool_class: Any = None
            key_prefix = f"{{{key_prefix}}}"  # one hash tag: one slot for all three
        else:
            self._pool_class, self._settings = connection_settings(
                cast("redis.Redis | str", client), owner="RedisPolicyBackend"
            )
        # Where this process's listener starts among the cluster's nodes: the listeners of
        # many processes spread over the nodes instead of all on the first one.
        self._listener_turn = random.randrange(1 << 16)  # noqa: S311 - load, not a secret
        self.key = f"{key_prefix}:current"
        self.history_key = f"{key_prefix}:history"
        self.channel = f"{key_prefix}:changes"
        self._commands = self.new_client()
        self._watches: set[PolicyWatch] = set()
        # The last document read and what it decoded to: a periodic check that finds the
        # same bytes costs one GET and one comparison.
        self._parsed: tuple[bytes | str, StoredPolicy] | None = None

    @property
    def cluster(self) -> bool:
        """Whether the policy lives on a Redis Cluster."""
        return self._startup is not None

    @property
    def address(self) -> str:
        """Where the server is, for messages: ``host:port/db`` or the socket path."""
        settings = self._settings
        if self._startup is not None:
            return "cluster " + ",".join(f"{host}:{port}" for host, port in self._startup)
        if "path" in settings:
            return f"unix://{settings['path']}"
        host, port = settings.get("host", "localhost"), settings.get("port", 6379)
        return f"{host}:{port}/{settings.get('db', 0)}"

    @property
    def deployment(self) -> dict[str, str | int]:
        """The server (host, port and db, or socket path and db) and the key prefix.

        Never the user name or the password: a snapshot file records this, in clear.
        """
        settings = self._settings
        where: dict[str, str | int]
        if self._startup is not None:
            where = {"cluster": ",".join(f"{host}:{port}" for host, port in self._startup)}
        elif "path" in settings:
            where = {"path": str(settings["path"])}
        else:
            where = {
                "host": str(settings.get("host", "localhost")),
                "port": int(settings.get("port", 6379)),
            }
        return {**where, "db": int(settings.get("db", 0)), "key_prefix": self.key_prefix}

    def new_client(self, *, listener: bool = False) -> Any:
        """Open a client with the caller's settings, reading bytes.

        Commands retry twice, quickly (a pooled connection may be stale after a server
        restart). The listener's client never retries by itself: the listener must see a
        broken connection to ask for a reload once it has subscribed again. TCP connections
        get keepalive probes unless the caller chose their own. On a cluster the listener's
        client is one node's, each call the next node (after a failure, another one).
        """
        settings = dict(self._settings)
        if self._startup is not None:
            return self._cluster_client(settings, listener=listener)
        if "path" not in settings and not settings.get("socket_keepalive"):
            settings["socket_keepalive"] = True
            settings["socket_keepalive_options"] = _keepalive_options()
        if listener:
            settings["retry"] = Retry(NoBackoff(), retries=0)
            settings["socket_timeout"] = None  # get_message(timeout=) bounds each wait
        else:
            settings["retry"] = Retry(JitteredBackoff(first=0.02, most=0.2), retries=2)
            settings["socket_timeout"] = settings.get("socket_timeout") or self.timeout
        return redis.Redis.from_pool(self._pool_class(**settings))

    def _cluster_client(self, settings: dict[str, Any], *, listener: bool) -> Any:
        if not listener:
            settings["retry"] = Retry(JitteredBackoff(first=0.02, most=0.2), retries=2)
            settings["socket_timeout"] = settings.get("socket_timeout") or self.timeout
            return open_cluster(self._startup or [], settings)
        known = getattr(self, "_commands", None)
        nodes = [(n.host, int(n.port)) for n in known.get_nodes()] if known is not None else []
        nodes = nodes or list(self._startup or [])
        host, port = nodes[self._listener_turn % len(nodes)]
        self._listener_turn += 1
        node_settings = {
            k: settings[k]
            for k in ("username", "password", "ssl", "socket_connect_timeout", "socket_keepalive")
            if k in settings
        }
        return redis.Redis(
            host=host,
            port=port,
            socket_timeout=None,
            retry=Retry(NoBackoff(), retries=0),
            socket_keepalive_options=settings.get("socket_keepalive_options"),
            **node_settings,
        )

    async def load(self) -> RiskPolicy | None:
        """GET the policy; the same bytes as last time are not decoded again."""
        stored = await self.load_stored()
        return None if stored is None else stored.policy

    async def load_stored(self) -> StoredPolicy | None:
        """GET the policy and its seed mark; the same bytes are not decoded again."""
        raw = await self._run("read the policy", self._get_current)
        return None if raw is None else self._decode(raw)

    async def save(
        self,
        policy: RiskPolicy,
        *,
        expected_version: int | None,
        change: PolicyChange | None = None,
        replace_unreadable: bool = False,
    ) -> bool:
        """Write ``policy`` (with its audit entry and notification) if nothing moved."""
        data = encode_policy(policy, seed=is_seed(change))
        notice = json.dumps({"version": policy.version}).encode()
        entry = None if change is None else encode_change(change)

        if self._startup is not None:
            return await self._run(
                "write the policy (it may or may not have been applied)",
                lambda: self._cluster_write(
                    data, notice, entry, expected_version, replace_unreadable
                ),
            )

        async def write() -> bool:
            async with self._commands.pipeline(transaction=True) as pipe:
                await pipe.watch(self.key)
                stored = await self._stored_version(pipe)
                if stored is _UNREADABLE:
                    if not (expected_version is None and replace_unreadable):
                        return False
                elif stored != expected_version:
                    return False
                pipe.multi()  # type: ignore[no-untyped-call, unused-ignore] # redis-py leaves it bare
                pipe.set(self.key, data)
                if entry is not None:
                    pipe.lpush(self.history_key, entry)
                    pipe.ltrim(self.history_key, 0, self.history_size - 1)
                pipe.publish(self.channel, notice)
                try:
                    await pipe.execute()
                except WatchError:
                    return False
                return True

        return await self._run("write the policy (it may or may not have been applied)", write)

    async def _cluster_write(
        self,
        data: bytes,
        notice: bytes,
        entry: bytes | None,
        expected_version: int | None,
        replace_unreadable: bool,
    ) -> bool:
        """Check the stored version, then compare-and-set in one script (no WATCH here)."""
        try:
            raw = await self._commands.get(self.key)
        except ResponseError as error:
            _wrong_type(self.key, error)  # re-raises anything but WRONGTYPE
            if not (expected_version is None and replace_unreadable):
                return False
            expect, raw = "other-type", b""
        else:
            try:
                stored = None if raw is None else self._decode(raw).policy.version
            except PolicyDataError:
                if not (expected_version is None and replace_unreadable):
                    return False
                stored = expected_version
            if stored != expected_version:
                return False
            expect = "none" if raw is None else "same"
        written = await self._commands.eval(
            _CLUSTER_WRITE,
            2,
            self.key,
            self.history_key,
            expect,
            raw or b"",
            data,
            entry or b"",
            self.history_size,
            self.channel,
            notice,
        )
        return bool(written)

    async def history(self, limit: int) -> list[PolicyChange]:
        """Return the newest ``limit`` audit entries; entries that do not decode are skipped."""

        async def read() -> list[bytes | str]:
            return list(await self._commands.lrange(self.history_key, 0, limit - 1))

        entries = (decode_change(raw) for raw in await self._run("read the history", read))
        return [entry for entry in entries if entry is not None]

    async def watch(self, on_change: ChangeCallback) -> PolicyWatch:
        """Listen on the channel (reconnecting as needed) and check every ``poll_interval``.

        Returns once the SUBSCRIBE is confirmed, so a change written after this returns is
        heard; or once the first attempt failed (within ``timeout``): the listener then
        goes on trying in the background, and the periodic check runs meanwhile.
        """
        watch = RedisWatch(self, on_change, forget=self._watches.discard)
        self._watches.add(watch)
        try:
            await watch.started()
        except BaseException:  # cancelled while waiting: leave no task behind
            await watch.close()
            raise
        return watch

    async def close(self) -> None:
        """Stop every watch and close the connections this backend opened."""
        for watch in list(self._watches):
            await watch.close()
        await self._commands.aclose()

    def __repr__(self) -> str:
        return f"<RedisPolicyBackend {self.address} key={self.key!r}>"

    # -- internals ------------------------------------------------------------------------

    async def _get_current(self) -> bytes | str | None:
        try:
            raw: bytes | str | None = await self._commands.get(self.key)
        except ResponseError as error:
            raise _wrong_type(self.key, error) from error
        return raw

    def _decode(self, raw: bytes | str) -> StoredPolicy:
        parsed = self._parsed
        if parsed is not None and parsed[0] == raw:
            return parsed[1]
        stored = decode_stored(raw, where=f"Redis key {self.key!r}")
        self._parsed = (raw, stored)
        return stored

    async def _stored_version(self, pipe: Any) -> int | object | None:
        """The version stored under WATCH: an int, None (nothing), or ``_UNREADABLE``."""
        try:
            raw = await pipe.get(self.key)
            return None if raw is None else self._decode(raw).policy.version
        except ResponseError as error:
            _wrong_type(self.key, error)  # re-raises anything but WRONGTYPE
            return _UNREADABLE
        except PolicyDataError:
            return _UNREADABLE

    async def _run(self, what: str, operation: Callable[[], Awaitable[_T]]) -> _T:
        """Run ``operation`` within ``timeout``; map Redis failures to PolicyUnavailableError."""
        try:
            async with asyncio.timeout(self.timeout):
                return await operation()
        except (RedisError, OSError) as error:
            raise PolicyUnavailableError(
                f"could not {what}: Redis at {self.address} failed: "
                f"{str(error) or type(error).__name__}"
            ) from error
        except TimeoutError as error:
            raise PolicyUnavailableError(
                f"could not {what}: Redis at {self.address} did not answer within "
                f"{self.timeout:g} s"
            ) from error


def _keepalive_options() -> dict[int, int]:
    """The keepalive timings this platform lets a socket set (Linux and macOS differ)."""
    return {
        getattr(socket, name): value for name, value in _KEEPALIVE.items() if hasattr(socket, name)
    }


def _wrong_type(key: str, error: ResponseError) -> PolicyDataError:
    """A WRONGTYPE reply means someone stored another Redis type under the key."""
    if not str(error).startswith("WRONGTYPE"):
        raise error
    return PolicyDataError(f"Redis key {key!r}", "the key holds a Redis type other than a string")
