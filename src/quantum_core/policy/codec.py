"""The stored forms of a policy and of an audit entry: one JSON document each.

The same bytes go to Redis, to the snapshot file and back, so an operator can restore a
snapshot with ``redis-cli -x SET <prefix>:current < snapshot.json``. Decoding checks
everything a write checks: a value that would be refused on the way in is refused on the
way out, with the reason, instead of reaching a trading decision.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError

from ..models import RiskMode, RiskPolicy, TradingModel
from .errors import PolicyDataError, PolicyValidationError
from .validation import check_policy

__all__ = [
    "ChangeAction",
    "PolicyChange",
    "decode_change",
    "decode_policy",
    "encode_change",
    "encode_policy",
]

ChangeAction = Literal["initial", "mode", "config", "restore"]
"""``initial``: first policy stored; ``mode``/``config``: a switch or new limits;
``restore``: a running process put its last good policy back into an emptied backend."""

_REASON_MAX = 300


class PolicyChange(TradingModel):
    """One entry of the audit history: who changed what, when, from what to what, and why."""

    version: Annotated[int, Field(ge=0)] = Field(description="Policy version after the change.")
    action: ChangeAction
    updated_by: Annotated[str, Field(min_length=1, max_length=200)]
    updated_at: datetime
    mode: RiskMode | None = Field(
        default=None, description="The mode whose limits changed (``config`` changes)."
    )
    old: dict[str, Any] = Field(default_factory=dict, description="Changed fields, before.")
    new: dict[str, Any] = Field(default_factory=dict, description="Changed fields, after.")
    reason: Annotated[str, Field(max_length=1000)] | None = None
    trace_id: str | None = None


def encode_policy(policy: RiskPolicy) -> bytes:
    """Return the stored form of ``policy`` (compact JSON, UTF-8)."""
    return policy.model_dump_json().encode()


def decode_policy(raw: bytes | str, *, where: str) -> RiskPolicy:
    """Read a stored policy, checked like a write, strictly: every field present, no coercion.

    Raises:
        PolicyDataError: naming ``where`` and what is wrong.
    """
    try:
        policy = RiskPolicy.model_validate_json(raw, strict=True)
    except ValidationError as error:
        raise PolicyDataError(
            where, _summary(error), stored_version=_stored_version(raw)
        ) from error
    missing = sorted(set(RiskPolicy.model_fields) - policy.model_fields_set)
    if missing:  # a hand-written {"active_mode": ...} must not pass for a whole policy
        raise PolicyDataError(
            where, f"missing field(s) {', '.join(missing)}", stored_version=_stored_version(raw)
        )
    try:
        return check_policy(policy)
    except PolicyValidationError as error:
        reason = "; ".join(f"{v.field}={v.value!r}: {v.rule}" for v in error.violations)
        raise PolicyDataError(where, reason, stored_version=policy.version) from error


def encode_change(change: PolicyChange) -> bytes:
    """Return the stored form of an audit entry."""
    return change.model_dump_json().encode()


def decode_change(raw: bytes | str) -> PolicyChange | None:
    """Read an audit entry; None if it is not one (the history is informative, not vital)."""
    try:
        return PolicyChange.model_validate_json(raw)
    except ValidationError:
        return None


def _summary(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(p) for p in item["loc"]) or "document"
        parts.append(f"{where}: {item['msg']}")
    text = "; ".join(parts)
    return text if len(text) <= _REASON_MAX else text[: _REASON_MAX - 3] + "..."


def _stored_version(raw: bytes | str) -> int | None:
    """The ``version`` of a document that is otherwise unreadable, if it has a usable one."""
    try:
        document = json.loads(raw)
    except ValueError:  # also UnicodeDecodeError
        return None
    version = document.get("version") if isinstance(document, dict) else None
    if isinstance(version, bool) or not isinstance(version, int | float):
        return None
    if version < 0 or not float(version).is_integer() or version > 2**53:
        return None
    return int(version)
