"""The one way the tool writes a private file: atomically, readable by its owner only.

``cutover.toml`` and the msal token cache are both written here: a temporary file in the same
directory (so the rename stays on one file system), mode 0600 before any byte is written,
flushed and fsynced, then renamed over the target with ``os.replace`` (atomic on POSIX and
Windows), and finally the directory fsynced where the platform allows it so the rename itself
survives a crash. A reader sees the old file or the new one, never half of either, and the
temporary file never outlives a failure.

Errors are the ``OSError`` the platform raised; callers say what the file was for.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["write_private_file"]


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
