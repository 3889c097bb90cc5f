"""The rules a policy obeys beyond each field's own range, checked before anything is written.

``RiskConfig`` already keeps each limit in its domain (confidence in [0, 1], leverage >= 1,
risk per trade in (0, 1]...). Two rules need the whole policy: every number is finite (JSON
cannot carry infinity, so it would not survive the trip through Redis), and the modes are
ordered: DEFENSIVE is never looser than NORMAL, nor NORMAL looser than AGGRESSIVE. Equal
limits are allowed. A stored policy that breaks a rule is treated as unreadable.
"""

from __future__ import annotations

import math
from typing import Any, Final

from pydantic import ValidationError

from ..models import RiskConfig, RiskMode, RiskPolicy
from .errors import PolicyValidationError, PolicyViolation

__all__ = ["check_policy", "limits_violations", "merge_limits"]

# Pydantic's type errors, said with the type a limit takes.
_EXPECTED_TYPES: Final = {
    "float_type": "a number (int or float)",
    "int_type": "an integer (int)",
}
# A higher floor is stricter; every other limit is a ceiling, where lower is stricter.
_FLOORS: Final = frozenset({"global_min_confidence"})
_STRICTER_THAN: Final = (
    (RiskMode.DEFENSIVE, RiskMode.NORMAL),
    (RiskMode.NORMAL, RiskMode.AGGRESSIVE),
)


def merge_limits(mode: RiskMode, config: RiskConfig, limits: dict[str, Any]) -> RiskConfig:
    """Return ``config`` with ``limits`` applied, each limit checked against its domain.

    Strictly, as a stored policy is read: a number is an ``int`` or a ``float``, never a
    bool or a string, and an integer limit takes an ``int`` only. A coerced ``True`` (1.0)
    or ``"5"`` would store what the caller did not mean.

    Raises:
        PolicyValidationError: naming ``<mode>.<limit>`` and the type or range it must have.
    """
    try:
        return RiskConfig.model_validate({**config.model_dump(), **limits}, strict=True)
    except ValidationError as error:
        raise PolicyValidationError(limits_violations(mode, error)) from error


def limits_violations(mode: RiskMode, error: ValidationError) -> list[PolicyViolation]:
    """Turn pydantic's errors about one mode's limits into violations naming the field."""
    violations = []
    for item in error.errors(include_url=False):
        value = item.get("input")
        expected = _EXPECTED_TYPES.get(item["type"])
        if expected is not None:
            rule = f"must be {expected}, got {type(value).__name__}"
        else:
            rule = item["msg"][:1].lower() + item["msg"][1:]
        field = f"{mode.value}.{'.'.join(str(part) for part in item['loc'])}"
        violations.append(PolicyViolation(field, rule, value))
    return violations


def check_policy(policy: RiskPolicy, *, changed: RiskMode | None = None) -> RiskPolicy:
    """Return ``policy`` if it obeys the whole-policy rules.

    Args:
        policy: The policy to check.
        changed: The mode whose limits just changed, if any: a violation between it and a
            neighbour is reported on its field, the one the caller can fix.

    Raises:
        PolicyValidationError: listing every broken rule.
    """
    violations = _not_finite(policy) + _out_of_order(policy, changed)
    if violations:
        raise PolicyValidationError(violations)
    return policy


def _not_finite(policy: RiskPolicy) -> list[PolicyViolation]:
    return [
        PolicyViolation(f"{mode.value}.{name}", "must be a finite number", value)
        for mode, config in policy.configs.items()
        for name, value in config.model_dump().items()
        if isinstance(value, float) and not math.isfinite(value)
    ]


def _out_of_order(policy: RiskPolicy, changed: RiskMode | None) -> list[PolicyViolation]:
    violations = []
    for strict_mode, loose_mode in _STRICTER_THAN:
        strict = policy.configs[strict_mode].model_dump()
        loose = policy.configs[loose_mode].model_dump()
        for name, strict_value in strict.items():
            loose_value = loose[name]
            if not (math.isfinite(strict_value) and math.isfinite(loose_value)):
                continue  # reported as not finite
            floor = name in _FLOORS
            if (strict_value < loose_value) if floor else (strict_value > loose_value):
                violations.append(
                    _violation(name, floor, strict_mode, strict, loose_mode, loose, changed)
                )
    return violations


def _violation(
    name: str,
    floor: bool,
    strict_mode: RiskMode,
    strict: dict[str, Any],
    loose_mode: RiskMode,
    loose: dict[str, Any],
    changed: RiskMode | None,
) -> PolicyViolation:
    if changed is loose_mode:  # the looser mode was made too strict
        bound = "<=" if floor else ">="
        return PolicyViolation(
            f"{loose_mode.value}.{name}",
            f"must be {bound} {strict_mode.value}.{name} ({strict[name]!r}): "
            f"{loose_mode.value} may not be stricter than {strict_mode.value}",
            loose[name],
        )
    bound = ">=" if floor else "<="
    return PolicyViolation(
        f"{strict_mode.value}.{name}",
        f"must be {bound} {loose_mode.value}.{name} ({loose[name]!r}): "
        f"{strict_mode.value} may not be looser than {loose_mode.value}",
        strict[name],
    )
