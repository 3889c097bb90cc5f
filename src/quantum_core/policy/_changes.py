"""What a policy change is: who and which mode, what differs, what the bus is told.

``switch_mode``, ``update_config`` and ``reset`` announce the same two events, with the same
fields, whichever of them made the change: ``policy.mode.changed`` when the active mode
changed, ``policy.config.updated`` for each mode whose limits changed.
"""

from __future__ import annotations

from typing import Any

from ..models import RiskMode, RiskPolicy

__all__ = ["check_mode", "check_who_and_why", "config_updated", "differences", "mode_changed"]


def mode_changed(
    previous: RiskPolicy, policy: RiskPolicy, reason: str | None, trace_id: str
) -> dict[str, Any]:
    """The payload of ``policy.mode.changed``."""
    return {
        "previous_mode": previous.active_mode.value,
        "active_mode": policy.active_mode.value,
        "version": policy.version,
        "updated_by": policy.updated_by,
        "updated_at": policy.updated_at.isoformat(),
        "reason": reason,
        "trace_id": trace_id,
    }


def config_updated(
    mode: RiskMode, previous: RiskPolicy, policy: RiskPolicy, reason: str | None, trace_id: str
) -> dict[str, Any]:
    """The payload of ``policy.config.updated`` for the limits of ``mode``."""
    before, after = previous.configs[mode].model_dump(), policy.configs[mode].model_dump()
    changed = sorted(name for name in after if after[name] != before[name])
    return {
        "mode": mode.value,
        "limits": after,
        "old": {name: before[name] for name in changed},
        "new": {name: after[name] for name in changed},
        "version": policy.version,
        "updated_by": policy.updated_by,
        "updated_at": policy.updated_at.isoformat(),
        "reason": reason,
        "trace_id": trace_id,
    }


def differences(policy: RiskPolicy, target: RiskPolicy) -> tuple[dict[str, Any], dict[str, Any]]:
    """What differs from ``policy`` to ``target``: the mode, and ``"<MODE>.<limit>"`` keys."""
    old: dict[str, Any] = {}
    new: dict[str, Any] = {}
    if policy.active_mode is not target.active_mode:
        old["active_mode"], new["active_mode"] = policy.active_mode.value, target.active_mode.value
    for mode in RiskMode:
        before, after = policy.configs[mode].model_dump(), target.configs[mode].model_dump()
        for name, value in after.items():
            if value != before[name]:
                old[f"{mode.value}.{name}"], new[f"{mode.value}.{name}"] = before[name], value
    return old, new


def check_mode(mode: object) -> RiskMode:
    """The mode a caller named: a RiskMode, or its exact name."""
    if isinstance(mode, str) and mode in RiskMode.__members__:
        return RiskMode(mode)
    valid = ", ".join(m.value for m in RiskMode)
    raise ValueError(f"unknown risk mode {mode!r}; expected one of {valid}")


def check_who_and_why(updated_by: object, reason: object) -> None:
    """Every change names who made it (the audit history keeps it), and why at most briefly."""
    if not isinstance(updated_by, str) or not updated_by.strip() or len(updated_by) > 200:
        raise ValueError(
            "updated_by must name who made the change (a non-empty string of at most 200 "
            f"characters), got {updated_by!r}"
        )
    if reason is not None and (not isinstance(reason, str) or len(reason) > 1000):
        raise ValueError(
            f"reason must be None or a string of at most 1000 characters, got {reason!r}"
        )
