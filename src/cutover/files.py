"""The one way the tool writes a private file: atomically, readable by its owner only.

``cutover.toml`` and the msal token cache are both written here: a temporary file in the same
directory (so the rename stays on one file system), mode 0600 before any byte is written,
flushed and fsynced, then renamed over the target with ``os.replace`` (atomic on POSIX and
Windows), and finally the directory fsynced where the platform allows it so the rename itself
survives a crash. A reader sees the old file or the new one, never half of either, and the
temporary file never outlives a failure.

Errors are the ``OSError`` the platform raised; callers say what the file was for.

A read-modify-write of a shared file (``cutover.toml``, a token cache) runs inside
:func:`locked`: an exclusive ``flock`` on ``<file>.lock`` beside it, held across processes, so
twelve concurrent ``cutover env add`` keep twelve profiles. The lock file is never deleted
(deleting a lock file lets two processes hold "the" lock at once); the kernel releases the
lock when its holder exits, however it exits.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import WorkspaceProblem

__all__ = ["LOCK_TIMEOUT", "locked", "write_private_file"]

LOCK_TIMEOUT = 30.0


def write_private_file(path: str | Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically, mode 0600. The parent directory is created
    (mode 0700) if it does not exist; an existing directory's mode is left as it is."""
    path = Path(path)
    directory = path.parent
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        try:
            os.fchmod(fd, 0o600)
            fh = os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            raise
        with fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX); a no-op where directories cannot be opened."""
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


@contextlib.contextmanager
def locked(path: str | Path, *, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold the cross-process lock of ``path`` (``<path>.lock``, mode 0600) for the block.

    Waits up to ``timeout`` seconds for another holder, then raises :class:`WorkspaceProblem`."""
    path = Path(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise WorkspaceProblem(
                        f"{path} is being changed by another cutover process (waited {timeout:.0f} s for {lock_path})",
                        fix="let the other command finish, then run this one again",
                    ) from None
                time.sleep(0.02)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
