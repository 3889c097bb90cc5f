"""What the NATS JetStream transport keeps besides events: dead letters and handled-records.

See ``transport.py`` for where they live on the server.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Sequence

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext, api

from ...errors import TransportError
from .connection import AckedPublisher, Names

__all__ = ["STREAM_CONFIG_DIFFERS", "HandledRecords", "delete_dead_letters", "read_dead_letters"]

STREAM_CONFIG_DIFFERS = 10058
_STREAM_NOT_FOUND = 10059


async def read_dead_letters(
    js: JetStreamContext, names: Names, topic: str, limit: int, first: int
) -> list[tuple[str, bytes]]:
    """Up to ``limit`` (sequence, record) of the topic's dead letters, from ``first`` on.

    One ``next_by_subj`` message get per letter: dead letters are few and read rarely.
    """
    subject = names.dead_subject(topic)
    letters: list[tuple[str, bytes]] = []
    sequence = first
    while len(letters) < limit:
        try:
            raw = await js.get_msg(names.dead_stream, seq=sequence, subject=subject, next=True)
        except nats.js.errors.NotFoundError:  # no more, or no dead letters at all
            break
        if raw.seq is None:
            break
        letters.append((str(raw.seq), raw.data or b""))
        sequence = raw.seq + 1
    return letters


async def delete_dead_letters(
    client: Client,
    js: JetStreamContext,
    names: Names,
    topic: str,
    sequences: Sequence[int] | None,
    timeout: float,
) -> int:
    """Delete these sequences of the topic's dead letters (a purge for None); count them.

    A sequence holding another topic's dead letter is left alone: it is not this topic's.
    """
    stream, subject = names.dead_stream, names.dead_subject(topic)
    if sequences is None:  # nats-py's purge_stream does not say how many went
        reply = await client.request(
            f"$JS.API.STREAM.PURGE.{stream}",
            json.dumps({"filter": subject}).encode(),
            timeout=timeout,
        )
        answer = json.loads(reply.data)
        if "error" in answer:
            if answer["error"].get("err_code") == _STREAM_NOT_FOUND:  # no dead letters ever
                return 0
            raise TransportError(f"purging {stream!r} failed: {answer['error']}")
        return int(answer.get("purged", 0))
    deleted = 0
    for sequence in sequences:
        try:
            raw = await js.get_msg(stream, seq=sequence)
            if raw.subject == subject:
                deleted += bool(await js.delete_msg(stream, sequence))
        except nats.js.errors.APIError:  # gone already (or never was)
            continue
    return deleted


class HandledRecords:
    """The KV bucket of ``idempotent=True`` subscriptions: a key per (group, event id).

    A key holds the Unix time it expires: a bucket has one TTL for every key, and each
    subscription chooses its own, so the bucket keeps keys as long as the longest asked
    for and a read compares the stored time.
    """

    def __init__(self, names: Names, storage: api.StorageType, replicas: int) -> None:
        self._names = names
        self._storage = storage
        self._replicas = replicas
        self._kept = 0.0  # seconds the bucket keeps keys; 0: not made sure of yet

    async def mark(
        self,
        js: JetStreamContext,
        publisher: AckedPublisher,
        group: str,
        event_ids: Sequence[str],
        ttl: float,
    ) -> None:
        """Put a key per event, expiring ``ttl`` seconds from now; return once stored."""
        await self._ensure_bucket(js, ttl)
        expires = str(time.time() + ttl).encode()
        bucket = self._names.handled_bucket
        for event_id in event_ids:
            key = self._names.handled_key(group, event_id)
            await publisher.publish(f"$KV.{bucket}.{key}", (expires,))

    async def seen(self, js: JetStreamContext, group: str, event_id: str) -> bool:
        """Whether the group's key for ``event_id`` exists and has not expired."""
        bucket = self._names.handled_bucket
        key = self._names.handled_key(group, event_id)
        try:
            raw = await js.get_msg(f"KV_{bucket}", subject=f"$KV.{bucket}.{key}")
        except nats.js.errors.NotFoundError:  # no such key, or no bucket yet
            return False
        if raw.headers and raw.headers.get("KV-Operation") in ("DEL", "PURGE"):
            return False
        try:
            return float(raw.data or b"0") > time.time()
        except ValueError:
            return False

    async def _ensure_bucket(self, js: JetStreamContext, ttl: float) -> None:
        if 0 < ttl <= self._kept:
            return
        bucket = self._names.handled_bucket
        keep = max(ttl, 1.0)
        try:
            await js.create_key_value(
                bucket=bucket,
                history=1,
                ttl=keep,
                storage=self._storage,
                replicas=self._replicas,
                description="quantum_core handled-records",
            )
        except nats.js.errors.BadRequestError as exc:
            if exc.err_code != STREAM_CONFIG_DIFFERS:
                raise
            info = await js.stream_info(f"KV_{bucket}")
            kept = info.config.max_age or math.inf
            if kept < keep:  # a longer ttl than the bucket keeps: keep keys that long
                await js.update_stream(dataclasses.replace(info.config, max_age=keep))
            else:
                keep = kept
        self._kept = max(self._kept, keep)
