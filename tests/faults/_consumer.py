"""A consumer process for the crash tests: records each event it handles in a Redis list.

SIGTERM drains it: ``bus.stop()`` lets the handlers in flight finish and acknowledges them,
then it prints ``stopped`` and exits 0. SIGKILL, of course, drains nothing. A third
argument, ``idempotent``, subscribes with ``idempotent=True``. A ``redis+cluster://`` URL
runs it on that cluster, the list too.
"""

import asyncio
import sys

import redis.asyncio as redis
from _serve import serve_until_sigterm
from redis.asyncio.cluster import RedisCluster

from quantum_core import RedisStreamsTransport, configure_logging


async def main(url: str, prefix: str, idempotent: bool) -> None:
    configure_logging("crash-consumer", "WARNING")
    record = record_client(url)
    transport = RedisStreamsTransport(url, prefix=prefix, claim_idle=1.0)

    async def handle(payload: dict) -> None:
        await asyncio.sleep(0.001)
        await record.rpush(f"{prefix}:handled", payload["n"])

    await serve_until_sigterm(transport, handle, idempotent=idempotent)
    await record.aclose()
    print("stopped", flush=True)


def record_client(url: str) -> redis.Redis | RedisCluster:
    """A client of the Redis (or cluster, by its first node) the URL names."""
    if not url.startswith("redis+cluster://"):
        return redis.from_url(url)
    host, _, port = url.removeprefix("redis+cluster://").split(",")[0].rpartition(":")
    return RedisCluster(host=host, port=int(port))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3:] == ["idempotent"]))
