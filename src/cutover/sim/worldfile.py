"""A simulator database file with its seeded world and legacy extract: where the extract goes
by default, and creating (or replacing) the file.

This is what ``cutover sim seed`` and ``cutover demo`` do, without the printing: it never
prints and never exits. Problems the operator can fix are :class:`cutover.errors.InputError`
(exit 2): the file exists and ``force`` is not set, an unknown scale or override, a count the
generator refuses. A file that cannot be written is :class:`cutover.errors.WorkspaceProblem`
(exit 3).
"""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
from collections.abc import Callable, Mapping
from pathlib import Path

from cutover.errors import InputError, WorkspaceProblem

from . import seed as seeding
from .seed import SCALES, SeedSummary
from .store import connect

__all__ = ["SCALE_NAMES", "SCALE_OVERRIDES", "SeedSummary", "default_extract_path", "seed_database"]

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
_SQLITE_SUFFIXES = ("", "-wal", "-shm")


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
    file (its ``-wal`` and ``-shm`` companions too). ``progress(stage, done, total)`` is passed
    to :func:`cutover.sim.seed.seed_world`. Returns the seed summary (its ``extract_path`` is
    where the extract was written).
    """
    db = Path(db)
    if scale not in SCALES:
        raise InputError(f"unknown scale {scale!r}", fix=f"use one of {', '.join(SCALE_NAMES)}")
    chosen = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = sorted(set(chosen) - set(_FLAG))
    if unknown:
        raise InputError(f"unknown scale override(s) {', '.join(unknown)}", fix=f"override only {', '.join(_FLAG)}")
    spec = SCALES[scale]
    scale_name = scale
    if chosen:
        try:
            spec = dataclasses.replace(spec, **chosen)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        scale_name = f"{scale}+custom"
    extract = Path(extract) if extract is not None else default_extract_path(db)
    if db.is_dir():
        raise InputError(
            "is a directory, not a simulator database file", where=str(db), fix="choose a file name for --db"
        )
    if extract.is_dir():
        raise InputError(
            "is a directory, not a file for the legacy extract",
            where=str(extract),
            fix="choose a file name for --extract",
        )
    if db.exists():
        if not force:
            raise InputError("already exists", where=str(db), fix="use --force to replace it, or choose another --db")
        try:
            for suffix in _SQLITE_SUFFIXES:
                Path(str(db) + suffix).unlink(missing_ok=True)
        except OSError as exc:
            raise WorkspaceProblem(
                f"cannot replace the simulator database: {exc.strerror or exc}", where=str(db)
            ) from None
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
        conn = connect(db)
    except (OSError, sqlite3.Error) as exc:
        raise WorkspaceProblem(
            f"cannot create the simulator database: {getattr(exc, 'strerror', None) or exc}", where=str(db)
        ) from None
    try:
        try:
            return seeding.seed_world(
                conn, spec, seed=seed, scale_name=scale_name, extract_path=extract, progress=progress
            )
        finally:
            conn.close()
    except BaseException as exc:
        _remove(db)  # half a world is no world: the next attempt needs no --force
        if isinstance(exc, ValueError):
            raise InputError(str(exc)) from None
        if isinstance(exc, (OSError, sqlite3.Error)):
            where = getattr(exc, "filename", None) or str(extract)
            raise WorkspaceProblem(f"cannot write: {getattr(exc, 'strerror', None) or exc}", where=str(where)) from None
        raise


def _remove(db: Path) -> None:
    for suffix in _SQLITE_SUFFIXES:
        with contextlib.suppress(OSError):
            Path(str(db) + suffix).unlink(missing_ok=True)
