"""The stored forms of a policy and of an audit entry: one JSON document each.

The same bytes go to Redis and, wrapped with the deployment they belong to, to the snapshot
file. Decoding checks everything a write checks: a value that would be refused on the way in
is refused on the way out, with the reason, instead of reaching a trading decision.

A *seed* (see :class:`StoredPolicy`) is stored with one more field, ``"seed": true``; every
other document is exactly a :class:`~quantum_core.models.RiskPolicy`.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import Field, ValidationError

from ..models import RiskMode, RiskPolicy, TradingModel
from .errors import PolicyDataError, PolicyValidationError
from .validation import check_policy

__all__ = [
    "ChangeAction",
    "PolicyChange",
    "StoredPolicy",
    "decode_change",
    "decode_policy",
    "decode_stored",
    "encode_change",
    "encode_policy",
    "is_seed",
]

ChangeAction = Literal["initial", "mode", "config", "reset", "restore"]
"""``initial``: a seed, the defaults or a snapshot put into an empty backend by a store that
held no confirmed policy; ``mode``/``config``: a switch or new limits; ``reset``: the
defaults written back on purpose, as a new version; ``restore``: a running store put its
confirmed policy back over an emptied backend, a seed, or an older version."""

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


class StoredPolicy(NamedTuple):
    """A policy as a backend holds it, with where it came from."""

    policy: RiskPolicy
    seed: bool = False
    """True when a store put it into an empty backend from its defaults or its snapshot
    file, and no write confirmed it since. A store that holds a confirmed policy replaces a
    seed, whatever its version: the defaults or an old snapshot never undo a switch."""


def is_seed(change: PolicyChange | None) -> bool:
    """Whether a save with this audit entry stores a seed: its action is ``initial``."""
    return change is not None and change.action == "initial"


class _Document(RiskPolicy):
    """The stored document: the policy, plus ``seed`` when it is one."""

    seed: bool = False


def encode_policy(policy: RiskPolicy, *, seed: bool = False) -> bytes:
    """Return the stored form of ``policy`` (compact JSON, UTF-8), marked when a seed."""
    if not seed:
        return policy.model_dump_json().encode()
    fields = {name: getattr(policy, name) for name in RiskPolicy.model_fields}
    return _Document.model_construct(**fields, seed=True).model_dump_json().encode()


def decode_policy(raw: bytes | str, *, where: str) -> RiskPolicy:
    """Read a stored policy, checked like a write, strictly: every field present, no coercion.

    Raises:
        PolicyDataError: naming ``where`` and what is wrong.
    """
    return decode_stored(raw, where=where).policy


def decode_stored(raw: bytes | str, *, where: str) -> StoredPolicy:
    """Read a stored policy and whether it is a seed; checked as :func:`decode_policy` says.

    Raises:
        PolicyDataError: naming ``where`` and what is wrong.
    """
    try:
        document = _Document.model_validate_json(raw, strict=True)
    except ValidationError as error:
        raise PolicyDataError(
            where, _summary(error), stored_version=_stored_version(raw)
        ) from error
    missing = sorted(set(RiskPolicy.model_fields) - document.model_fields_set)
    if missing:  # a hand-written {"active_mode": ...} must not pass for a whole policy
        raise PolicyDataError(
            where, f"missing field(s) {', '.join(missing)}", stored_version=_stored_version(raw)
        )
    policy = RiskPolicy.model_construct(  # validated above, as a _Document
        _fields_set=set(RiskPolicy.model_fields),
        **{name: getattr(document, name) for name in RiskPolicy.model_fields},
    )
    try:
        return StoredPolicy(check_policy(policy), document.seed)
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
