"""``python -m cutover.sim``: the rehearsal simulator's own entry point (no click, no client code).

    python -m cutover.sim serve --db PATH [--port N] [--window-scale F]

Serves the seeded simulator database ``PATH`` on 127.0.0.1 until interrupted, as
``cutover sim serve`` does. The first line on stdout is exactly
``listening on http://127.0.0.1:PORT`` (flushed at once, so a parent process can read the
port; ``--port 0``, the default, picks a free one).

Exit codes: 0 stopped by Ctrl+C or SIGTERM; 2 bad usage, or no (readable) database at ``PATH``
(one line on stderr); 3 cannot listen on the port (one line on stderr).
"""

from __future__ import annotations

import argparse
import signal
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

EXIT_OK, EXIT_USAGE, EXIT_ENVIRONMENT = 0, 2, 3
PROG = "python -m cutover.sim"


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
    if not 0.0001 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value:g} is not in the range 0.0001 to 1.0")
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
    return p


def _fail(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr, flush=True)
    return code


def _stop(signum, frame) -> None:
    raise KeyboardInterrupt


def serve(db: Path, port: int, window_scale: float) -> int:
    from .protection import Limits
    from .server import serve_forever

    if not db.is_file():
        return _fail(f"no simulator database at {db}; create one with: cutover sim seed --db {db}", EXIT_USAGE)
    limits = Limits.scaled(window_scale) if window_scale != 1.0 else None
    # SIGTERM stops the simulator as Ctrl+C does. While serving, uvicorn handles both signals
    # (graceful shutdown) and raises them again afterwards: this handler turns that into a clean exit.
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        serve_forever(db, port, limits, on_ready=lambda line: print(line, flush=True))
    except sqlite3.Error as exc:
        return _fail(f"cannot open the simulator database {db}: {exc}", EXIT_USAGE)
    except OSError as exc:
        return _fail(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}", EXIT_ENVIRONMENT)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "serve":
        return serve(args.db, args.port, args.window_scale)
    return EXIT_USAGE  # unreachable: argparse refuses unknown commands


if __name__ == "__main__":
    sys.exit(main())
