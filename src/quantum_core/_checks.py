"""Checks of the numbers, names and texts users pass in, with errors that say what was expected.

One module for the whole library, so ``concurrency=0``, ``timeout=True``, ``maxlen=-1`` or a
prefix with a space are refused the same way wherever they are passed. Each check returns the
value it accepted and raises ``ValueError("<name> must be <what was expected>, got <value>")``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import TypeVar

__all__ = ["check_choice", "check_int", "check_name", "check_seconds", "check_text"]

_T = TypeVar("_T")


def check_int(name: str, value: object, *, minimum: int = 1, maximum: int | None = None) -> int:
    """Return ``value`` if it is a whole number (not a bool) from ``minimum`` to ``maximum``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be at most {maximum}, got {value!r}")
    return value


def check_seconds(
    name: str,
    value: object,
    *,
    positive: bool = False,
    allow_infinite: bool = False,
    maximum: float | None = None,
) -> float:
    """Return ``value`` as seconds (> 0 when ``positive``, math.inf where allowed), or raise."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        in_range = value > 0 if positive else value >= 0
        if in_range and (math.isfinite(value) or (allow_infinite and value == math.inf)):
            if maximum is not None and value > maximum:
                raise ValueError(f"{name} must be at most {maximum:g} seconds, got {value!r}")
            return float(value)
    bound = "> 0" if positive else ">= 0"
    extra = " (or math.inf for no limit)" if allow_infinite else ""
    raise ValueError(f"{name} must be a number of seconds {bound}{extra}, got {value!r}")


def check_name(name: str, value: object, *, max_length: int = 100) -> str:
    """Return ``value`` if it is a non-empty printable string without spaces, else raise.

    The rule for every name and key prefix on a server: the Redis transport's ``prefix``,
    the policy's ``key_prefix``, a service name, the CLI's ``--prefix``.
    """
    if (
        isinstance(value, str)
        and 0 < len(value) <= max_length
        and value.isprintable()
        and not any(c.isspace() for c in value)
    ):
        return value
    raise ValueError(
        f"{name} must be a non-empty string of at most {max_length} printable characters "
        f"without spaces, got {value!r}"
    )


def check_text(
    name: str,
    value: object,
    *,
    expected: str,
    pattern: re.Pattern[str] | None = None,
    max_length: int | None = None,
    max_bytes: int | None = None,
) -> str:
    """Return ``value`` if it is a string matching ``pattern`` in full, within the bounds.

    ``expected`` says what was wanted, in the error: "prefix must be <expected>, got ...".
    ``max_bytes`` counts UTF-8 bytes (what a broker limits), ``max_length`` characters.
    """
    if (
        isinstance(value, str)
        and (pattern is None or pattern.fullmatch(value))
        and (max_length is None or len(value) <= max_length)
        and (max_bytes is None or len(value.encode()) <= max_bytes)
    ):
        return value
    raise ValueError(f"{name} must be {expected}, got {value!r}")


def check_choice(name: str, value: object, choices: Sequence[_T]) -> _T:
    """Return ``value`` if it is one of ``choices``, else raise naming them."""
    for choice in choices:
        if value == choice and type(value) is type(choice):
            return choice
    expected = " or ".join(repr(choice) for choice in choices)
    raise ValueError(f"{name} must be {expected}, got {value!r}")
