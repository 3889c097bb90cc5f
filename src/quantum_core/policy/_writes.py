"""How a PolicyStore writes: compare-and-set on what is stored, retried when another won.

Every write (a switch, a limit update, a reset) builds on the policy the backend holds now,
not on the cache, and is stored only if nothing moved since it was read; a write that lost
that race reads again and retries, after a jittered backoff (the library's one, from 2 ms
doubling up to 20 ms) so that writers that collided do not collide again. The write takes
the follower's lock, so a reload never overwrites it with an older read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from .._backoff import backoff
from ..logs import get_logger
from ..models import RiskMode, RiskPolicy
from ._sync import Follower
from .codec import ChangeAction, PolicyChange
from .errors import PolicyConflictError, PolicyDataError, PolicyUnavailableError
from .validation import check_policy

__all__ = ["Change", "write_change"]

Change = tuple[dict[str, Any], dict[str, Any], dict[str, Any]]
"""What a change function returns: the fields to update and the changed values, old and new."""

_WRITE_ATTEMPTS: Final = 20
_RETRY_FIRST: Final = 0.002  # seconds before a write that lost the race reads again
_RETRY_MAX: Final = 0.02

_log = get_logger("quantum_core.policy")


async def write_change(
    follower: Follower,
    action: ChangeAction,
    mode: RiskMode | None,
    change: Callable[[RiskPolicy], Change | None],
    *,
    updated_by: str,
    reason: str | None,
    trace_id: str,
) -> tuple[RiskPolicy, RiskPolicy]:
    """Apply ``change`` with compare-and-set, retrying when another writer won the race.

    A write builds on the stored policy; on the follower's confirmed policy when that one
    outranks what is stored (see ``Follower.outranks``) or when the stored value is
    unreadable; never on the defaults over an unreadable value, except a reset, which
    means them. Returns the policy before and after; the same object twice when nothing
    changed.
    """
    follower.check_open()
    if follower.cached is None:
        await follower.initialize()
    backend = follower.backend
    async with follower.lock:
        for attempt in range(1, _WRITE_ATTEMPTS + 1):
            unreadable: PolicyDataError | None = None
            try:
                stored = await backend.load_stored()
            except PolicyDataError as error:
                follower.report_unreadable(error)
                if not follower.confirmed and action != "reset":
                    raise _nothing_to_build_on(error) from error
                stored, unreadable = None, error  # on the last good policy, or the default
            except PolicyUnavailableError as error:
                follower.report_unreachable(error)
                raise
            if unreadable is None and (stored is None or follower.outranks(stored)):
                await follower.put_back(stored, raise_unavailable=True)
                continue  # read again what is stored now
            cached = follower.cached
            assert cached is not None  # noqa: S101 - loaded above; a follower never unloads
            base = cached if stored is None else stored.policy
            fields = change(base)
            if fields is None and unreadable is not None and action == "reset":
                fields = ({}, {}, {})  # the defaults again; replacing the bad value is it
            if fields is None:
                if stored is not None:
                    follower.adopt(base, confirmed=not stored.seed)
                return base, base
            update, old, new = fields
            floor = -1 if unreadable is None else await _version_floor(follower, unreadable)
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
                saved = await backend.save(
                    policy,
                    expected_version=None if stored is None else stored.policy.version,
                    change=entry,
                    replace_unreadable=unreadable is not None,
                )
            except PolicyUnavailableError as error:
                follower.report_unreachable(error)
                raise
            if saved:
                if unreadable is not None:
                    _log.warning("policy_unreadable_value_replaced", version=policy.version)
                follower.adopt(policy, confirmed=True, quiet=True)
                return base, policy
            await asyncio.sleep(backoff(attempt, _RETRY_FIRST, _RETRY_MAX))
    raise PolicyConflictError(
        f"the policy write lost the compare-and-set race {_WRITE_ATTEMPTS} times in a row "
        "to other writers; nothing was written by this call, try again"
    )


async def _version_floor(follower: Follower, unreadable: PolicyDataError) -> int:
    """The version a write over an unreadable value goes above: versions never go back.

    The bad value's own version if it has one, and the newest one in the history: a value
    with no version would otherwise let a write start again from 1, below what the running
    stores hold (they would put theirs back).
    """
    floor = -1 if unreadable.stored_version is None else unreadable.stored_version
    try:
        newest = await follower.backend.history(1)
    except (NotImplementedError, PolicyUnavailableError):
        return floor
    return max([floor, *(entry.version for entry in newest)])


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
