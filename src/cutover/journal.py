"""The journal: an append-only, hash-chained record of everything a cutover run did.

``<workspace>/journal.sqlite`` holds one row per event — a step started or ended, an
attestation with who and when, a check with its figures, an error. It is what a dropped
terminal resumes from, and what an auditor reads a year later. Rules:

- **Append-only.** Rows are only ever inserted; triggers refuse UPDATE and DELETE, so a
  mistake in the tool cannot rewrite history (someone with the file and sqlite3 still can —
  which is why the rows are chained).
- **Chained.** Each row carries the SHA-256 of the row before it (``prev``) and its own hash
  over its content and ``prev`` (:func:`row_hash`). The first row's ``prev`` is 64 zeros.
  :meth:`Journal.verify` recomputes the chain and names the first row that was edited,
  inserted, deleted or moved.
- **Anchored outside.** A chain cannot see its own tail being cut off, so the head (sequence
  number and hash of the last row) is also written to ``<workspace>/journal.head.json`` at each
  step's end, printed to the operator, and copied into the run summary and the evidence pack;
  ``verify(expected_head=…)`` then detects a truncated or rewritten tail too.
- **One writer** per workspace and environment (:class:`WriterLock`): a second ``run``, ``tui``,
  ``migrate``, ``invoice`` or ``rollback`` on the same environment is refused, naming the
  process that holds it and since when. Readers (``status``, ``verify``, ``export``) need no lock.
- **Same inputs.** A run records the SHA-256 of the extract and mapping file and the cutover
  date when it starts (:meth:`Journal.run_inputs`); resuming with other inputs is refused,
  naming what changed (:func:`check_same_inputs`).

Timestamps are UTC ISO-8601 with microseconds. ``data`` is canonical JSON (sorted keys, no
floats: money travels as text), so the hash is the same on every machine.
"""

from __future__ import annotations

import csv
import datetime as dt
import fcntl
import getpass
import hashlib
import io
import json
import os
import socket
import sqlite3
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from .errors import InputError, WorkspaceProblem
from .files import write_private_file

JOURNAL_FILE = "journal.sqlite"
HEAD_FILE = "journal.head.json"
GENESIS = "0" * 64

_SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (
    seq     INTEGER PRIMARY KEY,
    at      TEXT NOT NULL,
    env     TEXT NOT NULL,
    kind    TEXT NOT NULL,
    step    TEXT,
    actor   TEXT,
    data    TEXT NOT NULL,
    prev    TEXT NOT NULL,
    hash    TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS journal_no_update BEFORE UPDATE ON journal
BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TRIGGER IF NOT EXISTS journal_no_delete BEFORE DELETE ON journal
BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
"""


def _canonical(value: Any) -> str:
    def default(o: object) -> object:
        if isinstance(o, Decimal):
            return str(o)
        if isinstance(o, (dt.date, dt.datetime)):
            return o.isoformat()
        if isinstance(o, Path):
            return str(o)
        raise TypeError(f"{type(o).__name__} cannot go into the journal")

    def refuse_floats(o: Any) -> None:
        if isinstance(o, float):
            raise TypeError("a float cannot go into the journal (money is Decimal, written as text)")
        if isinstance(o, Mapping):
            for v in o.values():
                refuse_floats(v)
        elif isinstance(o, (list, tuple)):
            for v in o:
                refuse_floats(v)

    refuse_floats(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=default)


def row_hash(seq: int, at: str, env: str, kind: str, step: str | None, actor: str | None, data: str, prev: str) -> str:
    """SHA-256 over a row's content and the hash of the row before it."""
    content = _canonical([seq, at, env, kind, step, actor, data, prev])
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class Entry:
    seq: int
    at: str
    env: str
    kind: str
    step: str | None
    actor: str | None
    data: dict[str, Any]
    prev: str
    hash: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "env": self.env,
            "kind": self.kind,
            "step": self.step,
            "actor": self.actor,
            "data": self.data,
            "prev": self.prev,
            "hash": self.hash,
        }


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str

    def __str__(self) -> str:
        return f"row {self.seq}, sha256 {self.hash}"


@dataclass(frozen=True)
class Verification:
    """The outcome of :meth:`Journal.verify`: ``ok``, the rows checked, and the first problem."""

    ok: bool
    rows: int
    head: Head | None
    problem: str | None = None
    row: int | None = None  # the first row concerned


@dataclass(frozen=True)
class RunInputs:
    extract_sha256: str
    mapping_sha256: str | None
    cutover_date: str
    extract_path: str
    mapping_path: str | None

    @classmethod
    def of(cls, extract: Path, mapping: Path | None, cutover_date: dt.date | str) -> RunInputs:
        return cls(
            extract_sha256=file_sha256(extract),
            mapping_sha256=file_sha256(mapping) if mapping else None,
            cutover_date=str(cutover_date),
            extract_path=str(Path(extract).resolve()),
            mapping_path=str(Path(mapping).resolve()) if mapping else None,
        )


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class Journal:
    """The journal of one workspace. Open it with :meth:`open`; close it when done."""

    def __init__(self, workspace: Path, conn: sqlite3.Connection):
        self.workspace = workspace
        self.path = workspace / JOURNAL_FILE
        self._conn = conn

    @classmethod
    def open(cls, workspace: str | Path, *, create: bool = True) -> Journal:
        workspace = Path(workspace)
        path = workspace / JOURNAL_FILE
        if not create and not path.exists():
            raise InputError(f"there is no journal in {workspace}", fix="check --workspace; a run creates the journal")
        try:
            workspace.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, isolation_level=None, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise WorkspaceProblem(
                f"the journal {path} cannot be opened: {exc}", fix="check the file; never edit it"
            ) from None
        except OSError as exc:
            raise WorkspaceProblem(f"the journal {path} cannot be opened: {exc.strerror or exc}") from None
        os.chmod(path, 0o600)
        return cls(workspace, conn)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- writing ------------------------------------------------------------------------------

    def append(
        self,
        kind: str,
        *,
        env: str,
        step: str | None = None,
        actor: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> Entry:
        """Append one event; returns it with its hash. Durable before it returns."""
        payload = _canonical(dict(data or {}))
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            last = conn.execute("SELECT seq, hash FROM journal ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
            at = _now()
            digest = row_hash(seq, at, env, kind, step, actor, payload, prev)
            conn.execute(
                "INSERT INTO journal (seq, at, env, kind, step, actor, data, prev, hash) VALUES (?,?,?,?,?,?,?,?,?)",
                (seq, at, env, kind, step, actor, payload, prev, digest),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return Entry(seq, at, env, kind, step, actor, json.loads(payload), prev, digest)

    def record_head(self) -> Head | None:
        """Write the current head outside the database (``journal.head.json``); returns it."""
        head = self.head()
        if head is not None:
            write_private_file(
                self.workspace / HEAD_FILE, _canonical({"seq": head.seq, "hash": head.hash, "at": _now()}).encode()
            )
        return head

    # --- reading ------------------------------------------------------------------------------

    def entries(self, env: str | None = None, since: int = 0) -> Iterator[Entry]:
        sql = "SELECT seq, at, env, kind, step, actor, data, prev, hash FROM journal WHERE seq > ?"
        args: list[Any] = [since]
        if env is not None:
            sql += " AND env = ?"
            args.append(env)
        for row in self._conn.execute(sql + " ORDER BY seq", args):
            yield Entry(row[0], row[1], row[2], row[3], row[4], row[5], json.loads(row[6]), row[7], row[8])

    def head(self) -> Head | None:
        last = self._conn.execute("SELECT seq, hash FROM journal ORDER BY seq DESC LIMIT 1").fetchone()
        return Head(last[0], last[1]) if last else None

    def recorded_head(self) -> Head | None:
        """The head last written outside the database, if any."""
        try:
            info = json.loads((self.workspace / HEAD_FILE).read_text(encoding="utf-8"))
            return Head(int(info["seq"]), str(info["hash"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def run_inputs(self, env: str) -> RunInputs | None:
        """The inputs the environment's run started with (its latest ``run.started``)."""
        found = None
        for entry in self.entries(env):
            if entry.kind == "run.started" and entry.data.get("inputs"):
                found = RunInputs(**entry.data["inputs"])
        return found

    # --- checking -----------------------------------------------------------------------------

    def verify(self, expected_head: Head | None = None) -> Verification:
        """Recompute the chain; the first edited, inserted, deleted or moved row is named.

        ``expected_head`` (default: the head recorded in ``journal.head.json``) also catches
        rows removed from the end, or a tail rewritten as a whole."""
        expected_head = expected_head if expected_head is not None else self.recorded_head()
        rows = self._conn.execute("SELECT seq, at, env, kind, step, actor, data, prev, hash FROM journal ORDER BY seq")
        prev_hash, expected_seq, count, head = GENESIS, 1, 0, None
        seen: dict[int, str] = {}
        for seq, at, env, kind, step, actor, data, prev, digest in rows:
            count += 1
            if seq != expected_seq:
                if seq > expected_seq:
                    what = (
                        f"row {expected_seq} is missing"
                        if seq == expected_seq + 1
                        else f"rows {expected_seq}–{seq - 1} are missing"
                    )
                    return Verification(False, count, head, f"{what}: rows were deleted before row {seq}", expected_seq)
                return Verification(False, count, head, f"row {seq} is out of order", seq)
            if row_hash(seq, at, env, kind, step, actor, data, prev) != digest:
                return Verification(
                    False, count, head, f"row {seq} was edited: its content does not match its hash", seq
                )
            if prev != prev_hash:
                return Verification(
                    False,
                    count,
                    head,
                    f"row {seq} does not follow row {seq - 1}: a row was inserted, deleted or moved before it",
                    seq,
                )
            seen[seq] = digest
            prev_hash, expected_seq, head = digest, seq + 1, Head(seq, digest)
        if expected_head is not None:
            if head is None or head.seq < expected_head.seq:
                last = head.seq if head else 0
                return Verification(
                    False,
                    count,
                    head,
                    f"the journal ends at row {last}, but its head was recorded at {expected_head}: rows were removed from the end",
                    last + 1,
                )
            if seen.get(expected_head.seq) != expected_head.hash:
                return Verification(
                    False,
                    count,
                    head,
                    f"row {expected_head.seq} is not the row whose hash was recorded ({expected_head.hash}): the journal was rewritten",
                    expected_head.seq,
                )
        return Verification(True, count, head)

    # --- export -------------------------------------------------------------------------------

    def export(self, fmt: str = "jsonl", env: str | None = None) -> str:
        """The journal as JSON lines or CSV (``data`` as canonical JSON in one column)."""
        if fmt == "jsonl":
            return "".join(_canonical(e.as_dict()) + "\n" for e in self.entries(env))
        if fmt == "csv":
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(["seq", "at", "env", "kind", "step", "actor", "data", "prev", "hash"])
            for e in self.entries(env):
                writer.writerow(
                    [e.seq, e.at, e.env, e.kind, e.step or "", e.actor or "", _canonical(e.data), e.prev, e.hash]
                )
            return out.getvalue()
        raise InputError(f"{fmt!r} is not an export format", fix="use jsonl or csv")


def check_same_inputs(recorded: RunInputs | None, now: RunInputs) -> None:
    """Refuse (exit 2) to resume a run with inputs other than the ones it started with."""
    if recorded is None:
        return
    changed = []
    if recorded.extract_sha256 != now.extract_sha256:
        changed.append(
            f"the extract ({recorded.extract_path} had sha256 {recorded.extract_sha256[:12]}…, {now.extract_path} has {now.extract_sha256[:12]}…)"
        )
    if recorded.mapping_sha256 != now.mapping_sha256:
        changed.append(f"the mapping file ({recorded.mapping_path or 'none'} → {now.mapping_path or 'none'})")
    if recorded.cutover_date != now.cutover_date:
        changed.append(f"the cutover date ({recorded.cutover_date} → {now.cutover_date})")
    if changed:
        raise InputError(
            "this run started with other inputs; changed: " + "; ".join(changed),
            fix="resume with the same files and cutover date, or start a new run in a new workspace",
        )


class WriterBusy(WorkspaceProblem):
    """Another process is writing this workspace's journal for the same environment."""


class WriterLock:
    """The one-writer lock of a workspace and environment: ``<workspace>/.locks/<env>.lock``
    (an exclusive ``flock`` held for the writer's life, released by the kernel however it
    ends) and ``<env>.holder.json`` beside it saying who holds it (pid, host, user, command,
    since)."""

    def __init__(self, workspace: str | Path, env: str, command: str | None = None):
        self.folder = Path(workspace) / ".locks"
        self.env = env
        self.command = command or " ".join(["cutover", *sys.argv[1:]])
        self.lock_path = self.folder / f"{env}.lock"
        self.holder_path = self.folder / f"{env}.holder.json"
        self._fd: int | None = None

    def holder(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.holder_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def acquire(self) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            who = self.holder() or {}
            raise WriterBusy(
                f"environment '{self.env}' in {self.folder.parent} is being worked on by another process: "
                f"pid {who.get('pid', '?')} on {who.get('host', '?')} ({who.get('user', '?')}), "
                f"`{who.get('command', '?')}` since {who.get('since', '?')}",
                fix="wait for it to finish, or stop it; a second writer is never allowed (open the TUI read-only to watch)",
            ) from None
        self._fd = fd
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "user": _user(),
            "command": self.command,
            "since": _now(),
            "env": self.env,
        }
        write_private_file(self.holder_path, _canonical(info).encode())

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.holder_path.unlink(missing_ok=True)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> WriterLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment (a container without passwd entry)
        return str(os.getuid())
