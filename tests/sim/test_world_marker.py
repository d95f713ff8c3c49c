"""A world is a world: `python -m cutover.sim serve` opens only a complete simulator world
(its `sim_world` marker says "cutover-simulator" and that the seed finished). Anything else is
refused with one line and exit 2, and nothing is written into or beside it — no -wal, no -shm,
no lock file: the check reads the file read-only before anything opens it for writing."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from cutover.errors import InputError
from cutover.sim import world

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX")


def _serve(db: Path | str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cutover.sim", "serve", "--db", str(db)], capture_output=True, text=True, timeout=60
    )


def _edit(db: Path, *sql: str) -> Path:
    conn = sqlite3.connect(db)
    for statement in sql:
        conn.execute(statement)
    conn.commit()
    conn.close()
    return db


def _empty(d: Path, world_db: Path) -> Path:
    (d / "empty.sqlite").touch()
    return d / "empty.sqlite"


def _text(d: Path, world_db: Path) -> Path:
    (d / "notes.sqlite").write_text("go-live checklist: 1. extract 2. migrate\n")
    return d / "notes.sqlite"


def _foreign(d: Path, world_db: Path) -> Path:
    return _edit(
        d / "ledger.sqlite", "CREATE TABLE gl (account TEXT, amount TEXT)", "INSERT INTO gl VALUES ('1100', '1')"
    )


def _foreign_wal(d: Path, world_db: Path) -> Path:
    return _edit(d / "wal.sqlite", "PRAGMA journal_mode=WAL", "CREATE TABLE t (x)", "INSERT INTO t VALUES (1)")


def _half_seeded(d: Path, world_db: Path) -> Path:
    return _edit(world_db, f"DELETE FROM {world.MARKER_TABLE} WHERE key = 'seed_finished_at'")


def _pre_marker(d: Path, world_db: Path) -> Path:
    return _edit(world_db, f"DROP TABLE {world.MARKER_TABLE}")


def _unseeded(d: Path, world_db: Path) -> Path:
    shutil.copyfile(world_db, d / "bare.sqlite")
    return _edit(d / "bare.sqlite", f"DROP TABLE {world.MARKER_TABLE}", "DELETE FROM dv_salesorders")


def _other_version(d: Path, world_db: Path) -> Path:
    return _edit(world_db, f"UPDATE {world.MARKER_TABLE} SET value = '99' WHERE key = 'schema_version'")


def _wrong_format(d: Path, world_db: Path) -> Path:
    return _edit(world_db, f"UPDATE {world.MARKER_TABLE} SET value = 'someone-else' WHERE key = 'format'")


REFUSED = {
    "empty file": (_empty, "the file is empty, not a simulator world"),
    "text file": (_text, "not a SQLite database"),
    "foreign SQLite": (_foreign, "a SQLite database that is not a simulator world"),
    "foreign SQLite in WAL mode": (_foreign_wal, "a SQLite database that is not a simulator world"),
    "half-seeded world": (_half_seeded, "its seed never finished"),
    "world from before the marker": (_pre_marker, "seeded by an older cutover (it has no world marker)"),
    "simulator tables, never seeded": (_unseeded, "never seeded"),
    "another world format version": (_other_version, "world format version '99'"),
    "another program's marker": (_wrong_format, "a SQLite database that is not a simulator world"),
}


@pytest.mark.parametrize("make, reason", REFUSED.values(), ids=REFUSED.keys())
def test_serve_opens_only_a_complete_world_and_writes_nothing_into_a_refused_file(world_db: Path, make, reason):
    folder = world_db.parent
    db = make(folder, world_db)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    r = _serve(db)
    assert r.returncode == 2 and r.stdout == "", r.stderr
    (line,) = r.stderr.splitlines()
    assert line.startswith(f"error: cannot open the simulator database {db}: ") and reason in line, line
    assert "Fix: " in line
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # no -wal, -shm, lock; same bytes


def test_serve_refuses_what_is_not_a_file(tmp_path):
    for target in (tmp_path, Path(os.devnull)):
        r = _serve(target)
        assert r.returncode == 2
        (line,) = r.stderr.splitlines()
        assert line == (
            f"error: cannot open the simulator database {target}: not a regular file (a directory, device or "
            "pipe). Fix: name a file made by cutover sim seed"
        )
    assert list(tmp_path.iterdir()) == []


def test_the_refusal_of_an_old_world_says_how_to_seed_a_new_one(world_db: Path):
    _pre_marker(world_db.parent, world_db)
    with pytest.raises(InputError) as info:
        world.check_world(world_db)
    assert info.value.exit_code == 2
    assert str(info.value).endswith(
        "Fix: seed a new one with: cutover sim seed --db NEW (or replace this one with --force)"
    )
    assert world.is_simulator_database(world_db)  # ... which --force may do


def test_check_world_describes_a_complete_world_without_touching_it(world_db: Path):
    before = world_db.read_bytes()
    info = world.check_world(world_db)
    assert info.path == world_db and info.schema_version == world.WORLD_SCHEMA_VERSION
    assert info.seed_started_at.endswith("Z") and info.seed_finished_at >= info.seed_started_at
    assert world_db.read_bytes() == before
    assert sorted(p.name for p in world_db.parent.iterdir()) == ["world.csv", "world.sqlite"]


def test_only_simulator_databases_may_be_replaced(world_db: Path, tmp_path):
    assert world.is_simulator_database(world_db)
    assert not world.is_simulator_database(_foreign(tmp_path, world_db))
    assert not world.is_simulator_database(_text(tmp_path, world_db))
    assert not world.is_simulator_database(_empty(tmp_path, world_db))
    assert not world.is_simulator_database(tmp_path / "missing.sqlite")
    assert world.is_simulator_database(_half_seeded(tmp_path, world_db))
