"""capture_logs(): a test reads log lines as dicts, as with ``structlog.testing.capture_logs``.

Why through the real pipeline: a captured line is made by the same steps as a JSON line
(redaction, exceptions, values as JSON holds them), so what a test asserts on is what the
service would write. The capture is an ordinary configuration whose stream parses each line
back; the loggers' hot path knows nothing of it.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from typing import Any, Final, TextIO, cast

from ..logs import configure_logging, logging_restored

__all__ = ["capture_logs"]

# The keys every line has the same (or a clock's) value for: a test has nothing to assert.
_CONSTANT_KEYS: Final = ("timestamp", "service")


class _LineParser(io.TextIOBase):
    """A text stream that parses each JSON line written to it into ``lines``."""

    def __init__(self, lines: list[dict[str, Any]]) -> None:
        super().__init__()
        self._lines = lines

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        for line in text.splitlines():
            entry = json.loads(line)
            for key in _CONSTANT_KEYS:
                entry.pop(key, None)
            self._lines.append(entry)
        return len(text)


@contextlib.contextmanager
def capture_logs() -> Iterator[list[dict[str, Any]]]:
    """Capture every log line of the process as a dict, instead of writing it anywhere.

    Inside the block, the lines of quantum_core's loggers (yours from ``get_logger`` and the
    library's own) and standard-library records are appended, at every level, to the list
    this yields: each one the dict its JSON line would hold (``event``, ``level``,
    ``logger``, ``domain`` and ``trace_id`` when set, then the fields, redacted), without
    ``timestamp`` and ``service``. The previous logging configuration comes back when the
    block ends, also on error; captures nest, the inner one taking the lines meanwhile.

    Example::

        with capture_logs() as lines:
            get_logger("execution").info("order_placed", symbol="BTCUSDT")
        assert lines == [{"event": "order_placed", "level": "info",
                          "logger": "execution", "symbol": "BTCUSDT"}]
    """
    lines: list[dict[str, Any]] = []
    with logging_restored():
        configure_logging("capture_logs", "DEBUG", stream=cast(TextIO, _LineParser(lines)))
        yield lines
