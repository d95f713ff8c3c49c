"""The TUI in a real terminal: tmux runs it, ``capture-pane`` reads the screen, keys are sent as
an operator types them; afterwards no process of the run is left (quit, and a hang-up).

``test_cutover_demo_in_tmux`` drives the real ``python -m cutover.cli demo``; it is skipped until
the CLI's ``demo`` opens the TUI (the wiring is the CLI owner's). ``test_run_tui_in_tmux`` drives
the same entry point the CLI will call (``cutover.tui.app.run_tui`` after ``prepare_demo``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cutover.simprocess import serving

# Never skipped: a skipped terminal test would hide a regression. .ci/run installs tmux.
pytestmark = pytest.mark.filterwarnings("default")

SRC = str(Path(__file__).resolve().parents[2] / "src")


class Tmux:
    def __init__(self, name: str):
        self.socket = f"cutover-test-{os.getpid()}-{name}"
        self.session = "cutover"

    def run(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)}: {done.stderr}")
        return done.stdout

    def start(self, command: str, cwd: Path) -> None:
        self.run("-f", "/dev/null", "new-session", "-d", "-s", self.session, "-x", "80", "-y", "24", "-c", str(cwd), command)  # fmt: skip

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", self.session, check=False)

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", self.session, *keys)

    def alive(self) -> bool:
        return subprocess.run(["tmux", "-L", self.socket, "has-session", "-t", self.session], capture_output=True).returncode == 0  # fmt: skip

    def pane_pid(self) -> int:
        return int(self.run("display-message", "-p", "-t", self.session, "#{pane_pid}").strip())

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} did not show within {timeout:.0f} s; the screen:\n{self.screen()}")

    def kill(self) -> None:
        self.run("kill-server", check=False)


def processes_mentioning(needle: str) -> list[tuple[int, str]]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        if needle in cmd and state != "Z" and "tmux" not in cmd.split(" ")[0]:
            found.append((int(pid), cmd))
    return found


def wait_gone(needle: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while processes_mentioning(needle) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not processes_mentioning(needle), processes_mentioning(needle)


def _drive(tmux: Tmux, command: str, ws: Path) -> None:
    tmux.start(command, ws.parent)
    tmux.wait_for("Ready: r runs the runbook", 60)
    screen = tmux.screen()
    assert "cutover · rehearsal (rehearsal) · legacy-milestones.csv" in screen  # 80 columns: tmux without a client
    assert "preflight.environment" in screen and "snapshot.after" in screen
    tmux.keys("r")
    tmux.wait_for("Attest: preflight.version", 60)  # the first step ran: the simulator is up
    assert serving(ws / "rehearsal.sqlite") is not None
    tmux.keys("C-q")
    tmux.wait_for("Quit while a step runs?", 10)
    tmux.keys("BTab", "Enter")  # from "Keep running" to "Quit"
    deadline = time.monotonic() + 20
    while tmux.alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not tmux.alive(), tmux.screen()
    wait_gone(str(ws))
    assert serving(ws / "rehearsal.sqlite") is None

    # a dropped connection: the terminal goes away (SIGHUP) while the operator is asked
    tmux.start(command, ws.parent)
    tmux.wait_for("The run was interrupted in preflight.version", 60)
    tmux.keys("r")
    tmux.wait_for("Attest: preflight.version", 60)
    tmux.kill()
    wait_gone(str(ws))
    assert serving(ws / "rehearsal.sqlite") is None


def test_run_tui_in_tmux(tmp_path):
    ws = tmp_path / "ws"
    script = (
        "import sys; from pathlib import Path; from cutover.demo import prepare_demo; "
        "from cutover.tui.app import run_tui; w = prepare_demo(Path(sys.argv[1])); "
        "sys.exit(run_tui(w.workspace, w.profile, w.extract, None, cutover_date=w.cutover_date))"
    )
    command = f"env PYTHONPATH={SRC} {sys.executable} -c '{script}' {ws}"
    tmux = Tmux("direct")
    try:
        _drive(tmux, command, ws)
    finally:
        tmux.kill()


def test_cutover_demo_in_tmux(tmp_path):
    ws = tmp_path / "ws"
    tmux = Tmux("cli")
    try:
        _drive(tmux, f"env PYTHONPATH={SRC} {sys.executable} -m cutover.cli demo --workspace {ws}", ws)
    finally:
        tmux.kill()
