"""The event bus and its transports."""

from ._retry import HandlerTimeoutError
from .bus import EventBus, EventHandler
from .context import EventInfo, current_event
from .dead_letters import DeadLetter
from .memory import MemoryTransport
from .redis_streams import RedisStreamsTransport
from .registry import register_transport, transport_from_url
from .stats import SubscriptionStats
from .transport import Backlog, Delivery, Subscription, Transport

__all__ = [
    "Backlog",
    "DeadLetter",
    "Delivery",
    "EventBus",
    "EventHandler",
    "EventInfo",
    "HandlerTimeoutError",
    "MemoryTransport",
    "RedisStreamsTransport",
    "Subscription",
    "SubscriptionStats",
    "Transport",
    "current_event",
    "register_transport",
    "transport_from_url",
]
