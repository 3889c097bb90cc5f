"""Which transport a URL names: the scheme registry, and what an EventBus was given.

The built-in transports are named here by module, as strings, and imported on first use:
the bus core imports no broker package, and ``import quantum_core`` loads no optional broker
library. A transport's module registers its schemes (:func:`register_transport`) when it is
imported; a new built-in transport adds its line to ``_BUILTIN_MODULES`` and nothing else
here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from urllib.parse import urlsplit

from .transport import Transport

__all__ = ["register_transport", "resolve_transport", "transport_from_url"]

TransportFactory = Callable[[str], Transport]
_registry: dict[str, TransportFactory] = {}
_BUILTIN_MODULES = {
    "memory": "quantum_core.transports.memory",
    "redis": "quantum_core.transports.redis",
    "rediss": "quantum_core.transports.redis",
    **dict.fromkeys(("redis+cluster", "rediss+cluster"), "quantum_core.transports.redis"),
    "nats": "quantum_core.transports.nats",
    "amqp": "quantum_core.transports.rabbitmq",
    "amqps": "quantum_core.transports.rabbitmq",
    "kafka": "quantum_core.transports.kafka",
}
# A broker's own client given to EventBus (the guide's EventBus(redis_client)): the top-level
# package its type comes from -> the scheme whose module wraps it, with the class named.
_CLIENT_PACKAGES = {"redis": ("redis", "RedisStreamsTransport")}


def register_transport(scheme: str, factory: TransportFactory) -> None:
    """Let :func:`transport_from_url` build a transport for ``scheme://...`` URLs."""
    _registry[scheme.lower()] = factory


def transport_from_url(url: str) -> Transport:
    """Build the transport a URL names, such as ``memory://``."""
    scheme = urlsplit(url).scheme.lower()
    if scheme not in _registry and scheme in _BUILTIN_MODULES:
        importlib.import_module(_BUILTIN_MODULES[scheme])
    factory = _registry.get(scheme)
    if factory is None:
        known = ", ".join(f"{name}://" for name in sorted({*_registry, *_BUILTIN_MODULES}))
        what = f"URL scheme {scheme}://" if scheme else "a URL without a scheme"
        raise ValueError(f"no transport for {what}; known schemes: {known}")
    return factory(url)


def resolve_transport(transport: object) -> tuple[Transport, bool]:
    """Return the transport an EventBus was given and whether the bus must close it.

    A :class:`Transport` is the caller's; a URL or a ``redis.asyncio.Redis`` client (the
    guide's ``EventBus(redis_client)``) becomes a transport the bus owns.
    """
    if isinstance(transport, Transport):
        return transport, False
    if isinstance(transport, str):
        return transport_from_url(transport), True
    package = type(transport).__module__.partition(".")[0]
    if package in _CLIENT_PACKAGES:
        scheme, class_name = _CLIENT_PACKAGES[package]
        module = importlib.import_module(_BUILTIN_MODULES[scheme])  # imported only when used
        wrapped: Transport = getattr(module, class_name)(transport)
        return wrapped, True
    raise TypeError(
        "EventBus transport must be a Transport, a redis.asyncio.Redis client, or a URL such "
        f"as 'memory://' or 'redis://localhost:6379', got {type(transport).__name__}"
    )
