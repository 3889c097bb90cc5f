"""The last confirmed policy this process saw, kept in a JSON file for a start without Redis.

The guide promises a non-blocking JSON snapshot: after each change the store hands the
policy to :class:`PolicySnapshot`, which writes it in a worker thread, keeping only the
newest when changes come faster than the disk. A write goes to a temporary file that then
replaces the snapshot, so a reader never sees half a file.

A snapshot belongs to one deployment and one user. The file records the deployment its
policy came from (the backend's :attr:`~quantum_core.policy.PolicyBackend.deployment`: for
Redis the host, port, db and key prefix, never a password), and a store adopts it only when
its own backend names the same one: a store of another deployment, on the same host and
prefix, never starts on this one's mode. It is read only when nobody else could have
written it (see ``_private_files.py``); a snapshot that does not match is ignored with a
warning, and the store starts on its defaults. The file::

    {"deployment": {"host": "10.0.0.5", "port": 6379, "db": 0, "key_prefix": "..."},
     "policy": {...the document stored in Redis...}}
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

from ..logs import get_logger
from ..models import RiskPolicy
from ._private_files import UntrustedFileError, read_private, state_directory, write_private
from .codec import decode_policy, encode_policy
from .errors import PolicyDataError

__all__ = ["PolicySnapshot", "default_snapshot_path"]

_log = get_logger("quantum_core.policy")


def default_snapshot_path(key_prefix: str, address: str | None = None) -> Path:
    """Where a store on ``key_prefix`` (and the Redis at ``address``) keeps its snapshot.

    One file per deployment in this user's state directory (``$XDG_STATE_HOME``, else
    ``~/.local/state``, under ``quantum_core/``; ``~/Library/Application Support`` on macOS),
    created 0600 in a 0700 directory; never a shared temporary directory. ``address`` is the
    backend's ``host:port/db`` (:attr:`RedisPolicyBackend.address`), so that two
    deployments on one host keep a file each. Pass ``snapshot_path=`` for another place.
    """
    name = _slug(key_prefix) if address is None else f"{_slug(key_prefix)}@{_slug(address)}"
    return state_directory() / f"policy-{name}.json"


class PolicySnapshot:
    """A snapshot file: read once at start, rewritten in the background after each change.

    Args:
        path: The file.
        deployment: What the policy belongs to; a file that records another is ignored.
    """

    def __init__(self, path: str | os.PathLike[str], deployment: Mapping[str, object]) -> None:
        self.path = Path(path)
        self.deployment: dict[str, object] = json.loads(json.dumps(dict(deployment)))
        self._pending: RiskPolicy | None = None
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    async def load(self) -> RiskPolicy | None:
        """Return the policy in the file; None if there is none, or none to trust.

        Raises:
            PolicyDataError: when the file cannot be read or holds no valid policy.
        """
        where = f"snapshot file {str(self.path)!r}"
        try:
            raw = await asyncio.to_thread(read_private, self.path)
        except UntrustedFileError as error:
            self._ignore(f"not trusted: {error}")
            return None
        except OSError as error:
            raise PolicyDataError(where, f"cannot be read: {error}") from error
        if raw is None:
            return None
        try:
            document = json.loads(raw)
        except ValueError as error:  # also UnicodeDecodeError
            raise PolicyDataError(where, f"not JSON: {error}") from error
        if not isinstance(document, dict) or "deployment" not in document:
            self._ignore(
                "it records no deployment (a bare policy, as earlier versions wrote): "
                "nothing says which Redis and prefix it belongs to"
            )
            return None
        if document["deployment"] != self.deployment:
            self._ignore(
                f"it belongs to {document['deployment']!r}, this store's backend is "
                f"{self.deployment!r}"
            )
            return None
        return decode_policy(json.dumps(document.get("policy")), where=where)

    def save_soon(self, policy: RiskPolicy) -> None:
        """Write ``policy`` in the background; returns at once."""
        self._pending = policy
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._flush(), name="quantum_core policy snapshot"
            )

    async def close(self) -> None:
        """Wait for the write in progress, so the file holds the last policy on exit."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    def _ignore(self, reason: str) -> None:
        _log.warning(
            "policy_snapshot_ignored",
            path=str(self.path),
            reason=reason,
            then="the store starts on its defaults until the backend answers",
        )

    def _encode(self, policy: RiskPolicy) -> bytes:
        deployment = json.dumps(self.deployment, separators=(",", ":")).encode()
        return b'{"deployment":' + deployment + b',"policy":' + encode_policy(policy) + b"}"

    async def _flush(self) -> None:
        while self._pending is not None:
            policy, self._pending = self._pending, None
            try:
                await asyncio.to_thread(write_private, self.path, self._encode(policy))
            except (OSError, UntrustedFileError) as error:
                if not self._failing:
                    self._failing = True
                    _log.error("policy_snapshot_not_written", path=str(self.path), error=str(error))
                continue
            if self._failing:
                self._failing = False
                _log.info("policy_snapshot_written_again", path=str(self.path))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)
