"""The embedded default: a rehearsal profile that names a simulator database gets its own
simulator, started on a free loopback port for the duration of one command.

The simulator runs as a child process (`cutover sim serve --port 0`), not imported: the
core and the simulator share no code, and the child's first output line is its URL.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

READY_PREFIX = "listening on "
START_TIMEOUT = 30.0


class EmbeddedSimulatorError(RuntimeError):
    pass


@contextlib.contextmanager
def embedded_simulator(db: Path, *, window_scale: float | None = None) -> Iterator[str]:
    """Start a simulator over `db`; yields its base URL; stops it on exit."""
    if not db.exists():
        raise EmbeddedSimulatorError(
            f"the profile's simulator database {db} does not exist; create it with: cutover sim seed --db {db}"
        )
    command = [sys.executable, "-m", "cutover.cli", "sim", "serve", "--db", str(db), "--port", "0"]
    if window_scale:
        command += ["--window-scale", str(window_scale)]
    # stderr goes to a file: a pipe nobody reads while the simulator runs could fill and freeze it
    errors = tempfile.TemporaryFile(mode="w+", encoding="utf-8")
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True)
    try:
        first: list[str] = []
        reader = threading.Thread(target=lambda: first.append(proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(START_TIMEOUT)
        line = (first[0] if first else "").strip()
        if not line.startswith(READY_PREFIX):
            proc.kill()
            proc.wait()
            errors.seek(0)
            err = errors.read().strip().splitlines()[-3:]
            detail = "; ".join(err) or (line or f"no answer within {START_TIMEOUT:.0f} s")
            raise EmbeddedSimulatorError(f"the simulator for {db} did not start: {detail}")
        yield line[len(READY_PREFIX):]
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout:
            proc.stdout.close()
        errors.close()
