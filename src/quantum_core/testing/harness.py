"""What every contract check is given and uses: the harness, the features, the assertions."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from ..bus import EventBus, Transport

__all__ = ["PATIENCE", "Check", "Harness", "MakeTransport", "TransportFeatures", "expect"]

PATIENCE = 30.0
"""Seconds a check waits for what a broker should do: generous, for a busy CI machine."""

MakeTransport = Callable[[], Transport]
"""Returns a transport on the same broker (and namespace) each time it is called."""


@dataclass(frozen=True, slots=True)
class TransportFeatures:
    """What a transport promises beyond the common contract, and how fast.

    Attributes:
        redelivery_timeout: Seconds within which an event abandoned by a consumer that
            stopped without acknowledging it reaches another consumer of its group.
        reports_backlog: Whether the subscriptions' ``backlog()`` gives real pending counts.
        orders_unkeyed: Whether one consumer receives events published without an ordering
            key in publish order. Kafka does not: such events go to any partition, and only
            events of one key (one partition) keep their order; the checks of order then
            publish with ``ordering_key``.
        lists_topics: Whether the transport lists its topics (``list_topics()``, what
            ``quantum-core topics`` shows).
    """

    redelivery_timeout: float = 5.0
    reports_backlog: bool = True
    orders_unkeyed: bool = True
    lists_topics: bool = True


@dataclass
class Harness:
    """Buses on one transport namespace, with unique service names, closed at the end."""

    make_transport: MakeTransport
    stack: AsyncExitStack
    run: str = field(default_factory=lambda: os.urandom(3).hex())

    def bus(self, service: str, *, transport: Transport | None = None, **options: Any) -> EventBus:
        """A bus on ``transport`` (a new one of the namespace), stopped at the end of the check."""
        bus = EventBus(
            transport or self.transport(), service_name=f"{service}-{self.run}", **options
        )
        self.stack.push_async_callback(bus.stop)
        return bus

    def transport(self) -> Transport:
        """A new transport of the namespace, closed at the end of the check."""
        transport = self.make_transport()
        self.stack.push_async_callback(transport.close)
        return transport

    def topic(self, name: str) -> str:
        """A topic name unique to this run."""
        return f"contract.{name}.{self.run}"


Check = Callable[[Harness, TransportFeatures], Awaitable[None]]
"""One check of the contract: it raises AssertionError naming the promise broken."""


def expect(condition: object, message: object = "the transport broke its contract") -> None:
    """Like ``assert``, but also under ``python -O``: a contract check must never vanish."""
    if not condition:
        raise AssertionError(message)
