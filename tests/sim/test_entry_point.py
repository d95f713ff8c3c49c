"""`python -m cutover.sim serve`: the simulator's own entry point, as a parent process sees it —
the two stdout lines (URL, admin token), the exit codes, and a clean stop on Ctrl+C (SIGINT),
SIGTERM or SIGHUP."""

from __future__ import annotations

import json
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

LISTENING = "listening on http://127.0.0.1:"


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cutover.sim", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cutover.sim", *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_serve_announces_its_url_first_serves_and_stops_cleanly(world_db: Path, sig):
    proc = _start("serve", "--db", str(world_db), "--window-scale", "0.5")
    runfile = world_db.with_name(world_db.name + ".serving.json")
    try:
        first, second = proc.stdout.readline(), proc.stdout.readline()
        assert first.startswith(LISTENING) and first.endswith("\n")
        url = first.strip().split(" ", 2)[2]
        assert int(url.rsplit(":", 1)[1]) > 0  # --port 0 picked a free port
        assert second.startswith("admin token: ") and second.endswith("\n")
        admin = {"X-Cutover-Admin": second.strip().split(": ", 1)[1]}
        assert len(admin["X-Cutover-Admin"]) >= 40  # secrets.token_urlsafe(32)
        assert httpx.get(f"{url}/_sim/version", headers=admin, timeout=10).json() == {"version": "10.0.40"}
        limits = httpx.get(f"{url}/_sim/protection", headers=admin, timeout=10).json()["limits"]
        assert limits["window_seconds"] == 150.0 and limits["max_requests"] == 3000
        assert json.loads(runfile.read_text())["url"] == url and stat.S_IMODE(runfile.stat().st_mode) == 0o600
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert out == "" and "Traceback" not in err
    assert not runfile.exists()


def test_a_missing_database_is_one_line_and_exit_2(tmp_path):
    missing = tmp_path / "nope.sqlite"
    r = _run("serve", "--db", str(missing))
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.splitlines() == [
        f"error: no simulator database at {missing}; create one with: cutover sim seed --db {missing}"
    ]
    assert not missing.exists()


def test_a_file_that_is_not_a_database_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_text("not sqlite")
    r = _run("serve", "--db", str(bad))
    assert r.returncode == 2 and r.stdout == ""
    (line,) = r.stderr.splitlines()
    assert line.startswith(f"error: cannot open the simulator database {bad}:")


def test_a_port_in_use_is_one_line_and_exit_3(world_db: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        r = _run("serve", "--db", str(world_db), "--port", str(port))
    assert r.returncode == 3 and r.stdout == ""
    (line,) = r.stderr.splitlines()
    assert line.startswith(f"error: cannot listen on 127.0.0.1:{port}:")


@pytest.mark.parametrize(
    "args, fragment",
    [
        ((), "the following arguments are required: COMMAND"),
        (("serve",), "the following arguments are required: --db"),
        (("serve", "--db", "x", "--port", "70000"), "70000 is not in the range 0 to 65535"),
        (("serve", "--db", "x", "--window-scale", "2"), "2 is not in the range 0.0001 to 1.0"),
        (("serve", "--db", "x", "--window-scale", "nan"), "'nan' is not a finite number"),
        (("serve", "--db", "x", "--window-scale", "inf"), "'inf' is not a finite number"),
        (("serve", "--db", "x", "--window-scale=-inf"), "'-inf' is not a finite number"),
        (("serve", "--db", "x", "--parent-pid", "abc"), "'abc' is not a process id"),
        (("seed",), "the following arguments are required: --db"),
    ],
)
def test_bad_usage_is_exit_2(args, fragment):
    r = _run(*args)
    assert r.returncode == 2 and r.stdout == ""
    assert fragment in r.stderr


def test_seed_builds_a_world_and_refuses_to_replace_one_without_force(tmp_path):
    """`python -m cutover.sim seed`: how the tool's core seeds a rehearsal without importing the simulator."""
    import subprocess
    import sys

    db, extract = tmp_path / "w.sqlite", tmp_path / "legacy.csv"
    first = subprocess.run(
        [sys.executable, "-m", "cutover.sim", "seed", "--db", str(db), "--extract", str(extract), "--seed", "3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith(f"seeded {db}: organization ") and str(extract) in first.stdout
    assert extract.read_text(encoding="utf-8").startswith("legacy_id,")
    before = db.read_bytes()
    again = subprocess.run(
        [sys.executable, "-m", "cutover.sim", "seed", "--db", str(db), "--extract", str(tmp_path / "other.csv")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 2 and "already exists" in again.stderr and "--force" in again.stderr
    assert db.read_bytes() == before and not (tmp_path / "other.csv").exists()


def test_check_says_whether_a_file_is_a_complete_world_without_changing_it(world_db, tmp_path):
    import subprocess
    import sys

    ok = subprocess.run(
        [sys.executable, "-m", "cutover.sim", "check", "--db", str(world_db)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0 and "a complete simulator world" in ok.stdout
    folder = tmp_path / "other"
    folder.mkdir()
    text = folder / "notes.sqlite"
    text.write_text("not a database\n")
    bad = subprocess.run(
        [sys.executable, "-m", "cutover.sim", "check", "--db", str(text)], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and "not a SQLite database" in bad.stderr
    assert text.read_text() == "not a database\n" and sorted(p.name for p in folder.iterdir()) == ["notes.sqlite"]
