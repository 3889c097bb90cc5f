"""Checks of the numbers and names users pass in, with errors that say what was expected.

One module for the whole library, so ``concurrency=0``, ``timeout=True`` or ``maxlen=-1``
are refused the same way wherever they are passed.
"""

from __future__ import annotations

import math

__all__ = ["check_name", "check_positive_int", "check_seconds"]


def check_positive_int(name: str, value: object, *, minimum: int = 1) -> int:
    """Return ``value`` if it is a whole number >= ``minimum`` (not a bool), else raise."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= minimum:
        return value
    raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")


def check_seconds(
    name: str, value: object, *, positive: bool = False, allow_infinite: bool = False
) -> float:
    """Return ``value`` as seconds (> 0 when ``positive``, math.inf where allowed), or raise."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        in_range = value > 0 if positive else value >= 0
        if in_range and (math.isfinite(value) or (allow_infinite and value == math.inf)):
            return float(value)
    bound = "> 0" if positive else ">= 0"
    extra = " (or math.inf for no limit)" if allow_infinite else ""
    raise ValueError(f"{name} must be a number of seconds {bound}{extra}, got {value!r}")


def check_name(name: str, value: object, *, max_length: int = 100) -> str:
    """Return ``value`` if it is a non-empty printable string without spaces, else raise."""
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
