"""The errors the PolicyStore raises, so callers catch ours and never a Redis or pydantic one."""

from __future__ import annotations

from typing import Any, NamedTuple

from ..errors import QuantumCoreError

__all__ = [
    "PolicyConflictError",
    "PolicyDataError",
    "PolicyError",
    "PolicyUnavailableError",
    "PolicyValidationError",
    "PolicyViolation",
]


class PolicyError(QuantumCoreError):
    """Base of every error of the risk policy store."""


class PolicyUnavailableError(PolicyError):
    """The policy backend (Redis) cannot be reached, so a write was not made.

    Reads never raise this: ``get_policy()`` keeps serving the last good policy.
    """


class PolicyDataError(PolicyError):
    """A stored policy (in Redis or a snapshot file) cannot be read as a valid policy.

    Attributes:
        where: The Redis key or file that holds the bad value.
        reason: What is wrong with it.
        stored_version: The ``version`` field of the bad value, when it has a usable one; a
            write that replaces the value goes above it, so versions never repeat.
    """

    def __init__(
        self,
        where: str,
        reason: str,
        *,
        stored_version: int | None = None,
        then: str | None = None,
    ) -> None:
        self.where = where
        self.reason = reason
        self.stored_version = stored_version
        super().__init__(
            f"the policy stored at {where} is unreadable: {reason}. "
            + (
                then
                or "The last good policy stays in force; the next switch_mode()/update_config() "
                "of a store that loaded it replaces the bad value"
            )
        )


class PolicyConflictError(PolicyError, RuntimeError):
    """A write lost the compare-and-set race against other writers too many times in a row."""


class PolicyViolation(NamedTuple):
    """One broken rule: which field (``"NORMAL.max_leverage"``), which rule, which value."""

    field: str
    rule: str
    value: Any


class PolicyValidationError(PolicyError, ValueError):
    """Limits outside their domain, or modes out of order; nothing was written.

    Attributes:
        violations: Every broken rule, each naming its field.
    """

    def __init__(self, violations: list[PolicyViolation]) -> None:
        self.violations = tuple(violations)
        lines = "; ".join(f"{v.field}={v.value!r}: {v.rule}" for v in self.violations)
        super().__init__(f"invalid risk policy, nothing was written: {lines}")
