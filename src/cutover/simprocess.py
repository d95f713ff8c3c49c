"""The one way the tool starts a rehearsal simulator: a child process, off the event loop.

A rehearsal profile that names a simulator database gets its own simulator for the duration
of one command; ``cutover demo`` and the benchmarks start theirs the same way. The child is
``python -m cutover.sim serve --db DB --port 0`` — the simulator's own entry point, not the
CLI, and never imported here: the core and the simulator share no code. The child's first
output line is ``listening on http://127.0.0.1:PORT``.

Starting takes a second or more (Python start-up, opening the database), so the async face
(``async with SimulatorProcess(db) as url``) waits for it in a worker thread: the event loop
keeps running (a TUI keeps drawing) while the simulator starts. The sync face (``with``) is for
scripts. If the awaiting task is cancelled while the child starts, the child is killed.

The child's standard error goes to a temporary file (a pipe that nobody reads could fill and
freeze it); its later standard output is drained by a daemon thread for the same reason. Its
second line is ``admin token: TOKEN``, the secret the rehearsal admin surface (``/_sim/…``)
wants in the ``X-Cutover-Admin`` header.

One simulator per database: a serving simulator holds an exclusive ``flock`` on
``<db>.serving.lock`` and describes itself in ``<db>.serving.json`` (URL, admin token, pid;
mode 0600). When that lock is held, ``start`` connects to that simulator instead of starting a
second one over the same file, and ``stop`` leaves it running: it is not ours. (The file
names are the contract between the two sides; no code is shared.)

The child is told our pid (``--parent-pid``) and exits by itself if we die without stopping
it — even of SIGKILL.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

from .errors import SimulatorStartError

READY_PREFIX = "listening on "
TOKEN_PREFIX = "admin token: "
ADMIN_HEADER = "X-Cutover-Admin"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


class SimulatorProcess:
    """A simulator child process over one database; ``url`` is set once it listens."""

    def __init__(self, db: Path, *, window_scale: float | None = None, port: int = 0, timeout: float = START_TIMEOUT):
        self.db = Path(db)
        self.window_scale = window_scale
        self.port = port
        self.timeout = timeout
        self.url: str | None = None
        self.admin_token: str | None = None
        self.attached = False  # True: connected to a simulator another process started
        self._proc: subprocess.Popen[str] | None = None
        self._stderr: IO[str] | None = None

    # --- the command -------------------------------------------------------------------------

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "cutover.sim", "serve", "--db", str(self.db), "--port", str(self.port)]
        cmd += ["--parent-pid", str(os.getpid())]
        if self.window_scale:
            cmd += ["--window-scale", repr(float(self.window_scale))]
        return cmd

    @property
    def running(self) -> bool:
        if self.attached:
            return serving(self.db) is not None
        return self._proc is not None and self._proc.poll() is None

    def admin_headers(self) -> dict[str, str]:
        """Headers for the rehearsal admin surface (``/_sim/…``)."""
        return {ADMIN_HEADER: self.admin_token or "", "Content-Type": "application/json"}

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    # --- blocking start and stop (run in a thread by the async face) --------------------------

    def start(self) -> str:
        """Start the child and wait for its ready line; returns the base URL."""
        if not self.db.exists():
            raise SimulatorStartError(
                f"the simulator database {self.db} does not exist",
                fix=f"create it with: cutover sim seed --db {self.db}",
            )
        other = serving(self.db)
        if other is not None:
            self.url, self.admin_token, self.attached = other["url"], other.get("admin_token"), True
            return self.url
        self._stderr = tempfile.TemporaryFile(mode="w+", encoding="utf-8")
        try:
            self._proc = subprocess.Popen(
                self.command(), stdout=subprocess.PIPE, stderr=self._stderr, stdin=subprocess.DEVNULL, text=True
            )
        except OSError as exc:
            self._close_files()
            raise SimulatorStartError(f"could not start the simulator for {self.db}: {exc.strerror or exc}") from None
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read_output, name=f"simulator-{self._proc.pid}-stdout", daemon=True).start()
        deadline = time.monotonic() + self.timeout
        line = self._ready_line(deadline)
        if not line.startswith(READY_PREFIX):
            detail = self._failure_detail(line)
            self.stop()
            raise SimulatorStartError(f"the simulator for {self.db} did not start: {detail}")
        self.url = line[len(READY_PREFIX) :].strip()
        second = self._ready_line(min(deadline, time.monotonic() + 5))
        if second.startswith(TOKEN_PREFIX):
            self.admin_token = second[len(TOKEN_PREFIX) :].strip()
        return self.url

    def _ready_line(self, deadline: float) -> str:
        """The child's next output line ("" at end of output or when the deadline passes)."""
        try:
            line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return ""
        return (line or "").strip()

    def _failure_detail(self, line: str) -> str:
        assert self._proc is not None and self._stderr is not None
        if self._proc.poll() is None and not line:
            return f"no answer within {self.timeout:.0f} s"
        try:
            self._proc.wait(2)
        except subprocess.TimeoutExpired:
            pass
        self._stderr.seek(0)
        lines = [x for x in self._stderr.read().strip().splitlines() if x.strip()]
        return "; ".join(lines[-3:]) or line or f"it exited with code {self._proc.returncode}"

    def _read_output(self) -> None:
        """Every line the child prints, into a queue (so a full pipe can never freeze it)."""
        stream = self._proc.stdout if self._proc else None
        try:
            while stream:
                line = stream.readline()
                if not line:
                    break
                self._lines.put(line)
        except (OSError, ValueError):
            pass
        self._lines.put(None)

    def stop(self) -> None:
        """Stop the child (SIGTERM, then SIGKILL after a grace period); safe to call twice.
        A simulator we only connected to is left running."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._close_files()

    def kill(self) -> None:
        """Kill at once (a cancelled start)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()

    def _close_files(self) -> None:
        if self._proc is not None and self._proc.stdout is not None and self._proc.poll() is not None:
            try:
                self._proc.stdout.close()
            except OSError:
                pass
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    # --- faces ----------------------------------------------------------------------------------

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    async def __aenter__(self) -> str:
        try:
            return await asyncio.to_thread(self.start)
        except asyncio.CancelledError:
            self.kill()
            raise

    async def __aexit__(self, *exc) -> None:
        await asyncio.shield(asyncio.to_thread(self.stop))


def serving_files(db: Path) -> tuple[Path, Path]:
    """(lock file, description file) of the simulator serving ``db`` — named after the database's
    real path, so every spelling of it (a symlink, ``sub/../w.sqlite``) finds the same files."""
    db = Path(os.path.realpath(db))
    return db.with_name(db.name + ".serving.lock"), db.with_name(db.name + ".serving.json")


def serving(db: Path) -> dict | None:
    """What ``<db>.serving.json`` says, if a simulator really holds ``<db>.serving.lock`` now."""
    lock_path, info_path = serving_files(db)
    try:
        fd = os.open(lock_path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # held: a simulator serves this database
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None  # nobody holds it: any description file is stale
    finally:
        os.close(fd)
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not str(info.get("url", "")).startswith("http://127.0.0.1:"):
        return None
    return info


def is_alive(pid: int) -> bool:
    """Whether a process with this id still runs (and is not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True
