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
freeze it); its later standard output is drained by a daemon thread for the same reason.
"""

from __future__ import annotations

import asyncio
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

from .errors import SimulatorStartError

READY_PREFIX = "listening on "
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
        self._proc: subprocess.Popen[str] | None = None
        self._stderr: IO[str] | None = None

    # --- the command -------------------------------------------------------------------------

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "cutover.sim", "serve", "--db", str(self.db), "--port", str(self.port)]
        if self.window_scale:
            cmd += ["--window-scale", repr(float(self.window_scale))]
        return cmd

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

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
        self._stderr = tempfile.TemporaryFile(mode="w+", encoding="utf-8")
        try:
            self._proc = subprocess.Popen(
                self.command(), stdout=subprocess.PIPE, stderr=self._stderr, stdin=subprocess.DEVNULL, text=True
            )
        except OSError as exc:
            self._close_files()
            raise SimulatorStartError(f"could not start the simulator for {self.db}: {exc.strerror or exc}") from None
        line = self._ready_line()
        if not line.startswith(READY_PREFIX):
            detail = self._failure_detail(line)
            self.stop()
            raise SimulatorStartError(f"the simulator for {self.db} did not start: {detail}")
        self.url = line[len(READY_PREFIX) :].strip()
        threading.Thread(target=self._drain, name=f"simulator-{self._proc.pid}-stdout", daemon=True).start()
        return self.url

    def _ready_line(self) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        deadline = time.monotonic() + self.timeout
        stream = self._proc.stdout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return ""
            readable, _, _ = select.select([stream], [], [], min(remaining, 0.5))
            if readable:
                return stream.readline().strip()
            if self._proc.poll() is not None:
                return stream.readline().strip()

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

    def _drain(self) -> None:
        stream = self._proc.stdout if self._proc else None
        try:
            while stream and stream.readline():
                pass
        except (OSError, ValueError):
            pass

    def stop(self) -> None:
        """Stop the child (SIGTERM, then SIGKILL after a grace period); safe to call twice."""
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
