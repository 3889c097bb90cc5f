"""FastStream's Redis Streams subscriber as a competitor: per message, and batch=True.

Its own logging is off (``logger=None``), acknowledgement is after the handler
(``AckPolicy.ACK``) and it reads 100 entries per XREADGROUP like the others. It speaks RESP2:
FastStream 0.7.8's stream subscriber cannot read redis-py's RESP3 reply to XREADGROUP (a dict,
where it unpacks pairs: "ValueError: not enough values to unpack"), so ``resp2`` rewrites the
URL's ``protocol``. Its
publisher is FastStream's own ``broker.publish(stream=...)``, batched in a redis-py pipeline
(``pipeline=``), so the consumer reads the message format it expects.
"""

from __future__ import annotations

from typing import Any

from faststream import AckPolicy
from faststream.redis import RedisBroker, StreamSub

from _clients import PAYLOAD, READ_COUNT, Close, Record, Send, resp_of


def resp2(url: str) -> str:
    """The same server, on RESP2: the only protocol FastStream's stream subscriber reads."""
    base, _, query = url.partition("?")
    kept = [part for part in query.split("&") if part and not part.startswith("protocol=")]
    return base + "?" + "&".join([*kept, "protocol=2"])


class FastStream:
    """``@broker.subscriber(stream=StreamSub(...))``: one handler call and XACK per message."""

    group = "g"
    batch = False

    @staticmethod
    def stream_key(key: str) -> str:
        return key

    @staticmethod
    async def open_publisher(url: str, key: str) -> tuple[Send, Close, int | None]:
        broker = RedisBroker(resp2(url), logger=None)
        client = await broker.connect()

        async def send(k: int, stamp: int | None) -> None:
            message = PAYLOAD if stamp is None else {**PAYLOAD, "t": stamp}
            if k == 1:
                await broker.publish(message, stream=key)
                return
            async with client.pipeline(transaction=False) as pipe:
                for _ in range(k):
                    await broker.publish(message, stream=key, pipeline=pipe)
                await pipe.execute()

        return send, broker.stop, await resp_of(client)

    @classmethod
    async def open_consumer(
        cls, url: str, key: str, from_start: bool, record: Record
    ) -> tuple[Close, int | None]:
        broker = RedisBroker(resp2(url), logger=None, ack_policy=AckPolicy.ACK)
        stream = StreamSub(
            key,
            group="g",
            consumer=f"c{id(broker)}",
            batch=cls.batch,
            max_records=READ_COUNT,
            polling_interval=100,
        )
        if from_start:  # the group must exist at the stream's start before FastStream looks
            client = await broker.connect()
            await client.xgroup_create(key, "g", id="0", mkstream=True)
        if cls.batch:

            @broker.subscriber(stream=stream)
            async def handle_batch(messages: list[dict[str, Any]]) -> None:
                for message in messages:
                    record(message.get("t"))

        else:

            @broker.subscriber(stream=stream)
            async def handle(message: dict[str, Any]) -> None:
                record(message.get("t"))

        await broker.start()
        return broker.stop, await resp_of(await broker.connect())


class FastStreamBatch(FastStream):
    """``StreamSub(..., batch=True)``: one handler call and one XACK per batch of 100."""

    batch = True
