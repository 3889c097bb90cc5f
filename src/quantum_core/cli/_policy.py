"""``quantum-core policy``: show the risk policy, switch its mode, read its audit history.

Reads go straight to :class:`~quantum_core.RedisPolicyBackend` and never write: showing a
policy must not seed one. A switch goes through :class:`~quantum_core.PolicyStore`, as a
service's would: compare-and-set, an audit entry naming ``--by``, every process told at once,
and ``policy.mode.changed`` announced on the bus under ``--prefix``. It is refused where no
policy is stored yet, because that is almost always the wrong ``--policy-prefix``: a switch
there would create a policy no service reads.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..models import RiskConfig, RiskMode, RiskPolicy
from ..policy import PolicyChange, PolicyDataError, PolicyStore, RedisPolicyBackend
from ._common import CliError, Context, Output, one_line

__all__ = ["register"]

_HISTORY_MAX = 10_000


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    """Add ``policy show|switch|history``."""
    policy = commands.add_parser(
        "policy",
        parents=[common],
        help="show the risk policy, switch its mode, read its history",
        description="The risk policy shared by every service under --policy-prefix.",
    )
    actions = policy.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = actions.add_parser(
        "show", parents=[common], help="show the active mode and every mode's limits"
    )
    show.set_defaults(handler=show_policy)
    modes = ", ".join(mode.value for mode in RiskMode)
    switch = actions.add_parser(
        "switch",
        parents=[common],
        help="make MODE the active risk mode in every service",
        description=f"Make MODE ({modes}) the active risk mode in every service.",
    )
    switch.add_argument("mode", metavar="MODE", type=_mode, help=modes)
    switch.add_argument(
        "--by", required=True, type=_who, help="who switches (kept in the audit history)"
    )
    switch.add_argument("--reason", type=_reason, help="why (kept in the audit history)")
    switch.set_defaults(handler=switch_mode)
    history = actions.add_parser(
        "history", parents=[common], help="list the newest policy changes: who, when, what, why"
    )
    history.add_argument(
        "--limit", type=_limit, default=20, help=f"at most N, 1 to {_HISTORY_MAX} (default 20)"
    )
    history.set_defaults(handler=show_history)


def _mode(value: str) -> RiskMode:
    try:
        return RiskMode(value.strip().upper())
    except ValueError:
        valid = ", ".join(mode.value for mode in RiskMode)
        raise argparse.ArgumentTypeError(
            f"unknown risk mode {value!r}; expected one of {valid}"
        ) from None


def _who(value: str) -> str:
    if value.strip() and len(value) <= 200:
        return value.strip()
    raise argparse.ArgumentTypeError("must name who switches: 1 to 200 characters")


def _reason(value: str) -> str:
    if len(value) <= 1000:
        return value
    raise argparse.ArgumentTypeError("must be at most 1000 characters")


def _limit(value: str) -> int:
    if value.isdigit() and 1 <= int(value) <= _HISTORY_MAX:
        return int(value)
    raise argparse.ArgumentTypeError(f"expected a whole number from 1 to {_HISTORY_MAX}")


async def _backend(context: Context) -> RedisPolicyBackend:
    return RedisPolicyBackend(
        await context.redis(),
        key_prefix=context.target.policy_prefix,
        timeout=context.target.timeout,
    )


def _missing(context: Context, backend: RedisPolicyBackend) -> CliError:
    return CliError(
        f"no risk policy at Redis key {backend.key!r} on {context.target.address}; is "
        "--policy-prefix right? (a PolicyStore stores the default on its first start)"
    )


async def show_policy(args: argparse.Namespace, context: Context, output: Output) -> int:
    """Print the active mode, the version and every mode's limits."""
    backend = await _backend(context)
    try:
        policy = await backend.load()
    finally:
        await backend.close()
    if policy is None:
        raise _missing(context, backend)
    if output.json_mode:
        output.json(policy.model_dump(mode="json"))
        return 0
    _print_policy(policy, output)
    return 0


def _print_policy(policy: RiskPolicy, output: Output) -> None:
    output.table(
        ["FIELD", "VALUE"],
        [
            ["active mode", policy.active_mode.value],
            ["version", policy.version],
            ["updated by", policy.updated_by],
            ["updated at", policy.updated_at.isoformat()],
        ],
    )
    output.line()
    headers = [f"[{m.value}]" if m is policy.active_mode else m.value for m in RiskMode]
    output.table(
        ["LIMIT", *headers],
        [
            [name, *(getattr(policy.configs[mode], name) for mode in RiskMode)]
            for name in RiskConfig.model_fields
        ],
    )


async def switch_mode(args: argparse.Namespace, context: Context, output: Output) -> int:
    """Switch the active mode through a PolicyStore, announcing it on the bus."""
    backend = await _backend(context)
    store = PolicyStore(backend, event_bus=await context.bus())
    try:  # closing the store closes the backend
        try:
            stored = await backend.load()
        except PolicyDataError as error:
            output.note(f"warning: {error}")  # the switch replaces the unreadable value
        else:
            if stored is None:
                raise _missing(context, backend)
        await store.initialize()
        previous = store.policy
        policy = await store.switch_mode(args.mode, updated_by=args.by, reason=args.reason)
    finally:
        await store.close()
    changed = policy is not previous
    if output.json_mode:
        output.json(
            {
                "previous_mode": previous.active_mode.value,
                "active_mode": policy.active_mode.value,
                "version": policy.version,
                "changed": changed,
            }
        )
    elif changed:
        output.line(
            f"risk mode switched {previous.active_mode.value} -> {policy.active_mode.value} "
            f"(version {policy.version}, by {policy.updated_by})"
        )
    else:
        output.line(
            f"risk mode is already {policy.active_mode.value} (version {policy.version}); "
            "nothing changed"
        )
    return 0


async def show_history(args: argparse.Namespace, context: Context, output: Output) -> int:
    """Print the newest audit entries, newest first."""
    backend = await _backend(context)
    try:
        changes = await backend.history(args.limit)
        exists = bool(changes) or bool(await (await context.redis()).exists(backend.key))
    finally:
        await backend.close()
    if not exists:
        raise _missing(context, backend)
    if output.json_mode:
        output.json([change.model_dump(mode="json") for change in changes])
        return 0
    if not changes:
        output.line(f"no policy changes recorded at {backend.history_key!r}")
        return 0
    output.table(
        ["VERSION", "UPDATED AT", "ACTION", "BY", "CHANGE", "REASON"],
        [
            [
                change.version,
                change.updated_at.isoformat(timespec="seconds"),
                change.action,
                change.updated_by,
                one_line(_describe(change), 70),
                one_line(change.reason or "", 50),
            ]
            for change in changes
        ],
    )
    return 0


def _describe(change: PolicyChange) -> str:
    keys = list(dict.fromkeys([*change.old, *change.new]))
    parts = [
        f"{key}: {_value(change.old.get(key))} -> {_value(change.new.get(key))}" for key in keys
    ]
    text = ", ".join(parts)
    return f"{change.mode.value} {text}" if change.mode is not None else text


def _value(value: Any) -> str:
    return "-" if value is None else str(value)
