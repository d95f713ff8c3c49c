"""``python -m cutover.sim``: the rehearsal simulator's own entry point (no click, no client code).

    python -m cutover.sim serve --db PATH [--port N] [--window-scale F] [--parent-pid N]
    python -m cutover.sim seed --db PATH [--scale small|medium|large] [--seed N] [--extract FILE] [--force]
    python -m cutover.sim check --db PATH

``check`` says whether ``PATH`` is a complete simulator world (exit 0, one line) or why not
(exit 2, one line on stderr), reading it without changing it — how the core asks, without
importing the simulator, whether a world it found can be served.

``seed`` builds a world exactly as ``cutover sim seed`` does (:mod:`cutover.sim.worldfile`):
the tool's own core starts it this way (a rehearsal), never by importing the simulator. It
prints one line, ``seeded PATH: organization ORG; legacy extract EXTRACT``.

Serves the seeded simulator database ``PATH`` on 127.0.0.1 until stopped, as
``cutover sim serve`` does. Standard output, each line flushed at once so a parent process
can read them before the first request:

    listening on http://127.0.0.1:PORT        (``--port 0``, the default, picks a free one)
    admin token: TOKEN                         (random per run; the ``X-Cutover-Admin`` header)

It opens only a complete simulator world (:func:`cutover.sim.world.check_world`, read-only:
a refused file is left exactly as it was). While serving it holds ``PATH.serving.lock`` and
publishes ``PATH.serving.json`` (see :mod:`cutover.sim.world`); a second simulator on the same
database is refused. Ctrl+C, SIGTERM and SIGHUP (an SSH disconnect) stop it cleanly, and so does
the death of the process ``--parent-pid`` names (polled every 0.5 s): the json is removed and
the lock released.

Exit codes: 0 stopped (Ctrl+C, SIGTERM, SIGHUP, parent gone); 2 bad usage, or no complete
simulator world at ``PATH`` (one line on stderr, naming the path and the fix); 3 the database
is already served (the line names that simulator's URL and pid), cannot be locked or opened for
writing, or the port cannot be listened on.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sqlite3
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

EXIT_OK, EXIT_USAGE, EXIT_ENVIRONMENT = 0, 2, 3
PROG = "python -m cutover.sim"
PARENT_POLL_SECONDS = 0.5
_STOP_SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not in the range 0 to 65535")
    return value


def _window_scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number; use 0.0001 to 1.0")
    if not 0.0001 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value:g} is not in the range 0.0001 to 1.0")
    return value


def _pid(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a process id") from None
    if value <= 1:
        raise argparse.ArgumentTypeError(f"{value} is not a parent process id")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, description="The rehearsal simulator of Dataverse, Finance and Operations and dual-write."
    )
    commands = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="Serve the simulator on 127.0.0.1 until interrupted.",
        description="Serve the simulator on 127.0.0.1 until interrupted.",
    )
    serve.add_argument("--db", type=Path, required=True, help="Seeded simulator database.")
    serve.add_argument("--port", type=_port, default=0, help="0 picks a free port (default: 0).")
    serve.add_argument(
        "--window-scale",
        type=_window_scale,
        default=1.0,
        help="Shrink the 300 s service-protection window, 0.0001 to 1.0 (rates stay as documented; default: 1.0).",
    )
    serve.add_argument(
        "--parent-pid",
        type=_pid,
        default=None,
        metavar="PID",
        help="Stop (cleanly) when this process is gone: the program that started the simulator.",
    )
    seed = commands.add_parser(
        "seed", help="Build a seeded world.", description="Build a seeded world and its legacy extract."
    )
    seed.add_argument("--db", type=Path, required=True, help="Simulator database file to create.")
    seed.add_argument("--scale", default="small", help="small, medium or large (default: small).")
    seed.add_argument("--seed", type=int, default=1, help="Same seed, same world (default: 1).")
    seed.add_argument("--extract", type=Path, default=None, help="Where to write the legacy extract CSV.")
    seed.add_argument("--force", action="store_true", help="Replace an existing simulator database.")
    check = commands.add_parser(
        "check", help="Is this a complete simulator world?", description="Is this a complete simulator world?"
    )
    check.add_argument("--db", type=Path, required=True, help="The database to look at (read-only).")
    return p


def check(db: Path) -> int:
    from cutover.errors import CutoverError

    from .world import check_world

    try:
        info = check_world(db)
    except CutoverError as exc:
        return _fail(str(exc), exc.exit_code)
    _say(f"{db}: a complete simulator world (schema {info.schema_version}, seeded {info.seed_finished_at})")
    return EXIT_OK


def seed(db: Path, scale: str, seed_value: int, extract: Path | None, force: bool) -> int:
    from cutover.errors import CutoverError

    from .worldfile import seed_database

    try:
        summary = seed_database(db, scale=scale, seed=seed_value, extract=extract, force=force)
    except CutoverError as exc:
        return _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        return _fail("cancelled", EXIT_ENVIRONMENT)
    _say(f"seeded {db}: organization {summary.organization_id}; legacy extract {summary.extract_path}")
    return EXIT_OK


def _fail(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr, flush=True)
    return code


def _say(line: str) -> None:
    try:
        print(line, flush=True)
    except OSError:  # nobody reads our output any more (a parent that died): carry on quietly
        sys.stdout = open(os.devnull, "w")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (dead, not yet reaped) is not alive
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def _watch_parent(pid: int, stop: threading.Event) -> None:
    """Set ``stop`` once process ``pid`` is gone (or, if it is our parent, once we are adopted)."""
    our_parent = os.getppid() == pid

    def watch() -> None:
        while not stop.wait(PARENT_POLL_SECONDS):
            if not _alive(pid) or (our_parent and os.getppid() != pid):
                stop.set()

    threading.Thread(target=watch, name="cutover-sim-parent-watch", daemon=True).start()


def _sqlite_exit(exc: sqlite3.Error) -> int:
    text = str(exc).lower()
    return EXIT_ENVIRONMENT if any(w in text for w in ("readonly", "unable to open", "locked", "disk")) else EXIT_USAGE


def serve(db: Path, port: int, window_scale: float, parent_pid: int | None = None) -> int:
    # Ctrl+C, SIGTERM and SIGHUP (the terminal went away) only set `stop`, whenever they come:
    # before serving (it then does not start), while serving (uvicorn handles SIGINT and SIGTERM
    # itself, shuts down gracefully and raises them again afterwards, landing here), or after.
    # No signal raises an exception into start-up or shutdown half-way.
    stop = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, lambda signum, frame: stop.set()) for sig in _STOP_SIGNALS}
    try:
        return _serve(db, port, window_scale, parent_pid, stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _serve(db: Path, port: int, window_scale: float, parent_pid: int | None, stop: threading.Event) -> int:
    from cutover.errors import CutoverError

    from .world import ServingLock, check_world

    if not db.exists():
        return _fail(f"no simulator database at {db}; create one with: cutover sim seed --db {db}", EXIT_USAGE)
    if parent_pid is not None and not _alive(parent_pid):
        return _fail(f"--parent-pid {parent_pid}: no such process", EXIT_USAGE)
    try:
        check_world(db)  # read-only, before anything opens it for writing
    except CutoverError as exc:
        return _fail(str(exc), exc.exit_code)
    from .protection import Limits  # the server's imports only for a world it will serve
    from .server import serve_forever

    limits = Limits.scaled(window_scale) if window_scale != 1.0 else None
    lock = ServingLock(db)
    try:
        lock.acquire()
        check_world(db)  # again, now that no seed --force can replace it under us
        if parent_pid is not None:
            _watch_parent(parent_pid, stop)
        if not stop.is_set():
            serve_forever(db, port, limits, on_ready=_say, on_listening=lock.publish, stop=stop)
    except CutoverError as exc:
        return _fail(str(exc), exc.exit_code)
    except sqlite3.Error as exc:
        return _fail(f"cannot open the simulator database {db}: {exc}", _sqlite_exit(exc))
    except OSError as exc:
        return _fail(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}", EXIT_ENVIRONMENT)
    except KeyboardInterrupt:  # a SIGINT that came while uvicorn's handler was being swapped out
        pass
    finally:
        lock.release()
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "serve":
        return serve(args.db, args.port, args.window_scale, args.parent_pid)
    if args.command == "seed":
        return seed(args.db, args.scale, args.seed, args.extract, args.force)
    if args.command == "check":
        return check(args.db)
    return EXIT_USAGE  # unreachable: argparse refuses unknown commands


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl+C before serve() took the signals over: nothing started yet
        sys.exit(EXIT_OK)
