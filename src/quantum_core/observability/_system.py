"""The ``messaging.system`` (and the metrics' ``transport`` label) of a transport."""

from __future__ import annotations

__all__ = ["messaging_system"]

_PACKAGE = "quantum_core.transports."


def messaging_system(transport: object) -> str:
    """``redis``, ``nats``, ``rabbitmq``, ``kafka``, ``memory``: the transport's package name.

    A subclass of one of ours has its base's; a transport of one's own may say its own with
    a ``messaging_system`` attribute, else it is its class name, lowercased.
    """
    named = getattr(transport, "messaging_system", None)
    if isinstance(named, str) and named:
        return named
    for cls in type(transport).__mro__:
        if cls.__module__.startswith(_PACKAGE):
            return cls.__module__[len(_PACKAGE) :].partition(".")[0]
    return type(transport).__name__.lower()
