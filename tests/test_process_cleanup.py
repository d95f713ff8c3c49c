"""No process left behind: a command that started a simulator stops it however it ends —
normal exit, Ctrl+C, SIGTERM, SIGHUP (the SSH connection dropped) and even SIGKILL of the
command itself (the simulator notices its parent is gone). Real processes, real signals,
and the process table read from /proc."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cutover.simprocess import is_alive

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table from /proc")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def _start_demo(workspace: Path, world_db: Path) -> tuple[subprocess.Popen, int]:
    """`cutover sim demo` on a copy of the seeded world; returns it and its simulator's pid."""
    workspace.mkdir()
    (workspace / "rehearsal.sqlite").write_bytes(world_db.read_bytes())
    proc = subprocess.Popen(
        [sys.executable, "-m", "cutover.cli", "sim", "demo", "--workspace", str(workspace)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a login shell over SSH would give it
    )
    deadline = time.monotonic() + 30
    for line in proc.stdout:
        if line.startswith("Press Ctrl+C") or time.monotonic() > deadline:
            break
    children = _children(proc.pid)
    assert len(children) == 1, f"demo should run exactly one simulator, found {children}"
    return proc, children[0]


def _gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not is_alive(pid):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_to_the_command_stops_its_simulator(tmp_path, world_db, signum):
    proc, simulator = _start_demo(tmp_path / "ws", world_db)
    os.kill(proc.pid, signum)
    assert proc.wait(15) in (0, 3), proc.stderr.read()
    assert _gone(simulator), f"simulator {simulator} still runs after {signal.Signals(signum).name} to its parent"
    assert not list((tmp_path / "ws").glob("*.serving.json")), "the simulator's description file was left behind"


def test_a_hangup_of_the_whole_session_leaves_nothing(tmp_path, world_db):
    """A dropped SSH connection signals the whole process group: parent and simulator alike."""
    proc, simulator = _start_demo(tmp_path / "ws", world_db)
    os.killpg(proc.pid, signal.SIGHUP)
    proc.wait(15)
    assert _gone(simulator)


def test_killing_the_command_outright_still_stops_its_simulator(tmp_path, world_db):
    """SIGKILL gives the parent no chance to clean up: the simulator watches its parent."""
    proc, simulator = _start_demo(tmp_path / "ws", world_db)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(15)
    assert _gone(simulator, within=10), "the simulator outlived its killed parent"
