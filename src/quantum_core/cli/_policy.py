"""``quantum-core policy``: show the risk policy, switch its mode or reset it, read its history.

The policy lives in Redis, at ``--policy-url`` (by default the bus's Redis when ``--url``
names one, else ``$REDIS_URL``): the bus itself may be on any broker, where a switch is
announced. Reads go straight to :class:`~quantum_core.RedisPolicyBackend` and never write: showing a
policy must not seed one. A switch or a reset goes through :class:`~quantum_core.PolicyStore`,
as a service's would: compare-and-set, an audit entry naming ``--by``, every process told at
once, and the change announced on the bus under ``--prefix``. Both are refused where no
policy is stored yet, because that is almost always the wrong ``--policy-prefix``: a write
there would create a policy no service reads. A switch is refused over an unreadable value
too: the CLI holds no valid policy to build on, and building on the library's defaults would
reset every limit a service had set; a reset writes those defaults on purpose.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..models import RiskConfig, RiskMode, RiskPolicy
from ..policy import PolicyChange, PolicyDataError, PolicyStore, RedisPolicyBackend
from ..policy._changes import check_who_and_why
from ._arguments import Commands, count_option
from ._common import CliError, Context, Output, one_line

__all__ = ["register"]

_HISTORY_MAX = 10_000


def register(
    commands: Commands,
    common: argparse.ArgumentParser,
) -> None:
    """Add ``policy show|switch|reset|history``."""
    policy = commands.add_parser(
        "policy",
        parents=[common],
        help="show the risk policy, switch its mode or reset it, read its history",
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
    reset = actions.add_parser(
        "reset",
        parents=[common],
        help="write the default policy (NORMAL, default limits) as a new version",
        description="Write the library's default policy (NORMAL and the default limits of "
        "every mode) as a new version, which every service follows.",
    )
    reset.add_argument(
        "--by", required=True, type=_who, help="who resets (kept in the audit history)"
    )
    reset.add_argument("--reason", type=_reason, help="why (kept in the audit history)")
    reset.set_defaults(handler=reset_policy)
    history = actions.add_parser(
        "history", parents=[common], help="list the newest policy changes: who, when, what, why"
    )
    history.add_argument(
        "--limit",
        type=count_option("--limit", most=_HISTORY_MAX),
        default=20,
        help=f"at most N, 1 to {_HISTORY_MAX} (default 20)",
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
    """``--by``, checked by the policy store's own rule (so no write can refuse it later)."""
    try:
        check_who_and_why(value.strip(), None)
    except ValueError:
        raise argparse.ArgumentTypeError("must name who switches: 1 to 200 characters") from None
    return value.strip()


def _reason(value: str) -> str:
    """``--reason``, checked by the policy store's own rule."""
    try:
        check_who_and_why("cli", value)
    except ValueError:
        raise argparse.ArgumentTypeError("must be at most 1000 characters") from None
    return value


async def _backend(context: Context) -> RedisPolicyBackend:
    return RedisPolicyBackend(
        await context.policy_redis(),
        key_prefix=context.target.policy_prefix,
        timeout=context.target.timeout,
    )


def _unreadable(error: PolicyDataError) -> CliError:
    return CliError(
        f"the policy at {error.where} is unreadable: {error.reason}; nothing was written: the "
        "CLI holds no valid policy to build on, and switching from the library's defaults "
        "would reset every limit. Services that loaded the policy before keep serving it; "
        "`quantum-core policy reset --by NAME` writes the defaults on purpose"
    )


def _missing(context: Context, backend: RedisPolicyBackend) -> CliError:
    return CliError(
        f"no risk policy at Redis key {backend.key!r} on {context.policy_target.address}; is "
        "--policy-prefix right? (a PolicyStore stores the default on its first start)"
    )


async def show_policy(args: argparse.Namespace, context: Context, output: Output) -> int:
    """Print the active mode, the version and every mode's limits."""
    backend = await _backend(context)
    try:
        stored = await backend.load_stored()
    finally:
        await backend.close()
    if stored is None:
        raise _missing(context, backend)
    if output.json_mode:
        output.json({**stored.policy.model_dump(mode="json"), "seed": stored.seed})
        return 0
    _print_policy(stored.policy, stored.seed, output)
    return 0


def _print_policy(policy: RiskPolicy, seed: bool, output: Output) -> None:
    origin = "a seed (a store's defaults or snapshot; no write since)" if seed else "confirmed"
    output.table(
        ["FIELD", "VALUE"],
        [
            ["active mode", policy.active_mode.value],
            ["version", policy.version],
            ["updated by", policy.updated_by],
            ["updated at", policy.updated_at.isoformat()],
            ["origin", origin],
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
            raise _unreadable(error) from error
        if stored is None:
            raise _missing(context, backend)
        await store.initialize()
        previous = store.policy
        policy = await store.switch_mode(args.mode, updated_by=args.by, reason=args.reason)
    finally:
        await store.close()
    _print_outcome(previous, policy, "switched", output)
    return 0


async def reset_policy(args: argparse.Namespace, context: Context, output: Output) -> int:
    """Write the library's default policy as a new version, through a PolicyStore."""
    backend = await _backend(context)
    store = PolicyStore(backend, event_bus=await context.bus())
    try:  # closing the store closes the backend
        try:
            if await backend.load() is None:
                raise _missing(context, backend)
        except PolicyDataError as error:  # a reset replaces it, above its version
            output.note(f"warning: {error.where} is unreadable ({error.reason}); replacing it")
        await store.initialize()
        previous = store.policy
        policy = await store.reset(updated_by=args.by, reason=args.reason)
    finally:
        await store.close()
    _print_outcome(previous, policy, "reset", output)
    return 0


def _print_outcome(previous: RiskPolicy, policy: RiskPolicy, what: str, output: Output) -> None:
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
    elif changed and what == "switched":
        output.line(
            f"risk mode switched {previous.active_mode.value} -> {policy.active_mode.value} "
            f"(version {policy.version}, by {policy.updated_by})"
        )
    elif changed:
        output.line(
            f"risk policy reset to the defaults: {policy.active_mode.value} and the default "
            f"limits (version {policy.version}, by {policy.updated_by})"
        )
    elif what == "switched":
        output.line(
            f"risk mode is already {policy.active_mode.value} (version {policy.version}); "
            "nothing changed"
        )
    else:
        output.line(
            f"risk policy already is the default (version {policy.version}); nothing changed"
        )


async def show_history(args: argparse.Namespace, context: Context, output: Output) -> int:
    """Print the newest audit entries, newest first."""
    backend = await _backend(context)
    try:
        changes = await backend.history(args.limit)
        exists = bool(changes) or bool(await (await context.policy_redis()).exists(backend.key))
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
