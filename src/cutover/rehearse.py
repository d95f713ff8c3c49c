"""``cutover rehearse``: a whole go-live night against a fresh simulator world, mistakes included.

The orchestration behind the command (the command only parses and prints). :func:`rehearse`
does, in order:

1. **A new workspace.** Default ``./rehearsals/<UTC timestamp>/`` (:func:`new_workspace`); a
   folder that exists and is not empty is refused (exit 2): a rehearsal never writes over
   another one's journal, snapshots or world.
2. **A fresh world** in it: ``rehearsal.sqlite`` and its extract ``legacy-milestones.csv``,
   seeded by ``python -m cutover.sim seed --scale …`` in a child process (the core never
   imports the simulator), or copied from an already seeded world (``world=``: its extract is
   the ``.csv`` beside it, or ``<stem>-legacy-extract.csv``).
3. **The extract fault** ``uninvoiced-row-in-extract``: one ``NotInvoiced`` row relabelled
   ``Invoiced``, its legacy invoice number emptied (:func:`relabel_uninvoiced_row`).
4. **The profile** ``rehearsal`` (kind rehearsal, ``sim_db = "rehearsal.sqlite"``, relative to
   the workspace so the folder can move).
5. **The run, as a child process**: ``python -m cutover.cli run --env rehearsal --unattended
   --until snapshot.after …`` (:func:`run_command`). The child performs the manual steps in the
   simulator with the faults asked for, and applies the setting faults (asynchronous invoice
   integration, throttling, background invoice jobs, map state withheld) on its first run only —
   the journal then holds a run, and a resumed run does not apply them again.
6. **Crash faults** (``crash-mid-load``, ``crash-mid-invoicing``): the journal is watched while
   the child runs, and the child is killed with SIGKILL as soon as the migration (a
   ``ChunkLoaded`` of ``migrate.milestones``) or the invoicing (the first create sent by
   ``invoice.create``) has written; once the simulator it started has gone too (and, with
   background invoice jobs, once those are due), the same command runs again and resumes.
7. **Afterwards**: with ``blind``, the map state is shown again, so the validation suite
   (``cutover verify``) can read what the run could not; the per-step timings
   (:func:`step_timings`, step.started → step.finished, summed over attempts) and, with
   ``compare``, an earlier rehearsal's beside them.

The outcome's ``exit_code`` is the last run's: 0 done, 1 the runbook stopped at a mistake (the
journal's ``run.finished`` names the step and the reason), 2 bad input, 3 the environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime as dt
import io
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .config import Profile, update_config
from .demo import DEMO_CUTOVER_DATE
from .errors import EXIT_INTERNAL, EnvironmentProblem, InputError, UsageError, WorkspaceProblem
from .journal import JOURNAL_FILE, Entry, Journal
from .rehearsal import CRASH_FAULTS, check_faults
from .simprocess import serving

__all__ = [
    "BACKGROUND_DELAY_S",
    "CRASH_POINTS",
    "CUTOVER_DATE",
    "LAST_STEP",
    "PROFILE",
    "REHEARSAL_DB",
    "REHEARSAL_EXTRACT",
    "SCALES",
    "Rehearsal",
    "RehearsalOutcome",
    "StepTiming",
    "check_workspace",
    "new_workspace",
    "rehearse",
    "relabel_uninvoiced_row",
    "run_command",
    "step_timings",
]

REHEARSAL_DB = "rehearsal.sqlite"
REHEARSAL_EXTRACT = "legacy-milestones.csv"
PROFILE = "rehearsal"
CUTOVER_DATE = DEMO_CUTOVER_DATE  # the seeded world's go-live date
SCALES = ("small", "medium", "large")
LAST_STEP = "snapshot.after"  # a rehearsal runs through the second snapshot; `cutover verify` follows
BACKGROUND_DELAY_S = 3.0  # --long-running: invoice create and confirm run this much later
EXTRACT_FAULT = "uninvoiced-row-in-extract"
SEED_TIMEOUT = 900.0
RUN_TIMEOUT = 3600.0
WATCH_INTERVAL = 0.01
SIMULATOR_GONE_TIMEOUT = 15.0


def _crashed_in_load(entry: Entry) -> bool:
    return (
        entry.kind == "step.progress"
        and entry.step == "migrate.milestones"
        and entry.data.get("message") == "ChunkLoaded"
    )


def _crashed_in_invoicing(entry: Entry) -> bool:
    figures = entry.data.get("figures") or {}
    return entry.kind == "step.progress" and entry.step == "invoice.create" and figures.get("action") == "create"


#: crash fault -> (what the watcher waits for in the journal, in words; the predicate)
CRASH_POINTS: dict[str, tuple[str, Callable[[Entry], bool]]] = {
    "crash-mid-load": ("the milestone load wrote its first chunk", _crashed_in_load),
    "crash-mid-invoicing": ("the first invoice create was sent", _crashed_in_invoicing),
}
#: crash fault -> (requests the simulator answers slowly while that run is watched, latency in ms).
#: A small world's load is one request and its step ends a moment later: without the slow-down the
#: run would often be past the step before the kill lands. Only the run that is to be killed is
#: slowed (the fault lives in that run's simulator process); the resumed run is not.
CRASH_SLOW_DOWN: dict[str, tuple[str, int]] = {
    "crash-mid-load": ("msdyn_contractlinescheduleofvalues", 400),
    "crash-mid-invoicing": ("NewInvoiceContract", 400),
}


# --- the workspace and the world ------------------------------------------------------------------


def new_workspace(base: Path | None = None, now: dt.datetime | None = None) -> Path:
    """``<base or cwd>/rehearsals/<UTC timestamp>/`` (a suffix when that name is taken)."""
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    folder = (base or Path.cwd()) / "rehearsals"
    candidate, n = folder / stamp, 1
    while candidate.exists():
        n += 1
        candidate = folder / f"{stamp}-{n}"
    return candidate.absolute()


def check_workspace(path: Path) -> Path:
    """Create the rehearsal's workspace; one that exists and is not empty is refused (exit 2)."""
    path = Path(path).expanduser().absolute()
    if path.exists():
        if not path.is_dir():
            raise InputError("the rehearsal workspace is not a folder", where=str(path), fix="choose a new folder")
        if any(path.iterdir()):
            raise InputError(
                "the rehearsal workspace is not empty; a rehearsal never writes over another",
                where=str(path),
                fix="choose a new folder with --workspace, or leave it out for a new ./rehearsals/<timestamp>/",
            )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WorkspaceProblem(
            f"the rehearsal workspace cannot be created: {exc.strerror or exc}", where=str(path)
        ) from None
    return path


def _child_env() -> dict[str, str]:
    """The environment of a child process: it imports this very checkout or installation."""
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("CUTOVER_ENV", None)
    return env


def _seed(db: Path, extract: Path, scale: str, timeout: float) -> str:
    cmd = [sys.executable, "-m", "cutover.sim", "seed", "--db", str(db), "--extract", str(extract), "--scale", scale]
    try:
        done = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, env=_child_env()
        )
    except (subprocess.TimeoutExpired, OSError) as exc:
        raise EnvironmentProblem(f"seeding the rehearsal world {db} failed: {exc}") from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        text = detail[-1].removeprefix("error: ") if detail else f"exit code {done.returncode}"
        raise (InputError if done.returncode == 2 else WorkspaceProblem)(
            f"the rehearsal world could not be seeded: {text}", where=str(db)
        )
    return done.stdout.strip()


def _world_extract(world: Path) -> Path:
    for candidate in (world.with_suffix(".csv"), world.with_name(f"{world.stem}-legacy-extract.csv")):
        if candidate.is_file():
            return candidate
    raise InputError(
        "the world to copy has no legacy extract beside it",
        where=str(world),
        fix=f"put its extract at {world.with_suffix('.csv')} (or seed a new world: leave out --world)",
    )


def _copy_world(world: Path, db: Path, extract: Path) -> str:
    world = Path(world).expanduser().absolute()
    if not world.is_file():
        raise InputError("the world to copy is not a file", where=str(world), fix="give a seeded simulator database")
    source_extract = _world_extract(world)
    try:
        src = sqlite3.connect(f"file:{world}?mode=ro", uri=True)
        try:
            dst = sqlite3.connect(db)
            try:
                src.backup(dst)
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.DatabaseError as exc:
        raise InputError(f"the world to copy cannot be read: {exc}", where=str(world)) from None
    extract.write_bytes(source_extract.read_bytes())
    return f"copied {world} and its extract {source_extract}"


def relabel_uninvoiced_row(extract: Path) -> str:
    """The ``uninvoiced-row-in-extract`` fault: the first ``NotInvoiced`` row becomes ``Invoiced``
    with an empty legacy invoice number. Returns its legacy id. The file is rewritten in place
    (it is the rehearsal's own copy), keeping its line endings."""
    raw = extract.read_bytes().decode("utf-8")
    newline = "\r\n" if "\r\n" in raw else "\n"
    rows = list(csv.reader(io.StringIO(raw, newline="")))
    if not rows:
        raise InputError("the rehearsal extract is empty", where=str(extract))
    header = rows[0]
    try:
        status, number, legacy = (header.index(c) for c in ("legacy_status", "legacy_invoice_number", "legacy_id"))
    except ValueError:
        raise InputError("the rehearsal extract lacks the legacy status columns", where=str(extract)) from None
    for row in rows[1:]:
        if len(row) > status and row[status] == "NotInvoiced":
            row[status], row[number] = "Invoiced", ""
            out = io.StringIO(newline="")
            csv.writer(out, lineterminator=newline).writerows(rows)
            extract.write_bytes(out.getvalue().encode("utf-8"))
            return row[legacy]
    raise InputError("the rehearsal extract has no NotInvoiced row to relabel", where=str(extract))


def _make_profile(workspace: Path) -> None:
    profile = Profile(name=PROFILE, kind="rehearsal", sim_db=REHEARSAL_DB)
    update_config(workspace, lambda config: config.add(profile))


# --- the run as a child process ------------------------------------------------------------------


def run_command(
    workspace: Path,
    extract: Path,
    faults: Iterable[str] = (),
    *,
    blind: bool = False,
    background_delay: float = 0.0,
    until: str = LAST_STEP,
) -> list[str]:
    """``python -m cutover.cli run --env rehearsal --unattended …``: the child that walks the runbook."""
    cmd = [sys.executable, "-m", "cutover.cli", "run", "--env", PROFILE, "--workspace", str(workspace)]
    cmd += ["--source", str(extract), "--cutover-date", CUTOVER_DATE, "--unattended", "--until", until]
    for fault in faults:
        if fault not in CRASH_FAULTS and fault != EXTRACT_FAULT:
            cmd += ["--rehearsal-fault", fault]
    if blind:
        cmd.append("--blind")
    if background_delay:
        cmd += ["--background-delay", f"{background_delay:g}"]
    return cmd


@dataclass(frozen=True)
class ChildRun:
    returncode: int
    killed_for: str | None = None  # the crash fault the child was killed for


async def _pump(stream: asyncio.StreamReader, on_line: Callable[[str], None]) -> None:
    while True:
        line = await stream.readline()
        if not line:
            return
        on_line(line.decode("utf-8", "replace").rstrip("\n"))


def _journal_seq(workspace: Path) -> int:
    if not (workspace / JOURNAL_FILE).exists():
        return 0
    with Journal.open(workspace, create=False) as journal:
        head = journal.head()
        return head.seq if head else 0


async def _slow_down(db: Path, crash: str) -> None:
    """Once the run's simulator serves ``db``, slow the requests of the step to be crashed."""
    from .rehearsal import SimulatorAdmin
    from .simprocess import ADMIN_HEADER

    while (info := serving(db)) is None:
        await asyncio.sleep(0.02)
    headers = {ADMIN_HEADER: str(info.get("admin_token") or ""), "Content-Type": "application/json"}
    admin = SimulatorAdmin(str(info["url"]), headers)
    path, latency = CRASH_SLOW_DOWN[crash]
    current = await admin.call("GET", "faults") or {}
    current.pop("script", None)
    await admin.faults(**{**current, "path_contains": path, "latency_ms": latency})


async def _run_child(
    cmd: list[str],
    workspace: Path,
    on_line: Callable[[str], None],
    crash: str | None,
    timeout: float,
) -> ChildRun:
    """Run the child; with ``crash``, SIGKILL it as soon as the journal shows its crash point."""
    since = _journal_seq(workspace)
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=_child_env(),
    )
    pump = asyncio.create_task(_pump(proc.stdout, on_line))
    waiter = asyncio.create_task(proc.wait())
    slow = asyncio.create_task(_slow_down(workspace / REHEARSAL_DB, crash)) if crash else None
    killed_for = None
    journal: Journal | None = None
    deadline = time.monotonic() + timeout
    try:
        while not waiter.done():
            if time.monotonic() > deadline:
                proc.kill()
                raise EnvironmentProblem(f"the rehearsal's run did not finish within {timeout:.0f} s; it was stopped")
            if crash is not None and killed_for is None:
                if journal is None and (workspace / JOURNAL_FILE).exists():
                    journal = Journal.open(workspace, create=False)
                if journal is not None:
                    _what, hit = CRASH_POINTS[crash]
                    for entry in journal.entries(PROFILE, since=since):
                        since = entry.seq
                        if hit(entry):
                            proc.send_signal(signal.SIGKILL)
                            killed_for = crash
                            break
            await asyncio.wait({waiter}, timeout=WATCH_INTERVAL)
        await pump
    finally:
        if slow is not None:
            slow.cancel()
            await asyncio.gather(slow, return_exceptions=True)
        if journal is not None:
            journal.close()
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        pump.cancel()
        await asyncio.gather(pump, return_exceptions=True)
    returncode = proc.returncode
    if killed_for is not None and returncode != -signal.SIGKILL:
        killed_for = None  # it ended by itself before the signal landed
    return ChildRun(returncode, killed_for)


async def _simulator_gone(db: Path, timeout: float = SIMULATOR_GONE_TIMEOUT) -> None:
    """Wait until no simulator serves ``db`` (the killed run's own notices its parent is gone)."""
    deadline = time.monotonic() + timeout
    while serving(db) is not None:
        if time.monotonic() > deadline:
            raise EnvironmentProblem(
                f"the simulator of the killed run still serves {db} after {timeout:.0f} s",
                fix="stop that simulator process (its pid is in the .serving.json beside the database)",
            )
        await asyncio.sleep(0.1)


async def _reveal_map_state(workspace: Path) -> None:
    """After a blind rehearsal: show the map state again, so that the validation suite can read it."""
    from .config import load_config
    from .rehearsal import SimulatorAdmin
    from .session import open_session

    profile = load_config(workspace).get(PROFILE)
    async with open_session(profile, workspace, read_only=True) as session:
        base, headers = session.simulator_admin()
        await SimulatorAdmin(base, headers).settings(map_state_hidden_from=[])


# --- timings --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepTiming:
    step: str
    seconds: float | None  # None: never started
    finished: bool
    attempts: int


def _at(entry: Entry) -> dt.datetime:
    return dt.datetime.fromisoformat(entry.at.replace("Z", "+00:00"))


def step_timings(workspace: Path, env: str = PROFILE) -> list[StepTiming]:
    """Per step of the latest run: seconds from ``step.started`` to its end (``step.finished``,
    failed or blocked, else its last entry before the run was interrupted), summed over attempts."""
    if not (Path(workspace) / JOURNAL_FILE).exists():
        raise InputError("there is no journal in this folder", where=str(workspace), fix="give a rehearsal's workspace")
    with Journal.open(workspace, create=False) as journal:
        entries = list(journal.entries(env))
    order: list[str] = []
    for e in entries:
        if e.kind == "run.started":
            order = list(dict.fromkeys([*order, *e.data.get("steps", ())]))
    spent: dict[str, float] = {}
    attempts: dict[str, int] = {}
    finished: set[str] = set()
    open_step: tuple[str, Entry, Entry] | None = None  # step, started, last seen

    def close() -> None:
        nonlocal open_step
        if open_step is not None:
            step, started, last = open_step
            spent[step] = spent.get(step, 0.0) + (_at(last) - _at(started)).total_seconds()
            open_step = None

    for e in entries:
        if e.kind in ("run.started", "run.finished"):
            close()
            continue
        if e.kind == "step.started" and e.step:
            close()
            open_step = (e.step, e, e)
            attempts[e.step] = attempts.get(e.step, 0) + 1
            continue
        if open_step is not None and e.step == open_step[0]:
            open_step = (open_step[0], open_step[1], e)
            if e.kind in ("step.finished", "step.failed", "step.blocked"):
                if e.kind == "step.finished":
                    finished.add(e.step)
                close()
        elif e.kind == "step.finished" and e.step:
            finished.add(e.step)
    close()
    return [StepTiming(s, spent.get(s), s in finished, attempts.get(s, 0)) for s in order]


def last_stop(workspace: Path, env: str = PROFILE) -> tuple[str | None, str]:
    """(step, reason) of the latest ``run.finished`` that did not finish the run, else (None, "")."""
    if not (Path(workspace) / JOURNAL_FILE).exists():
        return None, ""
    with Journal.open(workspace, create=False) as journal:
        last = None
        for e in journal.entries(env):
            if e.kind == "run.finished":
                last = e
    if last is None or last.data.get("ok"):
        return None, ""
    return last.data.get("stopped_at"), str(last.data.get("reason") or "")


# --- the rehearsal --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rehearsal:
    """What to rehearse."""

    workspace: Path
    scale: str = "small"
    faults: tuple[str, ...] = ()
    blind: bool = False
    long_running: bool = False
    background_delay: float = BACKGROUND_DELAY_S  # with long_running
    compare: Path | None = None
    world: Path | None = None  # copy this seeded world instead of seeding one
    until: str = LAST_STEP
    run_timeout: float = RUN_TIMEOUT


@dataclass
class RehearsalOutcome:
    workspace: Path
    extract: Path
    exit_code: int = EXIT_INTERNAL
    runs: int = 0
    crashes: list[str] = field(default_factory=list)
    stopped_at: str | None = None
    reason: str = ""
    timings: list[StepTiming] = field(default_factory=list)
    compared: list[StepTiming] | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def check_rehearsal(plan: Rehearsal) -> tuple[str, ...]:
    """Refuse bad input before anything is made (exit 2); returns the faults, checked."""
    if plan.scale not in SCALES:
        raise UsageError(f"unknown scale {plan.scale!r}", fix=f"choose from: {', '.join(SCALES)}")
    faults = check_faults(plan.faults)
    if plan.compare is not None and not (Path(plan.compare) / JOURNAL_FILE).is_file():
        raise InputError(
            "the rehearsal to compare with has no journal",
            where=str(plan.compare),
            fix="give an earlier rehearsal's folder",
        )
    return faults


async def rehearse(plan: Rehearsal, say: Callable[[str], None] = lambda _line: None) -> RehearsalOutcome:
    """Seed, set up and run a rehearsal (see the module docstring); ``say`` gets every line to show."""
    faults = check_rehearsal(plan)
    ws = check_workspace(plan.workspace)
    db, extract = ws / REHEARSAL_DB, ws / REHEARSAL_EXTRACT
    say(f"rehearsal workspace: {ws}")
    if plan.world is not None:
        say(await asyncio.to_thread(_copy_world, plan.world, db, extract))
    else:
        say(await asyncio.to_thread(_seed, db, extract, plan.scale, SEED_TIMEOUT))
    if EXTRACT_FAULT in faults:
        legacy_id = relabel_uninvoiced_row(extract)
        say(f"fault {EXTRACT_FAULT}: {legacy_id} relabelled Invoiced, its legacy invoice number emptied")
    _make_profile(ws)
    say(f"profile '{PROFILE}': kind rehearsal, simulator database {db.name}")

    outcome = RehearsalOutcome(ws, extract)
    delay = plan.background_delay if plan.long_running else 0.0
    cmd = run_command(ws, extract, faults, blind=plan.blind, background_delay=delay, until=plan.until)
    crashes = [f for f in CRASH_FAULTS if f in faults]
    while True:
        crash = crashes[0] if crashes else None
        outcome.runs += 1
        say(f"run {outcome.runs}: cutover {' '.join(cmd[3:])}")
        child = await _run_child(cmd, ws, say, crash, plan.run_timeout)
        if child.killed_for is None:
            break
        crashes.pop(0)
        outcome.crashes.append(child.killed_for)
        killed_at = time.monotonic()
        say(
            f"fault {child.killed_for}: killed the run with SIGKILL after {CRASH_POINTS[child.killed_for][0]}; resuming"
        )
        await _simulator_gone(db)
        if delay:  # background invoice jobs the killed run left are due before the resume asks
            await asyncio.sleep(max(0.0, delay - (time.monotonic() - killed_at)))
    outcome.exit_code = child.returncode if child.returncode >= 0 else EXIT_INTERNAL
    if crashes:
        say(f"note: the run ended before {', '.join(crashes)} could crash it")
    if plan.blind:
        await _simulator_gone(db)
        await _reveal_map_state(ws)
        say("map state shown again, so the validation suite can read it")
    outcome.stopped_at, outcome.reason = last_stop(ws)
    outcome.timings = step_timings(ws)
    if plan.compare is not None:
        outcome.compared = step_timings(Path(plan.compare))
    return outcome
