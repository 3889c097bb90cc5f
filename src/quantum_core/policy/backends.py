"""Where the policy is kept. A backend stores one document and writes it compare-and-set."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod

from ..models import RiskPolicy

__all__ = ["MemoryPolicyBackend", "PolicyBackend"]


class PolicyBackend(ABC):
    """Storage for the policy document, shared by every process that uses it."""

    @abstractmethod
    async def load(self) -> RiskPolicy | None:
        """Return the stored policy, or None when nothing is stored yet."""

    @abstractmethod
    async def save(self, policy: RiskPolicy, *, expected_version: int | None) -> bool:
        """Store ``policy`` if the stored version is ``expected_version`` (None: nothing stored).

        Returns False, storing nothing, when another writer got there first.
        """

    async def close(self) -> None:  # noqa: B027 - most backends hold nothing to close
        """Release what the backend opened itself."""


class MemoryPolicyBackend(PolicyBackend):
    """The policy in this process's memory: for tests, the demo and single-process apps."""

    def __init__(self, initial: RiskPolicy | None = None) -> None:
        self._policy = initial
        self._lock = asyncio.Lock()

    async def load(self) -> RiskPolicy | None:
        """Return the stored policy."""
        return self._policy

    async def save(self, policy: RiskPolicy, *, expected_version: int | None) -> bool:
        """Store ``policy`` when the version still matches."""
        async with self._lock:
            current = None if self._policy is None else self._policy.version
            if current != expected_version:
                return False
            self._policy = policy
            return True
