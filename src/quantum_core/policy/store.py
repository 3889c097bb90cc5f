"""PolicyStore: the risk policy every trading decision reads, cached in this process.

Reads come from process memory: every decision reads the policy, so a read costs a
fraction of a microsecond and never waits on the network. The backend tells the store when
another process changed the policy (Redis pub/sub, plus a periodic check for a missed
notification) and the store reloads it, so a switch to DEFENSIVE reaches every process
within milliseconds. Writes are versioned compare-and-set: two writers at once both apply,
in some order, and no version repeats. A mode switch is also announced on the event bus as
``policy.mode.changed``, so domains can react at once.

When the backend is unreachable, or holds a value that is not a valid policy, the store
keeps serving the last good policy (and says so once in the log), while writes fail with
:class:`PolicyUnavailableError`: a risk manager must know a switch did not happen.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from ..logs import get_logger
from ..models import RiskConfig, RiskMode, RiskPolicy
from ..tracing import new_trace_id, trace_context
from ._changes import check_mode, check_who_and_why, config_updated, differences, mode_changed
from ._sync import Follower
from .backends import MemoryPolicyBackend, PolicyBackend
from .codec import ChangeAction, PolicyChange
from .errors import PolicyConflictError, PolicyDataError, PolicyUnavailableError
from .snapshot import PolicySnapshot
from .validation import check_policy, merge_limits

if TYPE_CHECKING:
    from ..bus import EventBus

__all__ = ["CONFIG_UPDATED", "MODE_CHANGED", "PolicyStore"]

MODE_CHANGED = "policy.mode.changed"
CONFIG_UPDATED = "policy.config.updated"
_WRITE_ATTEMPTS = 20
_HISTORY_MAX = 10_000

_log = get_logger("quantum_core.policy")

# What a change function returns: the fields to update and the changed values, old and new.
_Change = tuple[dict[str, Any], dict[str, Any], dict[str, Any]]


class PolicyStore(Follower):
    """The risk policy: cached reads, versioned writes, changes seen by every process.

    Args:
        backend: Where the policy is kept; in memory by default. See
            :class:`RedisPolicyBackend` for several processes.
        event_bus: Where changes are announced; :func:`initialize_event_bus` attaches the
            process-wide bus automatically.
        default: The policy stored (as a seed) when the backend holds none yet, and the one
            :meth:`reset` writes (NORMAL and the default limits by default).
        snapshot_path: A JSON file the store rewrites in the background after each change
            it confirms, and reads at a start without its backend, if the file is private to
            this user and belongs to the same deployment (``backend.deployment``); none by
            default.
    """

    def __init__(
        self,
        backend: PolicyBackend | None = None,
        *,
        event_bus: EventBus | None = None,
        default: RiskPolicy | None = None,
        snapshot_path: str | os.PathLike[str] | None = None,
    ) -> None:
        if backend is not None and not isinstance(backend, PolicyBackend):
            raise TypeError(
                "backend must be a PolicyBackend (such as MemoryPolicyBackend() or "
                f"RedisPolicyBackend(redis_client)), got {type(backend).__name__}; "
                "initialize_policy_store() also takes a Redis client or URL"
            )
        backend = backend or MemoryPolicyBackend()
        super().__init__(
            backend,
            default=check_policy(default or RiskPolicy()),
            snapshot=(
                None if snapshot_path is None else PolicySnapshot(snapshot_path, backend.deployment)
            ),
            actor=f"quantum_core@{socket.gethostname()}:{os.getpid()}",
        )
        self.event_bus = event_bus

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

    async def get_policy(self) -> RiskPolicy:
        """Return the policy in force, from the in-process cache; never raises once loaded."""
        policy = self._policy
        if policy is None:
            policy = await self.initialize()
        return policy

    async def switch_mode(
        self, mode: RiskMode | str, *, updated_by: str, reason: str | None = None
    ) -> RiskPolicy:
        """Make ``mode`` the active risk mode, tell every process, announce it on the bus.

        Switching to the mode already active changes nothing and announces nothing.

        Raises:
            PolicyUnavailableError: when the backend cannot be reached; nothing switched.
            PolicyDataError: when the stored value is unreadable and this store never
                loaded a valid policy to build on; nothing switched.
        """
        new_mode = check_mode(mode)
        check_who_and_why(updated_by, reason)

        def change(policy: RiskPolicy) -> _Change | None:
            if policy.active_mode is new_mode:
                return None
            return (
                {"active_mode": new_mode},
                {"active_mode": policy.active_mode.value},
                {"active_mode": new_mode.value},
            )

        trace_id = trace_context.get() or new_trace_id()
        previous, policy = await self._write("mode", None, change, updated_by, reason, trace_id)
        if policy is previous:
            return policy
        _log.warning(
            "risk_mode_switched",
            previous_mode=previous.active_mode.value,
            active_mode=policy.active_mode.value,
            version=policy.version,
            updated_by=updated_by,
            reason=reason,
            trace_id=trace_id,
        )
        await self._announce(MODE_CHANGED, mode_changed(previous, policy, reason, trace_id))
        return policy

    async def update_config(
        self, mode: RiskMode | str, *, updated_by: str, reason: str | None = None, **limits: Any
    ) -> RiskPolicy:
        """Change some limits of one mode, such as ``max_leverage=5``.

        Limits equal to the stored ones change nothing and announce nothing.

        Raises:
            PolicyValidationError: naming each limit that is of the wrong type (a number,
                or an integer for ``max_open_positions``; never a bool or a string), out of
                its range, or that would make a mode looser than a less strict one; nothing
                is written.
            PolicyUnavailableError: when the backend cannot be reached; nothing changed.
            PolicyDataError: when the stored value is unreadable and this store never
                loaded a valid policy to build on; nothing changed.
        """
        target = check_mode(mode)
        check_who_and_why(updated_by, reason)
        if not limits:
            raise ValueError("update_config needs at least one limit, such as max_leverage=5")
        unknown = sorted(set(limits) - set(RiskConfig.model_fields))
        if unknown:
            raise ValueError(
                f"unknown risk limit(s) {', '.join(unknown)}; "
                f"known: {', '.join(RiskConfig.model_fields)}"
            )
        if self._policy is not None:  # out-of-range limits fail before any round trip
            merge_limits(target, self._policy.configs[target], limits)

        def change(policy: RiskPolicy) -> _Change | None:
            before = policy.configs[target]
            after = merge_limits(target, before, limits)
            old, new = before.model_dump(), after.model_dump()
            changed = [name for name in new if new[name] != old[name]]
            if not changed:
                return None
            return (
                {"configs": {**policy.configs, target: after}},
                {name: old[name] for name in changed},
                {name: new[name] for name in changed},
            )

        trace_id = trace_context.get() or new_trace_id()
        previous, policy = await self._write("config", target, change, updated_by, reason, trace_id)
        if policy is previous:
            return policy
        before, after = previous.configs[target].model_dump(), policy.configs[target].model_dump()
        _log.warning(
            "risk_limits_updated",
            mode=target.value,
            limits={name: after[name] for name in sorted(after) if after[name] != before[name]},
            version=policy.version,
            updated_by=updated_by,
            reason=reason,
            trace_id=trace_id,
        )
        await self._announce(
            CONFIG_UPDATED, config_updated(target, previous, policy, reason, trace_id)
        )
        return policy

    async def reset(self, *, updated_by: str, reason: str | None = None) -> RiskPolicy:
        """Make this store's default policy (its mode and every limit) the policy in force.

        The way back on purpose: the defaults are written as a new version, so every store
        follows. Deleting the stored policy, or writing an older one by hand, resets
        nothing: a running store puts its confirmed policy back. Changes nothing when the
        policy already is the default; announces what a switch and limit updates would.

        Raises:
            PolicyUnavailableError: when the backend cannot be reached; nothing changed.
            PolicyDataError: when the stored value is unreadable and this store never
                loaded a valid policy to build on; nothing changed.
        """
        check_who_and_why(updated_by, reason)
        default = self._default

        def change(policy: RiskPolicy) -> _Change | None:
            old, new = differences(policy, default)
            if not new:
                return None
            return (
                {"active_mode": default.active_mode, "configs": dict(default.configs)},
                old,
                new,
            )

        trace_id = trace_context.get() or new_trace_id()
        previous, policy = await self._write("reset", None, change, updated_by, reason, trace_id)
        if policy is previous:
            return policy
        _log.warning(
            "risk_policy_reset",
            previous_mode=previous.active_mode.value,
            active_mode=policy.active_mode.value,
            version=policy.version,
            updated_by=updated_by,
            reason=reason,
            trace_id=trace_id,
        )
        if previous.active_mode is not policy.active_mode:
            await self._announce(MODE_CHANGED, mode_changed(previous, policy, reason, trace_id))
        for mode in RiskMode:
            if previous.configs[mode] != policy.configs[mode]:
                await self._announce(
                    CONFIG_UPDATED, config_updated(mode, previous, policy, reason, trace_id)
                )
        return policy

    async def history(self, limit: int = 50) -> list[PolicyChange]:
        """Return the newest ``limit`` changes (who, when, old and new values, why).

        Raises:
            PolicyUnavailableError: when the backend cannot be reached.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= _HISTORY_MAX:
            raise ValueError(f"limit must be an integer from 1 to {_HISTORY_MAX}, got {limit!r}")
        return await self._backend.history(limit)

    async def __aenter__(self) -> Self:
        await self.initialize()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        policy = self._policy
        state = "not loaded" if policy is None else f"{policy.active_mode.value} v{policy.version}"
        return f"<PolicyStore {state} source={self.source} backend={self._backend!r}>"

    # -- writing --------------------------------------------------------------------------

    async def _write(
        self,
        action: ChangeAction,
        mode: RiskMode | None,
        change: Callable[[RiskPolicy], _Change | None],
        updated_by: str,
        reason: str | None,
        trace_id: str,
    ) -> tuple[RiskPolicy, RiskPolicy]:
        """Apply ``change`` with compare-and-set, retrying when another writer won the race.

        A write builds on the stored policy; on this store's confirmed policy when that one
        outranks what is stored (see ``_outranks``) or when the stored value is unreadable;
        never on the defaults over an unreadable value, except a reset, which means them.
        Returns the policy before and after; the same object twice when nothing changed.
        """
        self._check_open()
        if self._policy is None:
            await self.initialize()
        async with self._lock:
            for attempt in range(_WRITE_ATTEMPTS):
                unreadable: PolicyDataError | None = None
                try:
                    stored = await self._backend.load_stored()
                except PolicyDataError as error:
                    self._report_unreadable(error)
                    if not self._confirmed and action != "reset":
                        raise _nothing_to_build_on(error) from error
                    stored, unreadable = None, error  # on the last good policy, or the default
                except PolicyUnavailableError as error:
                    self._report_unreachable(error)
                    raise
                if unreadable is None and (stored is None or self._outranks(stored)):
                    await self._put_back(stored, raise_unavailable=True)
                    continue  # read again what is stored now
                base = self.policy if stored is None else stored.policy
                fields = change(base)
                if fields is None and unreadable is not None and action == "reset":
                    fields = ({}, {}, {})  # the defaults again; replacing the bad value is it
                if fields is None:
                    if stored is not None:
                        self._adopt(base, confirmed=not stored.seed)
                    return base, base
                update, old, new = fields
                floor = -1 if unreadable is None else await self._version_floor(unreadable)
                candidate = base.model_copy(
                    update={
                        **update,
                        "version": max(base.version, floor) + 1,
                        "updated_by": updated_by,
                        "updated_at": datetime.now(UTC),
                    }
                )
                policy = check_policy(candidate, changed=mode)
                entry = PolicyChange(
                    version=policy.version,
                    action=action,
                    updated_by=updated_by,
                    updated_at=policy.updated_at,
                    mode=mode,
                    old=old,
                    new=new,
                    reason=reason,
                    trace_id=trace_id,
                )
                try:
                    saved = await self._backend.save(
                        policy,
                        expected_version=None if stored is None else stored.policy.version,
                        change=entry,
                        replace_unreadable=unreadable is not None,
                    )
                except PolicyUnavailableError as error:
                    self._report_unreachable(error)
                    raise
                if saved:
                    if unreadable is not None:
                        _log.warning("policy_unreadable_value_replaced", version=policy.version)
                    self._adopt(policy, confirmed=True, quiet=True)
                    return base, policy
                await asyncio.sleep(random.random() * 0.002 * (attempt + 1))  # noqa: S311 - jitter
        raise PolicyConflictError(
            f"the policy write lost the compare-and-set race {_WRITE_ATTEMPTS} times in a row "
            "to other writers; nothing was written by this call, try again"
        )

    async def _version_floor(self, unreadable: PolicyDataError) -> int:
        """The version a write over an unreadable value goes above: versions never go back.

        The bad value's own version if it has one, and the newest one in the history: a
        value with no version would otherwise let a write start again from 1, below what
        the running stores hold (they would put theirs back).
        """
        floor = -1 if unreadable.stored_version is None else unreadable.stored_version
        try:
            newest = await self._backend.history(1)
        except (NotImplementedError, PolicyUnavailableError):
            return floor
        return max([floor, *(entry.version for entry in newest)])

    async def _announce(self, event_type: str, payload: dict[str, Any]) -> None:
        """Publish a change; a failed broadcast never undoes the change itself."""
        bus = self.event_bus
        if bus is None:
            return
        try:
            await bus.publish(event_type, payload, trace_id=payload["trace_id"])
        except Exception:
            _log.exception("policy_change_not_broadcast", event_type=event_type)


def _nothing_to_build_on(error: PolicyDataError) -> PolicyDataError:
    """Why a store that never loaded a valid policy refuses to write over an unreadable one."""
    return PolicyDataError(
        error.where,
        error.reason,
        stored_version=error.stored_version,
        then="Nothing was written: this store holds no valid policy to build on (it started "
        "while the value was unreadable), and building on its defaults would reset every "
        "limit. Running services keep their last valid policy and replace the value on "
        "their next change; reset() writes the defaults on purpose",
    )
