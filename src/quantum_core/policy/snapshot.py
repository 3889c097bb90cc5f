"""The last policy this process saw, kept in a JSON file for a start without Redis.

The guide promises a non-blocking JSON snapshot: after each change the store hands the
policy to :class:`PolicySnapshot`, which writes it in a worker thread, keeping only the
newest when changes come faster than the disk. A write goes to a temporary file that then
replaces the snapshot, so a reader (another process on the host, or the next start) never
sees half a file. The file holds exactly what Redis holds under ``{prefix}:current``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import tempfile
from pathlib import Path

from ..logs import get_logger
from ..models import RiskPolicy
from .codec import decode_policy, encode_policy
from .errors import PolicyDataError

__all__ = ["PolicySnapshot", "default_snapshot_path"]

_log = get_logger("quantum_core.policy")


def default_snapshot_path(key_prefix: str) -> Path:
    """Where a store on ``key_prefix`` keeps its snapshot unless told otherwise.

    One file per prefix in the system's temporary directory, shared by the processes of a
    host (they all write the same policy). Pass ``snapshot_path=`` to keep it somewhere that
    survives a reboot or a container restart.
    """
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", key_prefix)
    return Path(tempfile.gettempdir()) / f"quantum_core-{slug}.json"


class PolicySnapshot:
    """A snapshot file: read once at start, rewritten in the background after each change."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._pending: RiskPolicy | None = None
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    async def load(self) -> RiskPolicy | None:
        """Return the policy in the file, None if there is no file.

        Raises:
            PolicyDataError: when the file cannot be read or holds no valid policy.
        """
        where = f"snapshot file {str(self.path)!r}"
        try:
            raw = await asyncio.to_thread(self.path.read_bytes)
        except FileNotFoundError:
            return None
        except OSError as error:
            raise PolicyDataError(where, f"cannot be read: {error}") from error
        return decode_policy(raw, where=where)

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

    async def _flush(self) -> None:
        while self._pending is not None:
            policy, self._pending = self._pending, None
            try:
                await asyncio.to_thread(_replace_file, self.path, encode_policy(policy))
            except OSError as error:
                if not self._failing:
                    self._failing = True
                    _log.error("policy_snapshot_not_written", path=str(self.path), error=str(error))
                continue
            if self._failing:
                self._failing = False
                _log.info("policy_snapshot_written_again", path=str(self.path))


def _replace_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
