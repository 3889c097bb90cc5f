"""Risk policy: the active mode and its limits, cached in-process, versioned, broadcast."""

from .backends import MemoryPolicyBackend, PolicyBackend
from .store import CONFIG_UPDATED, MODE_CHANGED, PolicyStore

__all__ = ["CONFIG_UPDATED", "MODE_CHANGED", "MemoryPolicyBackend", "PolicyBackend", "PolicyStore"]
