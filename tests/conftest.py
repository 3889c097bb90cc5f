"""Shared fixtures: every test starts and ends with no process-wide bus or policy store."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from quantum_core import (
    configure_logging,
    shutdown_event_bus,
    shutdown_policy_store,
    trace_context,
)


@pytest.fixture(autouse=True)
async def _clean_runtime() -> AsyncIterator[None]:
    trace_context.clear()
    yield
    await shutdown_event_bus()
    await shutdown_policy_store()


@pytest.fixture
def log_lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Send quantum_core's JSON log lines to a buffer; call the fixture to read them parsed."""
    stream = io.StringIO()
    configure_logging("test-service", "DEBUG", stream=stream)

    def read() -> list[dict[str, Any]]:
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    yield read
    configure_logging("test-service", "INFO")
