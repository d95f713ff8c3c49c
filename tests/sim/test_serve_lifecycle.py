"""One simulator per database, and no simulator left behind.

While `python -m cutover.sim serve` serves a database it holds `<db>.serving.lock` and publishes
`<db>.serving.json` (mode 0600: URL, admin token, pid); a second one on the same database is
refused (exit 3, naming the first); the json goes when it stops; a stale json is replaced; and
with `--parent-pid` it stops by itself when the program that started it dies (an SSH session
that dropped, a crashed parent)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from cutover.sim import world

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes, signals and flock")


def _start(db: Path | str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cutover.sim", "serve", "--db", str(db), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _announced(proc: subprocess.Popen) -> tuple[str, str]:
    first, second = proc.stdout.readline(), proc.stdout.readline()
    assert first.startswith("listening on http://127.0.0.1:"), (first, proc.stderr.read() if proc.poll() else "")
    assert second.startswith("admin token: ")
    return first.strip().split(" ", 2)[2], second.strip().split(": ", 1)[1]


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> tuple[str, str]:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def test_a_second_simulator_on_the_same_database_is_refused_naming_the_first(world_db: Path):
    runfile = world.serving_json_path(world_db)
    first = _start(world_db)
    try:
        url, token = _announced(first)
        data = json.loads(runfile.read_text())
        assert data["url"] == url and data["admin_token"] == token and data["pid"] == first.pid
        assert data["started_at"].endswith("Z")
        assert stat.S_IMODE(runfile.stat().st_mode) == 0o600
        assert world.running_simulator(world_db) == world.RunningSimulator(url, token, first.pid, data["started_at"])
        # the same file by another name is the same database
        other_name = world_db.parent / "sub" / ".." / world_db.name
        (world_db.parent / "sub").mkdir()
        second = subprocess.run(
            [sys.executable, "-m", "cutover.sim", "serve", "--db", str(other_name)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 3 and second.stdout == ""
        (line,) = second.stderr.splitlines()
        assert f"is already served by the simulator at {url} (pid {first.pid})" in line
        assert httpx.get(f"{url}/_sim/version", headers={"X-Cutover-Admin": token}, timeout=10).status_code == 200
    finally:
        _, err = _stop(first)
    assert first.returncode == 0, err
    assert not runfile.exists()
    assert world.running_simulator(world_db) is None
    assert world.serving_lock_path(world_db).exists()  # the lock file stays; nobody holds it


def test_a_stale_runfile_is_replaced_and_means_nothing(world_db: Path):
    runfile = world.serving_json_path(world_db)
    stale = {
        "url": "http://127.0.0.1:9",
        "admin_token": "old",
        "pid": 999_999_999,
        "started_at": "2026-01-01T00:00:00Z",
    }
    runfile.write_text(json.dumps(stale))
    world.serving_lock_path(world_db).write_text("999999999\n")
    assert world.running_simulator(world_db) is None
    proc = _start(world_db)
    try:
        url, token = _announced(proc)
        assert json.loads(runfile.read_text())["pid"] == proc.pid
        assert world.running_simulator(world_db).url == url
    finally:
        _stop(proc, signal.SIGHUP)
    assert proc.returncode == 0 and not runfile.exists()


def test_running_simulator_needs_the_lock_held_and_the_holders_runfile(world_db: Path):
    assert world.running_simulator(world_db) is None  # no lock file: none, and none created
    assert not world.serving_lock_path(world_db).exists()
    with world.ServingLock(world_db) as lock:
        assert world.running_simulator(world_db, wait=0.1) is None  # starting: nothing published yet
        published = lock.publish("http://127.0.0.1:5", "tok")
        assert world.running_simulator(world_db) == published
        with pytest.raises(Exception, match=r"already served by the simulator at http://127.0.0.1:5 \(pid \d+\)"):
            world.ServingLock(world_db).acquire()
    assert world.running_simulator(world_db) is None
    assert not world.serving_json_path(world_db).exists()


PARENT = textwrap.dedent(
    """
    import os, subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-m", "cutover.sim", "serve", "--db", sys.argv[1],
                              "--parent-pid", str(os.getpid())], stdout=subprocess.DEVNULL)
    print(child.pid, flush=True)
    time.sleep(120)
    """
)


def test_the_simulator_stops_when_the_program_that_started_it_dies(world_db: Path):
    runfile = world.serving_json_path(world_db)
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(world_db)], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    try:
        deadline = time.monotonic() + 30
        while world.running_simulator(world_db, wait=0) is None:
            assert time.monotonic() < deadline and not _gone(child), "the simulator never started serving"
            time.sleep(0.05)
        parent.kill()  # SIGKILL: the parent cleans up nothing
        parent.wait()
        deadline = time.monotonic() + 5
        while not _gone(child):
            assert time.monotonic() < deadline, f"simulator {child} outlived its parent"
            time.sleep(0.05)
        assert not runfile.exists()
        assert world.running_simulator(world_db) is None
    finally:
        if parent.poll() is None:
            parent.kill()
        if not _gone(child):
            os.kill(child, signal.SIGKILL)


def test_a_parent_pid_that_is_already_gone_is_refused(world_db: Path, tmp_path):
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    r = subprocess.run(
        [sys.executable, "-m", "cutover.sim", "serve", "--db", str(world_db), "--parent-pid", done.stdout.strip()],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and r.stderr.splitlines() == [
        f"error: --parent-pid {done.stdout.strip()}: no such process"
    ]
