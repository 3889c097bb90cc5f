"""Where the policy is kept: a small interface, and the in-memory backend.

A backend stores one policy document, writes it compare-and-set together with its audit
entry, keeps the mark of a *seed* (a policy from a store's defaults or snapshot, see
:class:`StoredPolicy`), and tells the stores that use it when the document may have changed.
Everything else (the cache, retries, which policy wins after a data loss, the snapshot file,
the event-bus announcement) lives in :class:`~quantum_core.policy.PolicyStore`, the same for
every backend.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from itertools import islice

from .._checks import check_int, check_seconds
from ..logs import get_logger
from ..models import RiskPolicy
from ._polling import call_every
from .codec import PolicyChange, StoredPolicy, is_seed

__all__ = ["ChangeCallback", "MemoryPolicyBackend", "PolicyBackend", "PolicyWatch"]

ChangeCallback = Callable[[], None]
"""Called, without arguments and without blocking, when the stored policy may have changed."""

_log = get_logger("quantum_core.policy")


class PolicyWatch(ABC):
    """A running watch started by :meth:`PolicyBackend.watch`; close it to stop it."""

    @abstractmethod
    async def close(self) -> None:
        """Stop calling back and release what the watch holds (tasks, connections)."""


class PolicyBackend(ABC):
    """Storage for the policy document, shared by every process (or store) that uses it.

    Implement :meth:`load` and :meth:`save`; a backend without change notifications still
    propagates changes, because the default :meth:`watch` polls every ``poll_interval``
    seconds. Implement :meth:`load_stored` too if the storage can keep the seed mark (see
    :meth:`save`), and :attr:`deployment` to name what a snapshot file belongs to.
    """

    poll_interval: float = 1.0
    """Seconds between the periodic checks of the default :meth:`watch`."""

    @abstractmethod
    async def load(self) -> RiskPolicy | None:
        """Return the stored policy, or None when nothing is stored.

        Raises:
            PolicyDataError: when the stored value is not a valid policy.
            PolicyUnavailableError: when the storage cannot be reached.
        """

    async def load_stored(self) -> StoredPolicy | None:
        """Return the stored policy and whether it is a seed, or None when nothing is stored.

        This default knows no seeds: every stored policy counts as confirmed, and stores
        then settle on the highest version after a data loss.

        Raises:
            PolicyDataError: when the stored value is not a valid policy.
            PolicyUnavailableError: when the storage cannot be reached.
        """
        policy = await self.load()
        return None if policy is None else StoredPolicy(policy)

    @property
    def deployment(self) -> dict[str, str | int]:
        """What this backend's policy belongs to, without secrets (JSON-safe values).

        A snapshot file records it and is adopted only by a store whose backend says the
        same. This default names the backend's class; override it to name the server and
        namespace.
        """
        return {"backend": f"{type(self).__module__}.{type(self).__qualname__}"}

    @abstractmethod
    async def save(
        self,
        policy: RiskPolicy,
        *,
        expected_version: int | None,
        change: PolicyChange | None = None,
        replace_unreadable: bool = False,
    ) -> bool:
        """Store ``policy`` and append ``change`` to the history, atomically, if nothing moved.

        The write happens only if the stored policy's version is ``expected_version``, or,
        with ``expected_version=None``, if nothing is stored (or, with
        ``replace_unreadable``, the stored value is unreadable). Every store watching is
        then told. A ``change`` whose action is ``initial`` stores a seed: keep that mark
        with the policy and return it from :meth:`load_stored`.

        Returns:
            False, storing nothing, when another writer got there first.

        Raises:
            PolicyUnavailableError: when the storage cannot be reached.
        """

    async def history(self, limit: int) -> list[PolicyChange]:
        """Return the newest ``limit`` audit entries, newest first."""
        raise NotImplementedError(f"{type(self).__name__} keeps no audit history")

    async def watch(self, on_change: ChangeCallback) -> PolicyWatch:
        """Call ``on_change()`` whenever the stored policy may have changed, until closed.

        Calls may be spurious; a store answers each with one :meth:`load`. Return once the
        watch is listening, so that a change stored after this returns is reported (a
        watch that needs a connection returns once it is subscribed, or once its first
        attempt failed: the store must start without its backend too).

        Raises:
            ValueError: if ``poll_interval`` is not a number of seconds > 0 (this default).
        """
        return _PollingWatch(on_change, self.poll_interval)

    async def close(self) -> None:  # noqa: B027 - most backends hold nothing to close
        """Release what the backend opened itself."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


class _PollingWatch(PolicyWatch):
    """The safety net every backend can afford: a call every ``interval`` seconds."""

    def __init__(self, on_change: ChangeCallback, interval: float) -> None:
        interval = check_seconds("poll_interval", interval, positive=True)
        self._task = asyncio.create_task(
            call_every(interval, on_change), name="quantum_core policy poll"
        )

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


class MemoryPolicyBackend(PolicyBackend):
    """The policy in this process's memory: for tests, the demo and single-process apps.

    Stores that share one instance behave like processes sharing one Redis: a write by one
    is announced to the others at once, which makes propagation easy to test.

    Args:
        initial: The policy stored at the start; none by default.
        history_size: How many audit entries are kept.
    """

    def __init__(self, initial: RiskPolicy | None = None, *, history_size: int = 1000) -> None:
        history_size = check_int("history_size", history_size)
        self._stored = None if initial is None else StoredPolicy(initial)
        self._history: deque[PolicyChange] = deque(maxlen=history_size)
        self._watchers: list[ChangeCallback] = []

    async def load(self) -> RiskPolicy | None:
        """Return the stored policy."""
        return None if self._stored is None else self._stored.policy

    async def load_stored(self) -> StoredPolicy | None:
        """Return the stored policy and whether it is a seed."""
        return self._stored

    async def save(
        self,
        policy: RiskPolicy,
        *,
        expected_version: int | None,
        change: PolicyChange | None = None,
        replace_unreadable: bool = False,
    ) -> bool:
        """Store ``policy`` when the version still matches; nothing here is ever unreadable."""
        current = None if self._stored is None else self._stored.policy.version
        if current != expected_version:
            return False
        self._stored = StoredPolicy(policy, is_seed(change))  # no await since the check
        if change is not None:
            self._history.appendleft(change)
        for on_change in tuple(self._watchers):
            try:
                on_change()
            except Exception:
                _log.exception("policy_watcher_failed")
        return True

    async def history(self, limit: int) -> list[PolicyChange]:
        """Return the newest ``limit`` audit entries, newest first."""
        return list(islice(self._history, limit))

    async def watch(self, on_change: ChangeCallback) -> PolicyWatch:
        """Call ``on_change()`` after every write made through this backend."""
        self._watchers.append(on_change)
        return _ListedWatch(self._watchers, on_change)


class _ListedWatch(PolicyWatch):
    def __init__(self, watchers: list[ChangeCallback], on_change: ChangeCallback) -> None:
        self._watchers = watchers
        self._on_change = on_change

    async def close(self) -> None:
        if self._on_change in self._watchers:
            self._watchers.remove(self._on_change)
