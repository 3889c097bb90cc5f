"""Checks of what users pass to ``subscribe``: handlers and ordering keys.

Numbers and names are checked by :mod:`quantum_core._checks`, the same everywhere.
"""

from __future__ import annotations

import inspect
from collections.abc import Hashable
from typing import Any

from .._checks import check_name
from .dispatch import KeyFunction

SERVICE_NAME_MAX = 100


def is_async_callable(handler: object) -> bool:
    if inspect.iscoroutinefunction(handler):
        return True
    call = getattr(type(handler), "__call__", None)  # noqa: B004 - an object with async __call__
    return call is not None and inspect.iscoroutinefunction(call)


def handler_name(handler: object) -> str:
    func = getattr(handler, "__func__", handler)
    func = getattr(func, "func", func)  # functools.partial
    module = getattr(func, "__module__", None) or type(handler).__module__
    qualname = getattr(func, "__qualname__", None) or type(handler).__qualname__
    return f"{module}.{qualname}"


def check_service_name(service_name: object, what: str = "service_name") -> str:
    return check_name(what, service_name, max_length=SERVICE_NAME_MAX)


def key_function(ordering_key: object) -> KeyFunction | None:
    """Turn ``ordering_key`` (a payload field name or a function of the payload) into a function."""
    if ordering_key is None:
        return None
    if isinstance(ordering_key, str) and ordering_key:
        field = ordering_key

        def by_field(payload: dict[str, Any]) -> Hashable | None:
            value = payload.get(field)
            return value if isinstance(value, Hashable) else repr(value)

        return by_field
    if callable(ordering_key):
        return ordering_key
    raise TypeError(
        "ordering_key must be a payload field name (such as 'symbol') or a function of the "
        f"payload, got {ordering_key!r}"
    )
