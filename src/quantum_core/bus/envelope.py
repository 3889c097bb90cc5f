"""The event on the wire: one JSON document, the same on every transport.

Format version 1 (the field names are the contract; other programs may read and write them)::

    {"v": 1, "id": "<event id>", "type": "<event type>", "trace_id": "<trace id>",
     "time": "<publish time, ISO-8601 UTC>", "source": "<publishing service>",
     "headers": {"<name>": "<value>"}, "payload": {...}}

JSON is encoded and decoded by pydantic-core (a dependency already, and about five times
faster than the standard library). Nothing on the read path executes what it reads.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pydantic_core
from pydantic import BaseModel

from ..errors import MalformedEventError
from ..tracing import new_trace_id, trace_context, validate_trace_id

__all__ = [
    "WIRE_VERSION",
    "Envelope",
    "decode",
    "encode",
    "encode_events",
    "new_event_id",
    "validate_event_type",
]

WIRE_VERSION = 1
MAX_EVENT_TYPE_LENGTH = 200
_EVENT_TYPE = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")


@dataclass(frozen=True, slots=True)
class Envelope:
    """One event as it travels: the payload and what the bus needs to deliver and trace it."""

    id: str
    type: str
    payload: dict[str, Any]
    trace_id: str
    time: str
    source: str
    headers: Mapping[str, str] = field(default_factory=dict)


def new_event_id() -> str:
    """Return a unique, time-ordered id: 12 hex digits of Unix milliseconds, 20 random."""
    return f"{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"


def validate_event_type(event_type: object) -> str:
    """Return ``event_type`` if it is a usable name such as ``market.data.update``."""
    if (
        isinstance(event_type, str)
        and len(event_type) <= MAX_EVENT_TYPE_LENGTH
        and _EVENT_TYPE.fullmatch(event_type)
    ):
        return event_type
    raise ValueError(
        f"invalid event type {event_type!r}: expected dot-separated words of letters, digits, "
        f"'_' or '-' (such as 'market.data.update'), at most {MAX_EVENT_TYPE_LENGTH} characters"
    )


def payload_to_dict(payload: object) -> dict[str, Any] | BaseModel:
    """Check that ``payload`` is something we publish: a dict or a pydantic model."""
    if isinstance(payload, dict | BaseModel):
        return payload
    raise TypeError(
        f"event payload must be a dict or a pydantic model, got {type(payload).__name__}"
    )


def encode(envelope: Envelope) -> bytes:
    """Serialise an envelope; raises TypeError naming the value that is not JSON."""
    document = {
        "v": WIRE_VERSION,
        "id": envelope.id,
        "type": envelope.type,
        "trace_id": envelope.trace_id,
        "time": envelope.time,
        "source": envelope.source,
        "headers": envelope.headers,
        "payload": envelope.payload,
    }
    try:
        return pydantic_core.to_json(document)
    except pydantic_core.PydanticSerializationError as exc:
        raise TypeError(
            f"event payload of {envelope.type!r} is not JSON-serialisable: {exc}; use JSON "
            "values (dict, list, str, int, float, bool, None) or types pydantic can serialise"
        ) from None


def encode_events(
    source: str,
    event_type: str,
    payloads: tuple[object, ...],
    trace_id: str | None,
    headers: dict[str, str] | None,
) -> tuple[list[bytes], list[str]]:
    """Check and encode events of one type, all or none; return them and their ids.

    The trace id is ``trace_id``, else the current ``trace_context``, else a new one.
    """
    validate_event_type(event_type)
    if trace_id is None:
        trace_id = trace_context.get() or new_trace_id()
    else:
        validate_trace_id(trace_id)
    headers = _check_headers(headers)
    now = publish_time()
    encoded: list[bytes] = []
    event_ids: list[str] = []
    for payload in payloads:
        if isinstance(payload, BaseModel):
            body = payload.model_dump(mode="json")
        elif isinstance(payload, dict):
            body = payload
        else:
            raise TypeError(
                f"payload of {event_type!r} must be a dict or a pydantic model, "
                f"got {type(payload).__name__}"
            )
        event_id = new_event_id()
        encoded.append(encode(Envelope(event_id, event_type, body, trace_id, now, source, headers)))
        event_ids.append(event_id)
    return encoded, event_ids


def _check_headers(headers: object) -> dict[str, str]:
    if headers is None:
        return {}
    if isinstance(headers, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        return headers
    raise TypeError(f"headers must be a dict of str to str, got {headers!r}")


def publish_time() -> str:
    """Return the current UTC time in the envelope's format."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def decode(data: bytes | str) -> Envelope:
    """Read an envelope; raises MalformedEventError saying what is wrong with it."""
    try:
        document = pydantic_core.from_json(data)
    except ValueError as exc:
        raise MalformedEventError(f"not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise MalformedEventError(f"expected a JSON object, got {type(document).__name__}")
    version = document.get("v")
    if version != WIRE_VERSION:
        raise MalformedEventError(
            f"unsupported envelope version {version!r}; this quantum_core reads {WIRE_VERSION}"
        )
    try:
        headers = document.get("headers") or {}
        envelope = Envelope(
            id=_text(document, "id"),
            type=validate_event_type(document.get("type")),
            payload=document["payload"],
            trace_id=validate_trace_id(document.get("trace_id")),
            time=_text(document, "time"),
            source=_text(document, "source"),
            headers=headers,
        )
    except (KeyError, ValueError) as exc:
        raise MalformedEventError(f"bad envelope field: {exc}") from None
    if not isinstance(envelope.payload, dict) or not isinstance(headers, dict):
        raise MalformedEventError("payload and headers must be JSON objects")
    return envelope


def _text(document: dict[str, Any], key: str) -> str:
    value = document.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key!r} must be a non-empty string, got {value!r}")
    return value
