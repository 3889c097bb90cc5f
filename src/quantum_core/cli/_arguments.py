"""How the CLI reads numbers from its command line: with the library's own checks.

``--timeout nan`` and ``timeout=math.nan`` are refused with the same words, because both go
through :mod:`quantum_core._checks`; the option's name stands where the parameter's would.
An option's text that is not a number is checked as the text, so the error shows it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, Protocol

from .._checks import check_int, check_seconds

__all__ = ["Commands", "count_option", "seconds_option"]


class Commands(Protocol):
    """Where a command module adds its command: the subparsers of ``quantum-core``."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        """Add the parser of one (sub)command."""
        ...


def seconds_option(option: str, *, most: float) -> Callable[[str], float]:
    """An argparse ``type``: a number of seconds > 0 and at most ``most``."""

    def parse(text: str) -> float:
        try:
            return check_seconds(option, _as(float, text), positive=True, maximum=most)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return parse


def count_option(option: str, *, most: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: a whole number >= 1 (and at most ``most``)."""

    def parse(text: str) -> int:
        try:
            return check_int(option, _as(int, text), maximum=most)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return parse


def _as(kind: Callable[[str], object], text: str) -> object:
    """``text`` as a number of ``kind``, or the text itself for the check to refuse."""
    try:
        return kind(text)
    except ValueError:
        return text
