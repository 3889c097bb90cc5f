"""Files that only their owner can have written: where a policy snapshot may be kept.

A snapshot chooses the risk mode of a store that starts without its backend, so a file that
another local user could have planted or changed must never be read, and none is written
where another user could replace it. A file is trusted when it is a regular file owned by
this user with no permission for anyone else (0600 or stricter), in a directory owned by
this user with no permission for anyone else (0700 or stricter). Missing directories are
created 0700. The default place is the user's state directory, never a shared temporary
directory. Permissions are POSIX ones: elsewhere (Windows) nothing is checked.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile
from pathlib import Path

__all__ = ["UntrustedFileError", "read_private", "state_directory", "write_private"]

_OTHERS = 0o077  # every permission bit of the group and of other users


class UntrustedFileError(Exception):
    """A file (or its directory) that another user could have written; the reason says why."""


def state_directory() -> Path:
    """This user's directory for quantum_core's state, which outlives a reboot.

    ``$XDG_STATE_HOME/quantum_core`` when the variable holds an absolute path; else
    ``~/.local/state/quantum_core`` on Linux and other Unixes, ``~/Library/Application
    Support/quantum_core`` on macOS, ``%LOCALAPPDATA%/quantum_core`` on Windows.
    """
    xdg = os.environ.get("XDG_STATE_HOME", "")
    if os.path.isabs(xdg):
        base = Path(xdg)
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    elif sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    else:
        base = Path.home() / ".local" / "state"
    return base / "quantum_core"


def read_private(path: Path) -> bytes | None:
    """Return the file's bytes, or None when there is no file.

    Raises:
        UntrustedFileError: when the file or its directory is not private to this user.
        OSError: when it cannot be read.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        descriptor = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as error:
        if path.is_symlink():
            raise UntrustedFileError(f"{path} is a symbolic link, not a file") from error
        raise
    with os.fdopen(descriptor, "rb") as file:
        _check_private(path.parent, os.stat(path.parent), "directory")
        _check_private(path, os.fstat(file.fileno()), "file")
        return file.read()


def write_private(path: Path, data: bytes) -> None:
    """Replace the file with ``data`` at once (no reader sees half of it), mode 0600.

    Raises:
        UntrustedFileError: when the directory is not private to this user.
        OSError: when it cannot be written.
    """
    directory = path.parent
    _make_private_directories(directory)
    _check_private(directory, os.stat(directory), "directory")
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:  # mkstemp made it 0600
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _make_private_directories(directory: Path) -> None:
    missing = []
    while not directory.exists() and directory != directory.parent:
        missing.append(directory)
        directory = directory.parent
    for created in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(created, 0o700)


def _check_private(path: Path, status: os.stat_result, kind: str) -> None:
    if not hasattr(os, "geteuid"):  # no POSIX owners and modes to check
        return
    expected = stat.S_ISDIR if kind == "directory" else stat.S_ISREG
    if not expected(status.st_mode):
        raise UntrustedFileError(f"{path} is not a {kind}")
    user = os.geteuid()
    if status.st_uid != user:
        raise UntrustedFileError(
            f"the {kind} {path} belongs to user id {status.st_uid}, not to this user ({user})"
        )
    mode = stat.S_IMODE(status.st_mode)
    if mode & _OTHERS:
        private = "0700" if kind == "directory" else "0600"
        raise UntrustedFileError(
            f"the {kind} {path} has mode {mode:04o}, open to other users; it must be private "
            f"to its owner (chmod {private[1:]} or stricter)"
        )
