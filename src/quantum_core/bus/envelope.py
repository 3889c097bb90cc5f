"""The event on the wire: one JSON document, the same on every transport.

Format version 1 (the field names are the contract; other programs may read and write them)::

    {"v": 1, "id": "<event id>", "type": "<event type>", "trace_id": "<trace id>",
     "time": "<publish time, ISO-8601 UTC>", "source": "<publishing service>",
     "headers": {"<name>": "<value>"}, "payload": {...}}

JSON is encoded and decoded by pydantic-core (a dependency already, and about five times
faster than the standard library). Nothing on the read path executes what it reads.

Encoding and decoding run once per event on the hot paths, so they avoid what costs there:
no intermediate objects on encode, one random read per batch for the event ids, the
timestamp's date part formatted once per second, and event types already seen accepted
without the regular expression again.
"""

from __future__ import annotations

import math
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

MODEL_HEADER = "x-quantum-model"
"""The header naming the pydantic model an event's payload was published from."""

__all__ = [
    "MODEL_HEADER",
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


@dataclass(slots=True)
class Envelope:
    """One event as it travels: the payload and what the bus needs to deliver and trace it.

    Read-only by convention: not ``frozen``, because a frozen dataclass takes five times as
    long to build, and one is built for every event a consumer reads.
    """

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


def _new_event_ids(count: int) -> list[str]:
    """``count`` ids as :func:`new_event_id` makes them, from one read of the random source."""
    if count == 1:
        return [new_event_id()]
    stamp = f"{time.time_ns() // 1_000_000:012x}"
    randoms = os.urandom(10 * count).hex()
    return [stamp + randoms[i : i + 20] for i in range(0, 20 * count, 20)]


_KNOWN_TYPES: set[str] = set()  # event types that passed the check; bounded below
_KNOWN_TYPES_MAX = 10_000


def validate_event_type(event_type: object) -> str:
    """Return ``event_type`` if it is a usable name such as ``market.data.update``."""
    if type(event_type) is str and event_type in _KNOWN_TYPES:
        return event_type
    if (
        isinstance(event_type, str)
        and len(event_type) <= MAX_EVENT_TYPE_LENGTH
        and _EVENT_TYPE.fullmatch(event_type)
    ):
        if len(_KNOWN_TYPES) < _KNOWN_TYPES_MAX:
            _KNOWN_TYPES.add(event_type)
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
    return _to_json(
        envelope.id,
        envelope.type,
        envelope.payload,
        envelope.trace_id,
        envelope.time,
        envelope.source,
        envelope.headers,
    )


def _to_json(
    event_id: str,
    event_type: str,
    payload: dict[str, Any],
    trace_id: str,
    published: str,
    source: str,
    headers: Mapping[str, str],
) -> bytes:
    document = {
        "v": WIRE_VERSION,
        "id": event_id,
        "type": event_type,
        "trace_id": trace_id,
        "time": published,
        "source": source,
        "headers": headers,
        "payload": payload,
    }
    try:
        return pydantic_core.to_json(document)
    except pydantic_core.PydanticSerializationError as exc:
        raise TypeError(
            f"event payload of {event_type!r} is not JSON-serialisable: {exc}; use JSON "
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
    event_ids = _new_event_ids(len(payloads)) if payloads else []
    encoded: list[bytes] = []
    for event_id, payload in zip(event_ids, payloads, strict=True):
        model_headers = headers
        if isinstance(payload, BaseModel):
            body = payload.model_dump(mode="json")
            model_headers = {**headers, MODEL_HEADER: type(payload).__name__}
        elif isinstance(payload, dict):
            body = payload
        else:
            raise TypeError(
                f"payload of {event_type!r} must be a dict or a pydantic model, "
                f"got {type(payload).__name__}"
            )
        data = _to_json(event_id, event_type, body, trace_id, now, source, model_headers)
        if (_N in data and b"NaN" in data) or (_I in data and b"Infinity" in data):
            _refuse_non_finite(event_type, body, data)  # rare: look closer only then
        encoded.append(data)
    return encoded, event_ids


_N, _I = ord("N"), ord("I")  # `int in bytes` is one memchr: 20 ns, a fifth of `b"NaN" in`


def _refuse_non_finite(event_type: str, body: dict[str, Any], data: bytes) -> None:
    """Raise ValueError naming the field that holds NaN or ±Infinity, if one does.

    pydantic-core writes them as the bare words ``NaN`` and ``Infinity``, which are not
    JSON: strict parsers (and most other languages) reject the whole event. The same words
    inside a string are fine, hence the strict re-read before refusing.
    """
    try:
        pydantic_core.from_json(data, allow_inf_nan=False)
    except ValueError:
        found = _non_finite(body, "")
        where = f" at {found[0] or 'the top'}" if found else ""
        value = f"{found[1]!r}" if found else "NaN or Infinity"
        raise ValueError(
            f"event payload of {event_type!r} holds {value}{where}: JSON has no NaN or "
            "Infinity (strict parsers reject the event); send None, a string or a finite "
            "number instead"
        ) from None


def _non_finite(value: object, path: str) -> tuple[str, float] | None:
    """The path and value of the first float in ``value`` that is NaN or infinite."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (path, value)
    if isinstance(value, BaseModel):
        value = dict(value)
    if isinstance(value, dict):
        for key, item in value.items():
            name = key if isinstance(key, str) and key.isidentifier() else f"[{key!r}]"
            joined = f"{path}.{name}" if path and not name.startswith("[") else f"{path}{name}"
            found = _non_finite(item, joined)
            if found:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _non_finite(item, f"{path}[{index}]")
            if found:
                return found
    return None


def _check_headers(headers: object) -> dict[str, str]:
    if headers is None:
        return {}
    if isinstance(headers, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        return headers
    raise TypeError(f"headers must be a dict of str to str, got {headers!r}")


_second: list[Any] = [-1, ""]  # the last whole second formatted, and its text


def publish_time() -> str:
    """Return the current UTC time in the envelope's format: ``2024-05-01T12:00:00.123456Z``.

    The same text as ``datetime.isoformat(timespec="microseconds")``; the date and time of
    day are formatted once per second, as this runs for every publish.
    """
    seconds, micros = divmod(time.time_ns() // 1000, 1_000_000)
    if seconds != _second[0]:
        _second[1] = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _second[0] = seconds
    return f"{_second[1]}.{micros:06d}Z"


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
        headers = document.get("headers")
        if headers is None:  # absent; any other value must be an object (checked below)
            headers = {}
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
