"""Handled-records of ``idempotent=True`` subscriptions on NATS: a JetStream KV bucket."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence

import nats.js.errors
from nats.js import JetStreamContext, api

from .connection import STREAM_CONFIG_DIFFERS
from .names import Names
from .publisher import AckedPublisher

__all__ = ["HandledBucket"]


class HandledBucket:
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
