"""What makes a file a simulator world, and the contract of the one simulator serving it.

**The world marker.** A simulator database carries a table ``sim_world(key, value)``:

    format            "cutover-simulator"
    schema_version    "1"   (:data:`WORLD_SCHEMA_VERSION`, the world format this simulator reads)
    seed_started_at   ISO-8601 UTC, written first by a seed
    seed_finished_at  ISO-8601 UTC, written as the very last step of a seed

:func:`check_world` reads it from a file opened read-only (SQLite ``immutable`` or ``mode=ro``
URI: nothing is written, no ``-wal``/``-shm`` file is created) before anything opens the file
read-write; ``serve`` opens only a complete world. :func:`is_simulator_database` says whether
``cutover sim seed --force`` may replace a file: a marked world (finished or not) or a database
with the simulator's own tables but no marker (seeded before the marker existed); never
anything else.

**Serving.** While a simulator serves ``<db>`` (the resolved path, so every spelling of it is
the same database) it holds an exclusive ``fcntl.flock`` on ``<db>.serving.lock`` (which also
holds its pid) for its whole life, and publishes ``<db>.serving.json`` (mode 0600, written to
a temporary file and renamed) once it listens::

    {"url": "http://127.0.0.1:PORT", "admin_token": "...", "pid": N, "started_at": "ISO-8601 UTC"}

It removes the json when it stops; the lock file stays (removing a lock file races with the
next taker). A json whose lock is not held is stale and means nothing. :func:`running_simulator`
is how another process finds a running simulator of a database.

Imports only the standard library and :mod:`cutover.errors`: the core may import this module.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import sqlite3
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cutover.errors import InputError, WorkspaceProblem

__all__ = [
    "FORMAT",
    "MARKER_TABLE",
    "WORLD_SCHEMA_VERSION",
    "RunningSimulator",
    "ServingLock",
    "WorldInfo",
    "check_world",
    "is_served",
    "is_simulator_database",
    "mark_finished",
    "mark_started",
    "running_simulator",
    "serving_json_path",
    "serving_lock_path",
]

FORMAT = "cutover-simulator"
MARKER_TABLE = "sim_world"
#: The world format this simulator reads. Bump it when a world seeded before can no longer be served.
WORLD_SCHEMA_VERSION = 1
#: Tables only the simulator's own layout has: a database with all of them and no marker was
#: seeded before the marker existed.
SIMULATOR_TABLES = frozenset({"sim_settings", "sim_maps", "sim_identities", "dv_salesorders"})
SQLITE_HEADER = b"SQLite format 3\x00"

RESEED = "seed a new one with: cutover sim seed --db NEW (or replace this one with --force)"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# --- the marker ---------------------------------------------------------------------------------


def mark_started(conn: sqlite3.Connection, *, schema_version: int = WORLD_SCHEMA_VERSION) -> None:
    """The first write of a seed: this database is a simulator world, not yet finished."""
    conn.execute(f"CREATE TABLE IF NOT EXISTS {MARKER_TABLE} (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute(f"DELETE FROM {MARKER_TABLE}")
    conn.executemany(
        f"INSERT INTO {MARKER_TABLE}(key, value) VALUES (?, ?)",
        [("format", FORMAT), ("schema_version", str(int(schema_version))), ("seed_started_at", _now())],
    )


def mark_finished(conn: sqlite3.Connection) -> None:
    """The very last write of a seed: the world is complete."""
    conn.execute(
        f"INSERT INTO {MARKER_TABLE}(key, value) VALUES ('seed_finished_at', ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (_now(),),
    )


@dataclass(frozen=True)
class WorldInfo:
    """A complete simulator world, as its marker describes it."""

    path: Path
    schema_version: int
    seed_started_at: str
    seed_finished_at: str


@dataclass(frozen=True)
class _Inspection:
    # missing | not-regular | empty | not-sqlite | foreign | unseeded | pre-marker | unfinished | other-version | world
    kind: str
    marker: dict[str, str]
    detail: str = ""


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:
        return False


def _read_only_uri(path: Path) -> str:
    """A URI that opens ``path`` without writing anything beside or into it.

    ``immutable=1`` takes no locks and creates no ``-wal``/``-shm``; it is right unless a
    ``-wal`` is there (a simulator serving it, or one that crashed): then ``mode=ro`` reads the
    committed pages of the log too (its ``-shm`` is already there)."""
    real = path.resolve()
    uri = real.as_uri()
    wal, shm = Path(f"{real}-wal"), Path(f"{real}-shm")
    if wal.exists() and shm.exists():
        return f"{uri}?mode=ro"
    return f"{uri}?immutable=1"


def _inspect(path: Path) -> _Inspection:
    path = Path(path)
    if not path.exists():
        return _Inspection("missing", {})
    if not _regular(path):
        return _Inspection("not-regular", {})
    try:
        with open(path, "rb") as f:
            head = f.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise WorkspaceProblem(
            f"cannot read: {exc.strerror or exc}", where=str(path), fix="check the file's ownership and permissions"
        ) from None
    if not head:
        return _Inspection("empty", {})
    if head != SQLITE_HEADER:
        return _Inspection("not-sqlite", {})
    try:
        conn = sqlite3.connect(_read_only_uri(path), uri=True)
    except sqlite3.Error as exc:
        return _Inspection("not-sqlite", {}, str(exc))
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        marker: dict[str, str] = {}
        if MARKER_TABLE in tables:
            marker = {str(k): str(v) for k, v in conn.execute(f"SELECT key, value FROM {MARKER_TABLE}")}
        seeded = SIMULATOR_TABLES <= tables and conn.execute("SELECT 1 FROM dv_salesorders LIMIT 1").fetchone()
    except sqlite3.DatabaseError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise WorkspaceProblem(
                f"the database is busy: {exc}", where=str(path), fix="wait for the program using it, then retry"
            ) from None
        return _Inspection("not-sqlite", {}, str(exc))
    finally:
        conn.close()
    if marker.get("format") == FORMAT:
        if marker.get("schema_version") != str(WORLD_SCHEMA_VERSION):
            return _Inspection("other-version", marker)
        if not marker.get("seed_finished_at"):
            return _Inspection("unfinished", marker)
        return _Inspection("world", marker)
    if not marker and SIMULATOR_TABLES <= tables:
        return _Inspection("pre-marker" if seeded else "unseeded", marker)
    return _Inspection("foreign", marker)


def check_world(path: Path) -> WorldInfo:
    """The complete simulator world at ``path``, read without writing anything.

    Raises :class:`InputError` (exit 2) with one line naming the path and the fix when ``path``
    is missing, not a regular file, empty, not SQLite, a SQLite database that is not a
    simulator world, a world whose seed did not finish, one seeded before worlds carried a
    marker, or one of another format version; :class:`WorkspaceProblem` (exit 3) when it cannot
    be read (permissions) or is busy.
    """
    path = Path(path)
    seen = _inspect(path)
    cannot = f"cannot open the simulator database {path}"
    problems = {
        "missing": ("no such file", f"create one with: cutover sim seed --db {path}"),
        "not-regular": ("not a regular file (a directory, device or pipe)", "name a file made by cutover sim seed"),
        "empty": ("the file is empty, not a simulator world", RESEED),
        "not-sqlite": ("not a SQLite database", "name a file made by cutover sim seed"),
        "foreign": (
            "a SQLite database that is not a simulator world (no cutover-simulator marker)",
            "name a file made by cutover sim seed",
        ),
        "unseeded": ("the simulator's tables are there but empty: it was never seeded", RESEED),
        "pre-marker": ("the world was seeded by an older cutover (it has no world marker)", RESEED),
        "unfinished": ("its seed never finished (half a world)", RESEED),
        "other-version": (
            f"world format version {seen.marker.get('schema_version')!r}, this simulator reads "
            f"version {WORLD_SCHEMA_VERSION}",
            RESEED,
        ),
    }
    if seen.kind in problems:
        message, fix = problems[seen.kind]
        raise InputError(f"{cannot}: {message}", fix=fix)
    return WorldInfo(
        path=path,
        schema_version=int(seen.marker["schema_version"]),
        seed_started_at=seen.marker.get("seed_started_at", ""),
        seed_finished_at=seen.marker["seed_finished_at"],
    )


def is_simulator_database(path: Path) -> bool:
    """Whether ``path`` is a simulator database that ``seed --force`` may replace: a marked world
    (finished or not, any format version) or one with the simulator's tables and no marker."""
    return _inspect(Path(path)).kind in {"world", "unfinished", "other-version", "pre-marker", "unseeded"}


# --- the one simulator serving a database ---------------------------------------------------------


def _served(db: Path) -> Path:
    """The real file behind ``db``: every spelling (relative, ``..``, a symlink) is one database."""
    return Path(os.path.realpath(db))


def serving_lock_path(db: Path) -> Path:
    real = _served(db)
    return real.with_name(real.name + ".serving.lock")


def serving_json_path(db: Path) -> Path:
    real = _served(db)
    return real.with_name(real.name + ".serving.json")


@dataclass(frozen=True)
class RunningSimulator:
    """A simulator serving a database right now (its lock is held)."""

    url: str
    admin_token: str
    pid: int
    started_at: str = ""


def _lock_holder_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def _read_runfile(db: Path) -> RunningSimulator | None:
    try:
        data = json.loads(serving_json_path(db).read_text(encoding="utf-8"))
        return RunningSimulator(
            url=str(data["url"]),
            admin_token=str(data["admin_token"]),
            pid=int(data["pid"]),
            started_at=str(data.get("started_at", "")),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _held(fd: int) -> bool:
    """Whether another open file holds the flock on ``fd``'s file (probes with a shared lock)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False


def is_served(db: Path) -> bool:
    """Whether some simulator holds ``db``'s serving lock right now (published or still starting)."""
    try:
        fd = os.open(serving_lock_path(db), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return _held(fd)
    finally:
        os.close(fd)


def running_simulator(db: Path, *, wait: float = 5.0) -> RunningSimulator | None:
    """The simulator serving ``db`` right now, or None.

    One is returned only if ``<db>.serving.lock`` is really held (a non-blocking shared
    ``flock`` cannot be taken) and ``<db>.serving.json`` names the lock holder's pid. A
    simulator that holds the lock but has not published its json yet (it is starting) is
    waited for up to ``wait`` seconds. Creates no file: no lock file, no simulator.
    """
    try:
        fd = os.open(serving_lock_path(db), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise WorkspaceProblem(
            f"cannot read the simulator's lock file: {exc.strerror or exc}",
            where=str(serving_lock_path(db)),
            fix="check the folder's ownership and permissions",
        ) from None
    try:
        deadline = time.monotonic() + wait
        while _held(fd):
            found = _read_runfile(db)
            holder = _lock_holder_pid(fd)
            if found is not None and (holder is None or found.pid == holder):
                return found
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)
        return None
    finally:
        os.close(fd)


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600: a temporary file beside it, renamed into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class ServingLock:
    """The serving side of the contract: ``acquire`` (exclusive, for the server's whole life),
    ``publish`` once listening, ``release`` when stopping (idempotent)."""

    #: A brief shared probe by :func:`running_simulator` must not read as "someone serves it".
    ACQUIRE_PATIENCE = 1.0

    def __init__(self, db: Path):
        self.db = Path(db)
        self.lock_path = serving_lock_path(self.db)
        self.json_path = serving_json_path(self.db)
        self._fd: int | None = None
        self._published = False

    def acquire(self) -> None:
        """Take the lock, or raise :class:`WorkspaceProblem` (exit 3) naming the simulator
        that holds it (its URL and pid)."""
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise WorkspaceProblem(
                f"cannot create the simulator's lock file: {exc.strerror or exc}",
                where=str(self.lock_path),
                fix="check the folder's ownership and permissions",
            ) from None
        deadline = time.monotonic() + self.ACQUIRE_PATIENCE
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                holder = _lock_holder_pid(fd)
                os.close(fd)
                raise WorkspaceProblem(self._busy_message(holder), fix="stop that simulator first, or use it") from None
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                    raise WorkspaceProblem(
                        f"cannot lock {self.lock_path}: {exc.strerror or exc}",
                        fix="keep the simulator database on a local file system",
                    ) from None
                raise
        self._fd = fd
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        # A json left by a simulator that died without cleaning up means nothing any more.
        with contextlib.suppress(FileNotFoundError):
            self.json_path.unlink()

    def _busy_message(self, holder: int | None) -> str:
        found = _read_runfile(self.db)
        if found is not None and (holder is None or found.pid == holder):
            return f"{self.db} is already served by the simulator at {found.url} (pid {found.pid})"
        who = f"pid {holder}" if holder else "another process"
        return f"{self.db} is already served by a simulator ({who}, still starting)"

    def publish(self, url: str, admin_token: str) -> RunningSimulator:
        """Write ``<db>.serving.json`` (mode 0600, atomically) for a simulator listening at ``url``."""
        if self._fd is None:
            raise RuntimeError("publish() before acquire()")
        running = RunningSimulator(url=url, admin_token=admin_token, pid=os.getpid(), started_at=_now())
        payload = {"url": url, "admin_token": admin_token, "pid": running.pid, "started_at": running.started_at}
        try:
            _write_private(self.json_path, json.dumps(payload) + "\n")
        except OSError as exc:
            raise WorkspaceProblem(
                f"cannot write the simulator's run file: {exc.strerror or exc}",
                where=str(self.json_path),
                fix="check the folder's ownership, permissions and free space",
            ) from None
        self._published = True
        return running

    def release(self) -> None:
        """Remove our json (never another simulator's) and let the lock go. Safe to call twice."""
        if self._fd is None:
            return
        if self._published:
            found = _read_runfile(self.db)
            if found is not None and found.pid == os.getpid():
                with contextlib.suppress(OSError):
                    self.json_path.unlink()
            self._published = False
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> ServingLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
