"""The demo: a small rehearsal world in a workspace, and the profile that opens it.

``cutover demo`` is the first thing a newcomer runs, so it must work on an empty folder and
again on the same folder the next day without destroying anything. :func:`prepare_demo`:

1. **Seeds once.** ``<workspace>/rehearsal.sqlite`` and its legacy extract
   ``<workspace>/legacy-milestones.csv`` are made by ``python -m cutover.sim seed --scale
   small`` in a child process (the core never imports the simulator). The seed writes both to
   temporary files and renames them only when both are complete, so an interrupted seed leaves
   nothing; an existing world is kept as it is — with its journal, the demo resumes.
2. **Never overwrites a file it did not make.** An extract without its world (someone's own
   ``legacy-milestones.csv``) is refused, and so is a profile named ``rehearsal`` that is not
   the demo's (another kind, or another database).
3. **Leaves an older world alone.** A ``rehearsal.sqlite`` the simulator will not serve (seeded
   by an older cutover, or not a complete world — asked with ``python -m cutover.sim check``)
   stays exactly as it is; a new world is seeded beside it (``rehearsal-2.sqlite`` with
   ``legacy-milestones-2.csv``, or the next free number), the demo's profile is pointed at it,
   and :attr:`DemoWorld.note` says so.
4. **Creates the profile** ``rehearsal`` (kind rehearsal, ``sim_db = "rehearsal.sqlite"``,
   relative to the workspace so the folder can move): every command then starts the
   simulator itself on a free loopback port, and stops it when done.

The seeded world's go-live date is :data:`DEMO_CUTOVER_DATE` — the cutover date a demo run
validates the extract against (rows dated after it would be refused). Stdlib only; no UI.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .config import Profile, load_config, update_config
from .errors import EnvironmentProblem, InputError, UsageError, WorkspaceProblem

DEMO_DB = "rehearsal.sqlite"
DEMO_EXTRACT = "legacy-milestones.csv"
DEMO_PROFILE = "rehearsal"
DEMO_CUTOVER_DATE = "2026-12-01"  # the seeded world's go-live date (cutover.sim.seed.WORLD_DATE)
SEED_TIMEOUT = 600.0


@dataclass(frozen=True)
class DemoWorld:
    """What :func:`prepare_demo` set up: where the world and its extract are, the profile name."""

    workspace: Path
    db: Path
    extract: Path
    profile: str
    cutover_date: str
    seeded: bool  # True: seeded just now; False: the workspace already had it
    note: str | None = None  # what the operator should know (an older world left alone)


def seed_command(db: Path, extract: Path) -> list[str]:
    """The child process that seeds the demo world (the simulator's own entry point)."""
    return [sys.executable, "-m", "cutover.sim", "seed", "--db", str(db), "--extract", str(extract), "--scale", "small"]


def _seed(db: Path, extract: Path, timeout: float) -> None:
    env = dict(os.environ)
    # the child must import this very checkout or installation, whatever the caller's sys.path
    src = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    try:
        done = subprocess.run(
            seed_command(db, extract),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired:
        raise EnvironmentProblem(
            f"seeding the demo world {db} took longer than {timeout:.0f} s", fix="check the disk and try again"
        ) from None
    except OSError as exc:
        raise EnvironmentProblem(f"could not start the seed of {db}: {exc.strerror or exc}") from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        text = detail[-1].removeprefix("error: ") if detail else f"exit code {done.returncode}"
        kind = InputError if done.returncode == 2 else WorkspaceProblem
        raise kind(f"the demo world could not be seeded: {text}", where=str(db))


def _servable(db: Path) -> str | None:
    """None when the simulator would serve ``db``; else its reason, in one line."""
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "cutover.sim", "check", "--db", str(db)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"it could not be checked ({exc})"
    if done.returncode == 0:
        return None
    lines = (done.stderr or done.stdout).strip().splitlines()
    return lines[-1].removeprefix("error: ") if lines else f"exit code {done.returncode}"


def _current_demo_world(workspace: Path) -> tuple[Path, Path] | None:
    """The world an earlier demo moved its profile to (``rehearsal-N.sqlite``), with its extract."""
    profile = load_config(workspace).profiles.get(DEMO_PROFILE)
    db = profile.sim_db_path(workspace) if profile is not None and profile.kind == "rehearsal" else None
    stem = Path(DEMO_DB).stem
    if db is None or db.name == DEMO_DB or not db.stem.startswith(f"{stem}-") or not db.exists():
        return None
    extract = db.with_name(f"{Path(DEMO_EXTRACT).stem}{db.stem[len(stem) :]}.csv")
    return db, extract


def _fresh_names(workspace: Path) -> tuple[Path, Path]:
    """The first ``rehearsal-N.sqlite`` / ``legacy-milestones-N.csv`` pair that does not exist."""
    db_stem, extract_stem = Path(DEMO_DB).stem, Path(DEMO_EXTRACT).stem
    n = 2
    while True:
        db = workspace / f"{db_stem}-{n}.sqlite"
        extract = workspace / f"{extract_stem}-{n}.csv"
        if not db.exists() and not extract.exists():
            return db, extract
        n += 1


def _ensure_profile(workspace: Path, db: Path, *, replaces: Path | None = None) -> None:
    relative = db.name if db.parent.resolve() == workspace.resolve() else str(db)
    wanted = Profile(name=DEMO_PROFILE, kind="rehearsal", sim_db=relative)
    existing = load_config(workspace).profiles.get(DEMO_PROFILE)
    if existing is not None:
        current = (existing.sim_db_path(workspace) or Path()).resolve()
        mine = existing.kind == "rehearsal" and current == db.resolve()
        if mine:
            return
        if existing.kind == "rehearsal" and replaces is not None and current == replaces.resolve():
            update_config(workspace, lambda config: config.add(wanted, replace=True))
            return
        raise UsageError(
            f"the workspace already has a profile '{DEMO_PROFILE}' that is not the demo's "
            f"(kind {existing.kind}, database {existing.sim_db or 'none'})",
            where=str(workspace / "cutover.toml"),
            fix="run the demo in another folder: cutover demo --workspace DIR",
        )

    def add(config) -> None:
        if DEMO_PROFILE not in config.profiles:
            config.add(wanted)

    update_config(workspace, add)


def prepare_demo(workspace: Path, *, timeout: float = SEED_TIMEOUT) -> DemoWorld:
    """Seed the demo world into ``workspace`` (first time only) and make its profile."""
    workspace = Path(workspace)
    try:
        workspace.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WorkspaceProblem(f"the workspace {workspace} cannot be created: {exc.strerror or exc}") from None
    db, extract = workspace / DEMO_DB, workspace / DEMO_EXTRACT
    seeded = False
    note = None
    replaces = None
    current = _current_demo_world(workspace)
    if current is not None:  # the demo moved to a new world earlier: keep using it
        db, extract = current
    elif db.exists() and (reason := _servable(db)) is not None:
        replaces = db
        db, extract = _fresh_names(workspace)
        note = (
            f"{replaces.name} cannot be served ({reason}); it is left as it is, and a new demo world "
            f"was seeded beside it in {db.name}"
        )
    if not db.exists():
        if extract.exists():
            raise InputError(
                f"{extract.name} exists but the demo world does not; it is not the demo's to replace",
                where=str(extract),
                fix="move that file away, or run the demo in another folder (--workspace DIR)",
            )
        _seed(db, extract, timeout)
        seeded = True
    elif not extract.exists():
        older = db.with_name(f"{db.stem}-legacy-extract.csv")  # where an earlier demo put it
        if not older.exists():
            raise InputError(
                f"the demo world {db.name} has no legacy extract beside it",
                where=str(workspace),
                fix=f"seed it again: python -m cutover.sim seed --db {db} --extract {extract} --force",
            )
        extract = older
    _ensure_profile(workspace, db, replaces=replaces)
    return DemoWorld(workspace, db, extract, DEMO_PROFILE, DEMO_CUTOVER_DATE, seeded, note)


__all__ = ["DEMO_CUTOVER_DATE", "DEMO_DB", "DEMO_EXTRACT", "DEMO_PROFILE", "DemoWorld", "prepare_demo", "seed_command"]
