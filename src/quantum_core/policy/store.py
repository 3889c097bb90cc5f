"""PolicyStore: the risk policy every trading decision reads, cached in this process.

Reads come from process memory (every decision reads the policy, so a read must cost
microseconds). Writes are versioned compare-and-set: two writers at once both apply, in
some order, and no version repeats. A mode switch is announced on the event bus as
``policy.mode.changed`` so every domain can react.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..logs import get_logger
from ..models import RiskConfig, RiskMode, RiskPolicy
from .backends import MemoryPolicyBackend, PolicyBackend

if TYPE_CHECKING:
    from ..bus import EventBus

__all__ = ["CONFIG_UPDATED", "MODE_CHANGED", "PolicyStore"]

MODE_CHANGED = "policy.mode.changed"
CONFIG_UPDATED = "policy.config.updated"
_WRITE_ATTEMPTS = 20

_log = get_logger("quantum_core.policy")


class PolicyStore:
    """The risk policy: cached reads, versioned writes, changes announced on the bus.

    Args:
        backend: Where the policy is kept; in memory by default.
        event_bus: Where changes are announced; :func:`initialize_event_bus` attaches the
            process-wide bus automatically.
        default: The policy stored when the backend holds none yet.
    """

    def __init__(
        self,
        backend: PolicyBackend | None = None,
        *,
        event_bus: EventBus | None = None,
        default: RiskPolicy | None = None,
    ) -> None:
        if backend is not None and not isinstance(backend, PolicyBackend):
            raise TypeError(
                f"backend must be a PolicyBackend (such as MemoryPolicyBackend()), "
                f"got {type(backend).__name__}"
            )
        self._backend = backend or MemoryPolicyBackend()
        self.event_bus = event_bus
        self._default = default or RiskPolicy()
        self._policy: RiskPolicy | None = None
        self._write_lock = asyncio.Lock()

    @property
    def policy(self) -> RiskPolicy:
        """The cached policy, for hot paths that cannot await.

        Raises:
            RuntimeError: before :meth:`initialize` (or a first ``get_policy()``).
        """
        policy = self._policy
        if policy is None:
            raise RuntimeError(
                "the PolicyStore is not loaded yet: await store.initialize() "
                "(initialize_policy_store() does it) or await store.get_policy() first"
            )
        return policy

    async def initialize(self) -> RiskPolicy:
        """Load the stored policy, storing the default one if there is none."""
        policy = await self._backend.load()
        if policy is None:
            if await self._backend.save(self._default, expected_version=None):
                policy = self._default
            else:  # another process stored one first
                policy = await self._backend.load()
        assert policy is not None  # noqa: S101 - a backend that refused a save holds a policy
        self._policy = policy
        return policy

    async def get_policy(self) -> RiskPolicy:
        """Return the policy in force, from the in-process cache."""
        policy = self._policy
        if policy is None:
            policy = await self.initialize()
        return policy

    async def switch_mode(self, mode: RiskMode | str, *, updated_by: str) -> RiskPolicy:
        """Make ``mode`` the active risk mode and announce it as ``policy.mode.changed``.

        Switching to the mode already active changes nothing and announces nothing.
        """
        new_mode = _check_mode(mode)
        _check_updated_by(updated_by)
        previous, policy = await self._write(
            lambda p: None if p.active_mode is new_mode else {"active_mode": new_mode},
            updated_by,
        )
        if policy is previous:
            return policy
        _log.warning(
            "risk_mode_switched",
            previous_mode=previous.active_mode.value,
            active_mode=policy.active_mode.value,
            version=policy.version,
            updated_by=updated_by,
        )
        await self._announce(
            MODE_CHANGED,
            {
                "previous_mode": previous.active_mode.value,
                "active_mode": policy.active_mode.value,
                "version": policy.version,
                "updated_by": policy.updated_by,
                "updated_at": policy.updated_at.isoformat(),
            },
        )
        return policy

    async def update_config(
        self, mode: RiskMode | str, *, updated_by: str, **limits: Any
    ) -> RiskPolicy:
        """Change some limits of one mode, such as ``max_leverage=5``.

        Raises:
            ValueError: naming the limit that is unknown or out of range.
        """
        target = _check_mode(mode)
        _check_updated_by(updated_by)
        if not limits:
            raise ValueError("update_config needs at least one limit, such as max_leverage=5")
        unknown = sorted(set(limits) - set(RiskConfig.model_fields))
        if unknown:
            raise ValueError(
                f"unknown risk limit(s) {', '.join(unknown)}; "
                f"known: {', '.join(RiskConfig.model_fields)}"
            )

        def change(policy: RiskPolicy) -> dict[str, Any]:
            current = policy.configs[target].model_dump()
            config = RiskConfig.model_validate({**current, **limits})
            return {"configs": {**policy.configs, target: config}}

        _, policy = await self._write(change, updated_by)
        _log.warning(
            "risk_limits_updated",
            mode=target.value,
            limits=limits,
            version=policy.version,
            updated_by=updated_by,
        )
        await self._announce(
            CONFIG_UPDATED,
            {
                "mode": target.value,
                "limits": policy.configs[target].model_dump(),
                "version": policy.version,
                "updated_by": policy.updated_by,
                "updated_at": policy.updated_at.isoformat(),
            },
        )
        return policy

    async def close(self) -> None:
        """Release the backend."""
        await self._backend.close()

    async def _write(
        self, change: Callable[[RiskPolicy], dict[str, Any] | None], updated_by: str
    ) -> tuple[RiskPolicy, RiskPolicy]:
        """Apply ``change`` with compare-and-set, retrying when another writer won the race.

        Returns the policy before and after; the same object twice when nothing changed.
        """
        async with self._write_lock:
            for _ in range(_WRITE_ATTEMPTS):
                current = await self._backend.load() or await self.initialize()
                fields = change(current)
                if fields is None:
                    self._policy = current
                    return current, current
                new = current.model_copy(
                    update={
                        **fields,
                        "version": current.version + 1,
                        "updated_by": updated_by,
                        "updated_at": datetime.now(UTC),
                    }
                )
                if await self._backend.save(new, expected_version=current.version):
                    self._policy = new
                    return current, new
        raise RuntimeError(
            f"policy write lost the compare-and-set race {_WRITE_ATTEMPTS} times; try again"
        )

    async def _announce(self, event_type: str, payload: dict[str, Any]) -> None:
        """Publish a change; a failed broadcast never undoes the change itself."""
        bus = self.event_bus
        if bus is None:
            return
        try:
            await bus.publish(event_type, payload)
        except Exception:
            _log.exception("policy_change_not_broadcast", event_type=event_type)


def _check_mode(mode: object) -> RiskMode:
    if isinstance(mode, str) and mode in RiskMode.__members__:
        return RiskMode(mode)
    valid = ", ".join(m.value for m in RiskMode)
    raise ValueError(f"unknown risk mode {mode!r}; expected one of {valid}")


def _check_updated_by(updated_by: object) -> None:
    if not isinstance(updated_by, str) or not updated_by.strip():
        raise ValueError(
            f"updated_by must name who made the change (a non-empty string), got {updated_by!r}"
        )
