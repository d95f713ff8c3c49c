"""`cutover sim seed` never destroys a file it did not make, and an interrupted seed leaves
nothing behind: on go-live night the operator's legacy extract and workspace must survive
mistakes. Through the real command (click's CliRunner on cutover.cli.main, and a real
subprocess for the signals)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from cutover.cli import main
from cutover.errors import InputError
from cutover.sim import world
from cutover.sim.worldfile import seed_database

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX files and signals")

TINY = ["--invoiced", "4", "--uninvoiced", "2", "--ar-transactions", "6", "--gl-lines", "20"]
OPERATOR_CSV = b"legacy_id,legal_entity\nLEG-MS-0000001,USMF\n"


def _snapshot(folder: Path) -> dict[str, object]:
    """Every entry under ``folder``: a file's bytes and mode, a link's target, a folder, a FIFO."""
    out: dict[str, object] = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.is_symlink():
            out[rel] = ("link", os.readlink(path))
        elif path.is_fifo():
            out[rel] = "fifo"
        elif path.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = (path.read_bytes(), path.stat().st_mode)
    return out


def _seed(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["sim", "seed", *args])
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.stderr


def _foreign_sqlite(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, amount TEXT)")
    conn.execute("INSERT INTO invoices(amount) VALUES ('12500.00')")
    conn.commit()
    conn.close()
    return path


# Each case: (prepare the folder -> command-line arguments), the exit code, a fragment of the one line.
def _existing_extract(d: Path):
    (d / "legacy.csv").write_bytes(OPERATOR_CSV)
    return ["--db", str(d / "w.sqlite"), "--extract", str(d / "legacy.csv")]


def _existing_default_extract(d: Path):
    (d / "w-legacy-extract.csv").write_bytes(OPERATOR_CSV)
    return ["--db", str(d / "w.sqlite")]


def _extract_is_db(d: Path):
    return ["--db", str(d / "w.sqlite"), "--extract", str(d / "w.sqlite")]


def _extract_is_db_spelled_otherwise(d: Path):
    (d / "sub").mkdir()
    return ["--db", str(d / "w.sqlite"), "--extract", str(d / "sub" / ".." / "w.sqlite")]


def _extract_links_to_db(d: Path):
    (d / "w.sqlite").write_bytes(b"the operator's file")
    (d / "link.csv").symlink_to(d / "w.sqlite")
    return ["--db", str(d / "w.sqlite"), "--extract", str(d / "link.csv"), "--force"]


def _extract_is_dev_null(d: Path):
    return ["--db", str(d / "w.sqlite"), "--extract", os.devnull, "--force"]


def _db_is_dev_null(d: Path):
    return ["--db", os.devnull, "--extract", str(d / "x.csv"), "--force"]


def _extract_is_a_fifo(d: Path):
    os.mkfifo(d / "pipe.csv")
    return ["--db", str(d / "w.sqlite"), "--extract", str(d / "pipe.csv"), "--force"]


def _db_is_a_dangling_link(d: Path):
    (d / "w.sqlite").symlink_to(d / "gone.sqlite")
    return ["--db", str(d / "w.sqlite")]


def _arbitrary_file_with_force(d: Path):
    (d / "notes.txt").write_text("go-live checklist\n")
    return ["--db", str(d / "notes.txt"), "--force"]


def _empty_file_with_force(d: Path):
    (d / "w.sqlite").touch()
    return ["--db", str(d / "w.sqlite"), "--force"]


def _foreign_sqlite_with_force(d: Path):
    _foreign_sqlite(d / "ledger.sqlite")
    return ["--db", str(d / "ledger.sqlite"), "--force"]


def _sqlite_as_extract_with_force(d: Path):
    _foreign_sqlite(d / "ledger.sqlite")
    return ["--db", str(d / "w.sqlite"), "--extract", str(d / "ledger.sqlite"), "--force"]


def _counts(*flags: str):
    return lambda d: ["--db", str(d / "w.sqlite"), *flags]


CASES = {
    "existing extract": (_existing_extract, 2, "legacy.csv: already exists. Fix: use --force to replace it"),
    "existing default extract": (_existing_default_extract, 2, "w-legacy-extract.csv: already exists"),
    "extract is the db": (_extract_is_db, 2, "is the same file as --db"),
    "extract is the db spelled otherwise": (_extract_is_db_spelled_otherwise, 2, "is the same file as --db"),
    "extract is a link to the db": (_extract_links_to_db, 2, "is the same file as --db"),
    "extract is /dev/null": (_extract_is_dev_null, 2, "/dev/null: is a device, not a file for the legacy extract"),
    "db is /dev/null": (_db_is_dev_null, 2, "/dev/null: is a device, not a simulator database file"),
    "extract is a FIFO": (_extract_is_a_fifo, 2, "pipe.csv: is a named pipe"),
    "db is a dangling link": (_db_is_a_dangling_link, 2, "is a symbolic link to a missing file"),
    "arbitrary file with --force": (_arbitrary_file_with_force, 2, "notes.txt: is not a simulator database"),
    "empty file with --force": (_empty_file_with_force, 2, "w.sqlite: is not a simulator database"),
    "foreign SQLite with --force": (_foreign_sqlite_with_force, 2, "ledger.sqlite: is not a simulator database"),
    "SQLite as extract with --force": (_sqlite_as_extract_with_force, 2, "is a SQLite database, not a legacy extract"),
    "--gl-lines too many": (_counts("--gl-lines", "10000001"), 2, "--gl-lines 10,000,001 is out of range"),
    "--gl-lines 1": (_counts("--gl-lines", "1"), 2, "--gl-lines cannot be 1"),
    "--invoiced too many": (_counts("--invoiced", "1000001"), 2, "--invoiced 1,000,001 is out of range"),
    "--uninvoiced too many": (_counts("--uninvoiced", "1000001"), 2, "--uninvoiced 1,000,001 is out of range"),
    "--ar-transactions too many": (_counts("--ar-transactions", "9999999"), 2, "--ar-transactions 9,999,999 is out"),
    "--contracts 0": (_counts("--contracts", "0"), 2, "--contracts 0 is out of range. Fix: use 1 to 200,000"),
    "--customers 0": (_counts("--customers", "0"), 2, "--customers 0 is out of range"),
    "--legal-entities 0": (_counts("--legal-entities", "0"), 2, "--legal-entities 0 is out of range"),
    "--legal-entities 1000": (_counts("--legal-entities", "1000"), 2, "--legal-entities 1,000 is out of range"),
    "fewer customers than companies": (
        _counts("--legal-entities", "3", "--customers", "2"),
        2,
        "--customers 2 is fewer than --legal-entities 3",
    ),
}


@pytest.mark.parametrize("prepare, code, fragment", CASES.values(), ids=CASES.keys())
def test_seed_never_overwrites_an_unrelated_file_and_refuses_bad_input_in_one_line(tmp_path, prepare, code, fragment):
    args = prepare(tmp_path)
    before = _snapshot(tmp_path)
    exit_code, stderr = _seed(*args)
    assert exit_code == code, stderr
    (line,) = stderr.splitlines()
    assert line.startswith("error: ") and fragment in line, line
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("published", [True, False], ids=["serving", "starting"])
def test_seed_refuses_to_replace_a_world_that_a_simulator_is_serving(world_db: Path, published):
    before = _snapshot(world_db.parent)
    with world.ServingLock(world_db) as lock:
        if published:
            lock.publish("http://127.0.0.1:1", "token")
        exit_code, stderr = _seed("--db", str(world_db), "--extract", str(world_db.with_suffix(".csv")), "--force")
        (line,) = stderr.splitlines()
    assert exit_code == 3
    assert f"{world_db}: a simulator is serving it" in line
    if published:
        assert f"serving it at http://127.0.0.1:1 (pid {os.getpid()})" in line
    after = _snapshot(world_db.parent)
    assert {k: v for k, v in after.items() if ".serving." not in k} == before


def test_force_replaces_a_simulator_world_and_its_extract(world_db: Path):
    extract = world_db.with_suffix(".csv")
    exit_code, stderr = _seed("--db", str(world_db), "--extract", str(extract), "--seed", "9", "--force", *TINY)
    assert exit_code == 0, stderr
    info = world.check_world(world_db)
    assert info.seed_finished_at and len(extract.read_text().splitlines()) == 1 + 4 + 2
    assert sorted(p.name for p in world_db.parent.iterdir()) == ["world.csv", "world.sqlite"]


def test_force_replaces_a_world_seeded_before_the_marker(world_db: Path):
    """Our own tables but no marker: a simulator database all the same, so --force may replace it."""
    conn = sqlite3.connect(world_db)
    conn.execute(f"DROP TABLE {world.MARKER_TABLE}")
    conn.commit()
    conn.close()
    assert world.is_simulator_database(world_db)
    exit_code, stderr = _seed("--db", str(world_db), "--extract", str(world_db.with_suffix(".csv")), "--force", *TINY)
    assert exit_code == 0, stderr
    assert world.check_world(world_db).schema_version == world.WORLD_SCHEMA_VERSION


def test_a_seeded_world_carries_a_finished_marker_and_no_temporary_file(tmp_path):
    summary = seed_database(tmp_path / "w.sqlite", overrides={"invoiced_milestones": 3, "gl_lines": 10})
    info = world.check_world(tmp_path / "w.sqlite")
    assert info.schema_version == world.WORLD_SCHEMA_VERSION and info.seed_started_at <= info.seed_finished_at
    assert summary.extract_path == str(tmp_path / "w-legacy-extract.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w-legacy-extract.csv", "w.sqlite"]


@pytest.mark.parametrize("which", ["db", "extract"])
def test_a_directory_is_neither_a_database_nor_an_extract(tmp_path, which):
    """(The CLI's click.Path(dir_okay=False) refuses a directory before seed_database sees it.)"""
    (tmp_path / "out").mkdir()
    paths = {"db": tmp_path / "w.sqlite", "extract": tmp_path / "x.csv", which: tmp_path / "out"}
    with pytest.raises(InputError, match=r"out: is a directory, not a") as info:
        seed_database(paths["db"], extract=paths["extract"], force=True)
    assert info.value.exit_code == 2
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and list((tmp_path / "out").iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_a_folder_that_cannot_be_written_is_exit_3_naming_it(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        exit_code, stderr = _seed("--db", str(locked / "w.sqlite"))
    finally:
        locked.chmod(0o700)
    (line,) = stderr.splitlines()
    assert exit_code == 3 and f"{locked}: cannot write in this folder" in line
    assert list(locked.iterdir()) == []


# --- interrupted -------------------------------------------------------------------------------------


def _start_seed(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cutover.cli", "sim", "seed", "--scale", "medium", "--gl-lines", "1000000", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _interrupt_once_writing(proc: subprocess.Popen, folder: Path, sig: int) -> tuple[str, str]:
    deadline = time.monotonic() + 30
    while not any(p.name.endswith(".seeding") for p in folder.iterdir()):
        assert proc.poll() is None and time.monotonic() < deadline, "the seed never started writing"
        time.sleep(0.02)
    time.sleep(1.0)
    assert proc.poll() is None, "the seed finished before it could be interrupted"
    proc.send_signal(sig)
    return proc.communicate(timeout=30)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_an_interrupted_seed_leaves_nothing_behind(tmp_path, sig):
    proc = _start_seed("--db", str(tmp_path / "w.sqlite"))
    try:
        _, err = _interrupt_once_writing(proc, tmp_path, sig)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 3 and "Traceback" not in err
    assert err.rstrip().endswith("cancelled")  # after the progress line (no newline: cli.py)
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_forced_seed_leaves_the_old_world_and_extract_as_they_were(world_db: Path):
    before = _snapshot(world_db.parent)
    proc = _start_seed("--db", str(world_db), "--extract", str(world_db.with_suffix(".csv")), "--force")
    try:
        _interrupt_once_writing(proc, world_db.parent, signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 3
    assert _snapshot(world_db.parent) == before
    world.check_world(world_db)
