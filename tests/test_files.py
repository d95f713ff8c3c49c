"""The one atomic write of a private file (`cutover.files`), which both cutover.toml and the
token cache use: mode 0600 whatever the umask, the old content or the new one and never half,
and no temporary file left behind, not even after a failure."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from cutover.files import write_private_file

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077])
def test_a_new_file_is_0600_in_a_new_0700_directory_whatever_the_umask(tmp_path, umask):
    target = tmp_path / "a" / "b" / "private.json"
    old = os.umask(umask)
    try:
        write_private_file(target, b'{"k": 1}')
    finally:
        os.umask(old)
    assert target.read_bytes() == b'{"k": 1}'
    assert mode(target) == 0o600
    assert mode(target.parent) == 0o700
    assert [p.name for p in target.parent.iterdir()] == ["private.json"]


def test_an_existing_wider_file_is_replaced_by_a_private_one(tmp_path):
    target = tmp_path / "cutover.toml"
    target.write_text("old", encoding="utf-8")
    os.chmod(target, 0o644)
    write_private_file(target, "new ✓".encode())
    assert target.read_text("utf-8") == "new ✓"
    assert mode(target) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cutover.toml"]


def test_an_existing_directory_keeps_its_mode(tmp_path):
    """The write creates a missing directory 0700 but does not change one that exists."""
    os.chmod(tmp_path, 0o755)
    write_private_file(tmp_path / "f", b"x")
    assert mode(tmp_path) == 0o755


def test_a_failed_write_leaves_the_old_state_and_no_temporary_file(tmp_path):
    """If the rename fails (here: the target is a directory) the error is the OSError, the
    target is untouched and the temporary file is gone."""
    target = tmp_path / "taken"
    target.mkdir()
    (target / "inside").write_text("kept", encoding="utf-8")
    with pytest.raises(OSError, match="taken"):
        write_private_file(target, b"data")
    assert target.is_dir() and (target / "inside").read_text("utf-8") == "kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_a_parent_that_is_a_file_is_an_os_error_and_nothing_is_written(tmp_path):
    blocker = tmp_path / "ws"
    blocker.write_text("a file, not a folder", encoding="utf-8")
    with pytest.raises(OSError, match="ws"):
        write_private_file(blocker / "cutover.toml", b"data")
    assert blocker.read_text("utf-8") == "a file, not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ws"]
