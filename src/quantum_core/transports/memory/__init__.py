"""The in-memory transport (``memory://``): the embedded default, for tests and one process."""

from .transport import MemoryTransport

__all__ = ["MemoryTransport"]
