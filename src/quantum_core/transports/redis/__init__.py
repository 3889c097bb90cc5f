"""The Redis Streams transport (``redis://``, ``rediss://``): durable topics on one Redis."""

from .transport import COMMAND_ATTEMPTS, COMMAND_BUDGET, COMMAND_TIMEOUT, RedisStreamsTransport

__all__ = ["COMMAND_ATTEMPTS", "COMMAND_BUDGET", "COMMAND_TIMEOUT", "RedisStreamsTransport"]
