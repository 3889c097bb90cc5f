"""The event bus and its transports."""

from .bus import EventBus, EventHandler
from .context import EventInfo, current_event
from .memory import MemoryTransport
from .redis_streams import RedisStreamsTransport
from .transport import (
    Backlog,
    Delivery,
    Subscription,
    Transport,
    register_transport,
    transport_from_url,
)

__all__ = [
    "Backlog",
    "Delivery",
    "EventBus",
    "EventHandler",
    "EventInfo",
    "MemoryTransport",
    "RedisStreamsTransport",
    "Subscription",
    "Transport",
    "current_event",
    "register_transport",
    "transport_from_url",
]
