"""Risk policy: the active mode and its limits, cached in-process, versioned, shared."""

from .backends import ChangeCallback, MemoryPolicyBackend, PolicyBackend, PolicyWatch
from .codec import PolicyChange, StoredPolicy
from .errors import (
    PolicyConflictError,
    PolicyDataError,
    PolicyError,
    PolicyUnavailableError,
    PolicyValidationError,
    PolicyViolation,
)
from .redis_backend import DEFAULT_KEY_PREFIX, RedisPolicyBackend
from .snapshot import default_snapshot_path
from .store import CONFIG_UPDATED, MODE_CHANGED, PolicyStore

__all__ = [
    "CONFIG_UPDATED",
    "DEFAULT_KEY_PREFIX",
    "MODE_CHANGED",
    "ChangeCallback",
    "MemoryPolicyBackend",
    "PolicyBackend",
    "PolicyChange",
    "PolicyConflictError",
    "PolicyDataError",
    "PolicyError",
    "PolicyStore",
    "PolicyUnavailableError",
    "PolicyValidationError",
    "PolicyViolation",
    "PolicyWatch",
    "RedisPolicyBackend",
    "StoredPolicy",
    "default_snapshot_path",
]
