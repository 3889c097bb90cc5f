"""The NATS JetStream transport (``nats://``); nats-py, the ``nats`` extra, loads on first use."""

from .transport import NatsJetStreamTransport

__all__ = ["NatsJetStreamTransport"]
