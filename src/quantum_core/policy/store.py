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

import functools
import os
import socket
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self, TypeVar, cast

from .._checks import check_int
from ..logs import get_logger
from ..models import RiskConfig, RiskMode, RiskPolicy
from ..observability._gate import traced
from ..observability._metrics import metrics, turned_on
from ..tracing import new_trace_id, trace_context
from ._changes import check_mode, check_who_and_why, config_updated, differences, mode_changed
from ._sync import Follower, PolicySource
from ._writes import Change, write_change
from .backends import MemoryPolicyBackend, PolicyBackend
from .codec import PolicyChange
from .snapshot import PolicySnapshot
from .validation import check_policy, merge_limits

if TYPE_CHECKING:
    from ..bus import EventBus

__all__ = ["CONFIG_UPDATED", "MODE_CHANGED", "PolicyStore"]

MODE_CHANGED = "policy.mode.changed"
CONFIG_UPDATED = "policy.config.updated"
_HISTORY_MAX: Final = 10_000

_log = get_logger("quantum_core.policy")
_Change = TypeVar("_Change", bound=Callable[..., Awaitable[RiskPolicy]])


def _traced(name: str) -> Callable[[_Change], _Change]:
    """Run a policy change in a span ``name`` (when an OpenTelemetry SDK is configured).

    The change's announcement on the bus is published inside it: the same trace.
    """

    def wrap(method: _Change) -> _Change:
        @functools.wraps(method)
        async def in_span(*args: Any, **kwargs: Any) -> RiskPolicy:
            with traced(name) as span:
                policy = await method(*args, **kwargs)
                if span is not None:
                    span.set_attribute("quantum_core.policy.active_mode", policy.active_mode.value)
                    span.set_attribute("quantum_core.policy.version", policy.version)
                return policy

        return cast(_Change, in_span)

    return wrap


def _changed(change: str) -> None:
    """Count a change this process made (quantum_core_policy_changes_total)."""
    if metrics.enabled:
        metrics.policy_changed(change)


class PolicyStore:
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
        self._follower = Follower(
            backend,
            default=check_policy(default or RiskPolicy()),
            snapshot=(
                None if snapshot_path is None else PolicySnapshot(snapshot_path, backend.deployment)
            ),
            actor=f"quantum_core@{socket.gethostname()}:{os.getpid()}",
        )
        self.event_bus = event_bus
        if turned_on() is not None:  # quantum_core_risk_mode reads the policy in force
            metrics.policy_stores.add(self)

    # -- following ------------------------------------------------------------------------

    @property
    def backend(self) -> PolicyBackend:
        """Where the policy is kept."""
        return self._follower.backend

    @property
    def source(self) -> PolicySource:
        """Where the cached policy came from: ``"backend"``, ``"snapshot"`` or ``"defaults"``.

        ``"none"`` before the first load. A store that started without its backend says
        ``"snapshot"`` or ``"defaults"`` until it adopts the stored policy.
        """
        return self._follower.source

    async def initialize(self) -> RiskPolicy:
        """Load the policy (storing the default if there is none) and start following changes.

        Returns once the backend's watch is listening (for Redis: the SUBSCRIBE is
        confirmed, or its first attempt failed within ``timeout``), so a change another
        process makes after this returns is heard. Calling it again does nothing more.

        Never raises for an unreachable or unreadable backend: the store then starts from
        its snapshot file, else the defaults, says which in the log, and adopts the stored
        policy as soon as the backend answers.

        Raises:
            RuntimeError: if the store was closed.
        """
        return await self._follower.initialize()

    async def refresh(self) -> RiskPolicy:
        """Check the backend now and adopt what it holds; never raises once loaded.

        The backend's notifications and periodic check call this; call it yourself to
        re-check at once, say after a reconnect of your own.
        """
        return await self._follower.refresh()

    async def close(self) -> None:
        """Stop following changes, finish the snapshot write, close the backend.

        The store keeps serving its last policy; changes to it are refused.
        """
        await self._follower.close()

    # -- reading --------------------------------------------------------------------------

    @property
    def policy(self) -> RiskPolicy:
        """The cached policy, for hot paths that cannot await.

        Raises:
            RuntimeError: before :meth:`initialize` (or a first ``get_policy()``).
        """
        policy = self._follower.cached
        if policy is None:
            raise RuntimeError(
                "the PolicyStore is not loaded yet: await store.initialize() "
                "(initialize_policy_store() does it) or await store.get_policy() first"
            )
        return policy

    async def get_policy(self) -> RiskPolicy:
        """Return the policy in force, from the in-process cache; never raises once loaded."""
        policy = self._follower.cached
        if policy is None:
            policy = await self.initialize()
        return policy

    # -- writing --------------------------------------------------------------------------

    @_traced("policy switch_mode")
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

        def change(policy: RiskPolicy) -> Change | None:
            if policy.active_mode is new_mode:
                return None
            return (
                {"active_mode": new_mode},
                {"active_mode": policy.active_mode.value},
                {"active_mode": new_mode.value},
            )

        trace_id = trace_context.get() or new_trace_id()
        previous, policy = await write_change(
            self._follower,
            "mode",
            None,
            change,
            updated_by=updated_by,
            reason=reason,
            trace_id=trace_id,
        )
        if policy is previous:
            return policy
        _changed("mode")
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

    @_traced("policy update_config")
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
        cached = self._follower.cached
        if cached is not None:  # out-of-range limits fail before any round trip
            merge_limits(target, cached.configs[target], limits)

        def change(policy: RiskPolicy) -> Change | None:
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
        previous, policy = await write_change(
            self._follower,
            "config",
            target,
            change,
            updated_by=updated_by,
            reason=reason,
            trace_id=trace_id,
        )
        if policy is previous:
            return policy
        _changed("limits")
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

    @_traced("policy reset")
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
        default = self._follower.default

        def change(policy: RiskPolicy) -> Change | None:
            old, new = differences(policy, default)
            if not new:
                return None
            return (
                {"active_mode": default.active_mode, "configs": dict(default.configs)},
                old,
                new,
            )

        trace_id = trace_context.get() or new_trace_id()
        previous, policy = await write_change(
            self._follower,
            "reset",
            None,
            change,
            updated_by=updated_by,
            reason=reason,
            trace_id=trace_id,
        )
        if policy is previous:
            return policy
        _changed("reset")
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
        check_int("limit", limit, maximum=_HISTORY_MAX)
        return await self._follower.backend.history(limit)

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
        policy = self._follower.cached
        state = "not loaded" if policy is None else f"{policy.active_mode.value} v{policy.version}"
        return f"<PolicyStore {state} source={self.source} backend={self.backend!r}>"

    # -- announcing ----------------------------------------------------------------------

    async def _announce(self, event_type: str, payload: dict[str, Any]) -> None:
        """Publish a change; a failed broadcast never undoes the change itself."""
        bus = self.event_bus
        if bus is None:
            return
        try:
            await bus.publish(event_type, payload, trace_id=payload["trace_id"])
        except Exception:
            _log.exception("policy_change_not_broadcast", event_type=event_type)
