"""A transport URL's query options, read with typed getters: one parser for every broker.

``redis://host/0?prefix=trading&claim_idle=10``, ``nats://host?ack_wait=30``,
``amqp://host/?history_max_bytes=0``: each transport reads its options by name and type;
what no getter read is either the client library's (:meth:`URLOptions.rest`) or a mistake,
refused with the names known (a typo would otherwise be ignored silently). An option given
twice is an error. Errors name the option and, for a value that does not parse, that value;
never the URL (it may hold a password) nor the value of an option it does not know.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TypeVar
from urllib.parse import parse_qsl

__all__ = ["URLOptions"]

_T = TypeVar("_T")

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class URLOptions:
    """The options in a URL's query, by name; each getter returns None when it is absent.

    Args:
        query: The query, without the ``?``.
        label: How errors call the URL: ``"nats://"`` gives "nats:// URL option ...".
        aliases: Other names an option may be given by (``{"claim_idle": "ack_wait"}``).
    """

    def __init__(self, query: str, *, label: str, aliases: Mapping[str, str] | None = None) -> None:
        self._label = label
        self._aliases = dict(aliases or {})
        self._pairs = parse_qsl(query, keep_blank_values=True)
        self._read: set[str] = set()

    def text(self, name: str) -> str | None:
        """The option as it is written."""
        return self._value(name)

    def integer(self, name: str, *, minimum: int = 1) -> int | None:
        """A whole number >= ``minimum``."""
        return self._parse(name, f"a whole number >= {minimum}", lambda v: _int(v, minimum))

    def seconds(self, name: str, *, positive: bool = True) -> float | None:
        """A finite number of seconds, > 0 (``positive``) or >= 0."""
        expected = f"a number of seconds {'> 0' if positive else '>= 0'}"
        return self._parse(name, expected, lambda v: _seconds(v, positive))

    def boolean(self, name: str) -> bool | None:
        """``true``/``false`` (or ``1``/``0``, ``yes``/``no``, ``on``/``off``)."""
        return self._parse(name, "true or false", _boolean)

    def choice(self, name: str, choices: Sequence[str]) -> str | None:
        """One of ``choices``."""
        expected = " or ".join(repr(choice) for choice in choices)
        return self._parse(name, expected, lambda v: _choice(v, choices))

    def rest(self, client_options: Collection[str] | None = None) -> list[tuple[str, str]]:
        """The options no getter read, in order: the client library's.

        With ``client_options``, an option that is neither read nor one of these is refused,
        naming every option known; without, the client library is left to judge them.
        """
        read = self._read
        rest = [(name, value) for name, value in self._pairs if self._canonical(name) not in read]
        if client_options is not None:
            for name, _ in rest:
                if name not in client_options:
                    known = sorted({*self._read, *self._aliases, *client_options})
                    raise ValueError(
                        f"unknown {self._label} URL option {name!r}; known options: "
                        + ", ".join(known)
                    )
        return rest

    def _canonical(self, name: str) -> str:
        return self._aliases.get(name, name)

    def _value(self, name: str) -> str | None:
        self._read.add(name)
        given = [(n, v) for n, v in self._pairs if self._canonical(n) == name]
        if len(given) > 1:
            others = sorted({n for n, _ in given if n != name})
            also = f" ({', '.join(others)} is {name})" if others else ""
            raise ValueError(f"{self._label} URL option {name!r} is given twice{also}")
        return given[0][1] if given else None

    def _parse(self, name: str, expected: str, parse: Callable[[str], _T]) -> _T | None:
        value = self._value(name)
        if value is None:
            return None
        try:
            return parse(value)
        except ValueError:
            given = next(n for n, v in self._pairs if self._canonical(n) == name)
            raise ValueError(
                f"{self._label} URL option {given}={value!r} is not valid: expected {expected}"
            ) from None


def _int(value: str, minimum: int) -> int:
    number = int(value)
    if number < minimum:
        raise ValueError(value)
    return number


def _seconds(value: str, positive: bool) -> float:
    number = float(value)
    if not math.isfinite(number) or not (number > 0 if positive else number >= 0):
        raise ValueError(value)
    return number


def _boolean(value: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ValueError(value)


def _choice(value: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(value)
    return value
