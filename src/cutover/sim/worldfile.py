"""A simulator database file with its seeded world and legacy extract: where the extract goes
by default, and creating (or replacing) the two files without ever destroying one it did not
make.

This is what ``cutover sim seed`` and ``cutover demo`` do, without the printing: it never
prints and never exits. Every problem is one line naming the path (or the command-line flag)
and the fix:

- :class:`cutover.errors.InputError` (exit 2), a path or value the operator named is wrong: an
  unknown scale or override, a count outside :data:`SEED_LIMITS`; ``--db`` or ``--extract``
  exists and ``force`` is not set; either is not a regular file (a directory, device, pipe or
  dangling link); ``--extract`` is the same file as ``--db`` (compared resolved, so other
  spellings and symbolic links count); with ``force``, ``--db`` is not a simulator database
  (:func:`cutover.sim.world.is_simulator_database`: it carries the world marker, or the
  simulator's own tables) or ``--extract`` is a SQLite database — ``--force`` replaces only
  what a seed made.
- :class:`cutover.errors.WorkspaceProblem` (exit 3): a simulator is serving ``--db``; a folder
  cannot be written (permissions, full disk); the database is busy.

Writing: the world goes to a temporary file beside ``--db`` and the extract to one beside
``--extract``; both are renamed into place only when both are complete (signals are held back
for the two renames). Anything that stops the seed — an error, Ctrl+C, SIGTERM or SIGHUP (an
SSH disconnect), which raise :class:`KeyboardInterrupt` while it runs in the main thread —
removes the temporary files and leaves the existing files as they were.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import signal
import sqlite3
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from cutover.errors import InputError, WorkspaceProblem

from . import seed as seeding
from .seed import SCALES, Scale, SeedSummary
from .store import connect
from .world import SQLITE_HEADER, is_served, is_simulator_database, running_simulator

__all__ = [
    "SCALE_NAMES",
    "SCALE_OVERRIDES",
    "SEED_LIMITS",
    "SeedSummary",
    "default_extract_path",
    "seed_database",
]

#: The named scales, smallest first: the choices of ``--scale``.
SCALE_NAMES: tuple[str, ...] = tuple(SCALES)

#: (Scale field, command-line flag) of the counts an operator may override on a named scale.
SCALE_OVERRIDES: tuple[tuple[str, str], ...] = (
    ("legal_entities", "--legal-entities"),
    ("customers", "--customers"),
    ("contracts", "--contracts"),
    ("invoiced_milestones", "--invoiced"),
    ("uninvoiced_milestones", "--uninvoiced"),
    ("ar_transactions", "--ar-transactions"),
    ("gl_lines", "--gl-lines"),
)
_FLAG = dict(SCALE_OVERRIDES)

#: flag -> (minimum, maximum) of every count a seed takes, checked before anything is written.
#: The minimums are what the world model needs (a company, a customer, a contract); the
#: maximums keep a seed within a laptop's memory and an evening. Two more rules:
#: ``--customers`` is at least ``--legal-entities`` (every company needs a customer), and
#: ``--gl-lines`` is never 1 (a journal entry needs two lines to balance).
SEED_LIMITS: dict[str, tuple[int, int]] = {
    "--legal-entities": (1, 999),
    "--customers": (1, 200_000),
    "--contracts": (1, 200_000),
    "--invoiced": (0, 1_000_000),
    "--uninvoiced": (0, 1_000_000),
    "--ar-transactions": (0, 1_000_000),
    "--gl-lines": (0, 10_000_000),
}

_SQLITE_SUFFIXES = ("-wal", "-shm", "-journal")
_STOP_SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None)


def default_extract_path(db: Path) -> Path:
    """Where the legacy extract of simulator database ``db`` goes unless told otherwise:
    ``<db stem>-legacy-extract.csv`` beside it."""
    db = Path(db)
    return db.with_name(f"{db.stem}-legacy-extract.csv")


def seed_database(
    db: Path,
    *,
    scale: str = "small",
    seed: int = 1,
    extract: Path | None = None,
    overrides: Mapping[str, int] | None = None,
    force: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> SeedSummary:
    """Create simulator database ``db`` holding the world of ``seed`` at ``scale``, and its
    legacy extract (at ``extract``, default :func:`default_extract_path`).

    ``overrides`` maps fields of :data:`SCALE_OVERRIDES` to counts (None values are ignored);
    with any, the summary's scale name is ``<scale>+custom``. ``force`` replaces an existing
    simulator database (its ``-wal`` and ``-shm`` companions too) and an existing extract —
    never another kind of file (see the module docstring). ``progress(stage, done, total)`` is
    passed to :func:`cutover.sim.seed.seed_world`. Returns the seed summary (its
    ``extract_path`` is where the extract was written).
    """
    db = Path(db)
    spec, scale_name = _scale(scale, overrides)
    extract = Path(extract) if extract is not None else default_extract_path(db)
    _check_targets(db, extract, force)
    with _stop_signals_interrupt():
        summary = _write(db, extract, spec, seed=int(seed), scale_name=scale_name, progress=progress)
    return dataclasses.replace(summary, extract_path=str(extract))


# --- the counts -----------------------------------------------------------------------------------------


def _scale(scale: str, overrides: Mapping[str, int] | None) -> tuple[Scale, str]:
    if scale not in SCALES:
        raise InputError(f"unknown scale {scale!r}", fix=f"use one of {', '.join(SCALE_NAMES)}")
    chosen = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = sorted(set(chosen) - set(_FLAG))
    if unknown:
        raise InputError(f"unknown scale override(s) {', '.join(unknown)}", fix=f"override only {', '.join(_FLAG)}")
    counts = {name: getattr(SCALES[scale], name) for name in _FLAG} | chosen
    for name, flag in SCALE_OVERRIDES:
        value = counts[name]
        low, high = SEED_LIMITS[flag]
        if not isinstance(value, int) or isinstance(value, bool):
            raise InputError(f"{flag} must be a whole number, got {value!r}", fix=f"use {low:,} to {high:,}")
        if not low <= value <= high:
            raise InputError(f"{flag} {value:,} is out of range", fix=f"use {low:,} to {high:,}")
    if counts["customers"] < counts["legal_entities"]:
        raise InputError(
            f"--customers {counts['customers']:,} is fewer than --legal-entities {counts['legal_entities']:,}: "
            "every company needs a customer",
            fix=f"use --customers {counts['legal_entities']} or more",
        )
    if counts["gl_lines"] == 1:
        raise InputError(
            "--gl-lines cannot be 1: a journal entry needs at least two lines to balance", fix="use 0, or 2 or more"
        )
    if not chosen:
        return SCALES[scale], scale
    try:
        spec = dataclasses.replace(SCALES[scale], **chosen)
    except ValueError as exc:
        raise InputError(_with_flags(str(exc))) from None
    return spec, f"{scale}+custom"


def _with_flags(message: str) -> str:
    """A generator message in the operator's words: ``Scale.gl_lines`` -> ``--gl-lines``."""
    for name, flag in SCALE_OVERRIDES:
        message = re.sub(rf"\b(Scale\.)?{name}\b", flag, message)
    return message


# --- the two paths ---------------------------------------------------------------------------------------


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _existing_regular(path: Path, flag: str, what: str) -> bool:
    """Whether ``path`` exists (as a regular file: anything else is refused)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.lexists(path):
            raise InputError(
                f"is a symbolic link to a missing file, not {what}",
                where=str(path),
                fix=f"remove the link or choose another {flag}",
            ) from None
        return False
    except NotADirectoryError:
        raise InputError(
            f"a part of the path is a file, not a folder, so it cannot be {what}", where=str(path)
        ) from None
    except OSError as exc:
        raise WorkspaceProblem(
            f"cannot look at it: {exc.strerror or exc}", where=str(path), fix="check the folder's permissions"
        ) from None
    if not stat.S_ISREG(st.st_mode):
        raise InputError(
            f"is {_kind(st.st_mode)}, not {what}", where=str(path), fix=f"name a file (new or a seed's) for {flag}"
        )
    return True


def _check_targets(db: Path, extract: Path, force: bool) -> None:
    db_exists = _existing_regular(db, "--db", "a simulator database file")
    extract_exists = _existing_regular(extract, "--extract", "a file for the legacy extract")
    real_db, real_extract = _real(db), _real(extract)
    companions = {Path(f"{real_db}{suffix}") for suffix in (*_SQLITE_SUFFIXES, ".serving.lock", ".serving.json")}
    same = real_db == real_extract or (db_exists and extract_exists and os.path.samefile(db, extract))
    if same or real_extract in companions:
        raise InputError(
            f"--extract {extract} is the same file as --db {db} (or one of its companions)",
            fix="choose a different --extract, or leave it out to write it beside the database",
        )
    if db_exists:
        if not force:
            raise InputError("already exists", where=str(db), fix="use --force to replace it, or choose another --db")
        if is_served(db):
            serving = running_simulator(db, wait=0)
            at = f" at {serving.url} (pid {serving.pid})" if serving else ""
            raise WorkspaceProblem(
                f"a simulator is serving it{at}", where=str(db), fix="stop that simulator first, or seed another --db"
            )
        if not is_simulator_database(db):
            raise InputError(
                "is not a simulator database (no cutover-simulator marker), so --force will not replace it",
                where=str(db),
                fix="choose another --db; move the file away yourself if it really is to go",
            )
    if extract_exists:
        if not force:
            raise InputError(
                "already exists", where=str(extract), fix="use --force to replace it, or choose another --extract"
            )
        try:
            with open(extract, "rb") as f:
                head = f.read(len(SQLITE_HEADER))
        except OSError as exc:
            raise WorkspaceProblem(f"cannot read it: {exc.strerror or exc}", where=str(extract)) from None
        if head == SQLITE_HEADER:
            raise InputError(
                "is a SQLite database, not a legacy extract, so --force will not replace it",
                where=str(extract),
                fix="choose another --extract",
            )


# --- writing -------------------------------------------------------------------------------------------


class _Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP during a seed: stops it like Ctrl+C does (and maps to the same exit code)."""


def _raise_interrupted(signum, frame) -> None:
    raise _Interrupted(signal.Signals(signum).name)


@contextlib.contextmanager
def _stop_signals_interrupt() -> Iterator[None]:
    """While seeding in the main thread, SIGTERM and SIGHUP interrupt like Ctrl+C (so the
    temporary files are removed) instead of killing the process on the spot."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for sig in _STOP_SIGNALS:
        if sig != signal.SIGINT and signal.getsignal(sig) in (signal.SIG_DFL, None):
            previous[sig] = signal.signal(sig, _raise_interrupted)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold back stop signals for a few system calls that must happen together."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, set(_STOP_SIGNALS))
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _temp_beside(target: Path, flag: str) -> Path:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".seeding")
    except OSError as exc:
        raise WorkspaceProblem(
            f"cannot write in this folder: {exc.strerror or exc}",
            where=str(target.parent),
            fix=f"check the folder's ownership, permissions and free space, or choose another {flag}",
        ) from None
    os.close(fd)
    return Path(name)


def _remove(path: Path, *suffixes: str) -> None:
    for suffix in ("", *suffixes):
        with contextlib.suppress(OSError):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


def _write(
    db: Path, extract: Path, spec: Scale, *, seed: int, scale_name: str, progress: Callable | None
) -> SeedSummary:
    real_db, real_extract = _real(db), _real(extract)
    temps: list[Path] = []
    try:
        tmp_db = _temp_beside(real_db, "--db")
        temps.append(tmp_db)
        tmp_extract = _temp_beside(real_extract, "--extract")
        temps.append(tmp_extract)
        conn = connect(tmp_db)
        try:
            summary = seeding.seed_world(
                conn, spec, seed=seed, scale_name=scale_name, extract_path=tmp_extract, progress=progress
            )
            # A self-contained file (no -wal to carry along): the simulator turns WAL on again.
            conn.execute("PRAGMA journal_mode=DELETE")
        finally:
            conn.close()
        with _signals_held():
            _remove(real_db, *_SQLITE_SUFFIXES)  # an old world's log must never meet the new file
            os.replace(tmp_extract, real_extract)
            os.replace(tmp_db, real_db)
            temps.clear()
        return summary
    except BaseException as exc:
        for tmp in temps:
            _remove(tmp, *_SQLITE_SUFFIXES, ".part")
        if isinstance(exc, ValueError):
            raise InputError(_with_flags(str(exc))) from None
        if isinstance(exc, sqlite3.Error):
            busy = "locked" in str(exc) or "busy" in str(exc)
            raise WorkspaceProblem(
                f"cannot write the simulator database: {exc}",
                where=str(db),
                fix="wait for the program using it, then retry"
                if busy
                else "check the folder's permissions and free space",
            ) from None
        if isinstance(exc, OSError):
            where = getattr(exc, "filename", None) or str(extract)
            raise WorkspaceProblem(
                f"cannot write: {exc.strerror or exc}",
                where=str(where),
                fix="check the folder's ownership, permissions and free space",
            ) from None
        raise
