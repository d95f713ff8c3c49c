"""The TUI's one door to the core's engine: what the screens may know about a run, and the run.

Nothing else in ``cutover.tui`` imports the engine, the journal, the session or the rehearsal
module. A :class:`RunDriver` belongs to one environment of one workspace and offers:

- **what the journal says** — :meth:`states` (the core's ``step_states``), :meth:`first_unfinished`,
  :meth:`entries` for the history, :meth:`recorded_inputs` (the extract a resumed run must use);
- **the writer lock** — :meth:`claim` takes the workspace's one-writer lock for the environment or
  answers why not (another ``cutover`` holds it: pid, host, user, command, since), so a second
  window watches read-only;
- **the run** — :meth:`events`, an async stream of the engine's events after the session is open:
  simulator started (rehearsal), signed in (``on_code`` shows a device code), rehearsal faults
  applied (:func:`cutover.rehearsal.prepare_world`), then ``cutover.engine.run``. Cancelling the
  task that iterates it stops the run at an ``await``; the journal already holds every event, and
  every step is idempotent, so running again resumes at the interrupted step and re-checks first.

The driver decides nothing about the procedure: which step comes next, gates, confirmations and
checks are the engine's. The TUI shows what it yields and answers what it asks (its Operator).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cutover.config import Profile, load_config
from cutover.engine import RunContext, StepState, first_unfinished, run, step_states
from cutover.errors import CutoverError, InputError
from cutover.journal import Entry, Journal, RunInputs, WriterBusy, WriterLock
from cutover.rehearsal import CRASH_FAULTS, FAULTS, prepare_world, rehearsal_runbook
from cutover.runbook.events import EngineEvent
from cutover.runbook.model import Runbook, Step
from cutover.runbook.operator import Operator
from cutover.runbook.steps import RUNBOOK
from cutover.session import open_session

__all__ = ["FAULTS_OFFERED", "Connected", "RunDriver", "RunOptions", "Runbook", "Step", "StepState", "WorldPrepared"]

#: Faults a rehearsal in the TUI may switch on (the crash faults are the operator's own: quit mid-step).
FAULTS_OFFERED: dict[str, str] = {name: what for name, what in FAULTS.items() if name not in CRASH_FAULTS}


@dataclass(frozen=True)
class RunOptions:
    """How a run is started from the TUI (rehearsal aids are ignored on other profiles)."""

    perform_in_simulator: bool = True
    faults: tuple[str, ...] = ()
    until: str | None = None  # run up to and including this step, then stop


@dataclass(frozen=True)
class Connected:
    """The environment is open (the simulator started, signed in)."""

    env: str
    where: str


@dataclass(frozen=True)
class WorldPrepared:
    """A rehearsal's setting faults were applied in the simulator."""

    done: tuple[str, ...]


class RunDriver:
    """One environment of one workspace, as the TUI sees it."""

    def __init__(
        self,
        workspace: Path,
        env: str,
        *,
        command: str = "cutover tui",
        runbook: Runbook | None = None,
        opener: Callable[..., contextlib.AbstractAsyncContextManager[Any]] | None = None,
    ):
        """``runbook`` and ``opener`` (``opener(on_code=…, cancel=…)`` → async context of a
        session, or of None) replace the real runbook and environment: tests run synthetic
        steps on a production profile this way, as ``tests/test_engine.py`` does."""
        self.workspace = Path(workspace)
        self.env = env
        self._runbook = runbook or RUNBOOK
        self._opener = opener
        self.profile: Profile = load_config(self.workspace).get(env)
        self.journal = Journal.open(self.workspace)
        self._lock = WriterLock(self.workspace, env, command=command)
        self.holding = False

    # --- what kind of environment ------------------------------------------------------------

    @property
    def production(self) -> bool:
        return self.profile.kind == "production"

    @property
    def rehearsal(self) -> bool:
        return self.profile.is_rehearsal

    @property
    def can_perform_in_simulator(self) -> bool:
        """Manual steps can be performed by the tool: a rehearsal profile with its own simulator."""
        return self.profile.is_rehearsal and self.profile.embedded_simulator

    def runbook(self, options: RunOptions | None = None) -> Runbook:
        options = options or RunOptions()
        book = self._runbook
        if self.can_perform_in_simulator and options.perform_in_simulator:
            book = rehearsal_runbook(book, [f for f in options.faults if f in FAULTS_OFFERED])
        return book.until(options.until) if options.until else book

    # --- the writer lock ---------------------------------------------------------------------

    def claim(self) -> str | None:
        """Take the one-writer lock; None when taken, else who holds it (the WriterBusy text)."""
        if self.holding:
            return None
        try:
            self._lock.acquire()
        except WriterBusy as exc:
            return exc.message
        self.holding = True
        return None

    def holder(self) -> dict[str, Any] | None:
        return self._lock.holder()

    def close(self) -> None:
        if self.holding:
            self._lock.release()
            self.holding = False
        self.journal.close()

    # --- what the journal says ---------------------------------------------------------------

    def states(self) -> dict[str, StepState]:
        return step_states(self.journal, self.env, self._runbook)

    def first_unfinished(self) -> str | None:
        return first_unfinished(self.journal, self.env, self._runbook)

    def entries(self, since: int = 0) -> list[Entry]:
        return list(self.journal.entries(self.env, since=since))

    def head_seq(self) -> int:
        head = self.journal.head()
        return head.seq if head else 0

    def recorded_inputs(self) -> RunInputs | None:
        return self.journal.run_inputs(self.env)

    def snapshot_summary(self, label: str) -> dict[str, Any] | None:
        """The manifest of snapshot ``label`` as plain figures, or None if it was not taken."""
        from cutover.snapshot import SnapshotMissing, load_manifest, snapshot_dir

        try:
            m = load_manifest(snapshot_dir(self.workspace, self.env, label))
        except SnapshotMissing:
            return None
        return {
            "label": m.label,
            "finished_utc": f"{m.finished_utc:%Y-%m-%d %H:%M:%S} UTC",
            "legal_entities": ", ".join(m.legal_entities),
            "ar_rows": m.ar_rows,
            "gl_rows": m.gl_rows,
            "ar_amount": {le: str(t.amount_mst) for le, t in m.ar_by_legal_entity.items()},
            "gl_amount": {le: str(t.amount) for le, t in m.gl_by_legal_entity.items()},
            "directory": str(m.directory) if m.directory else "",
            "sha256": m.sha256 or "",
        }

    # --- the run ----------------------------------------------------------------------------------

    async def inputs(self, source: Path | None, mapping: Path | None, cutover_date: str | None) -> RunInputs:
        """The run's inputs: the journal's (files hashed again, so a changed file is refused by the
        engine), else the files given; the cutover date defaults to today (UTC)."""
        recorded = self.recorded_inputs()
        if recorded is not None:
            extract = Path(recorded.extract_path)
            if not extract.is_file():
                raise InputError(
                    "the extract this run started with is not there any more",
                    where=str(extract),
                    fix="put the same file back at that path; a run never changes its inputs",
                )
            maps = Path(recorded.mapping_path) if recorded.mapping_path else None
            return await asyncio.to_thread(RunInputs.of, extract, maps, recorded.cutover_date)
        if source is None:
            raise InputError("no legacy extract chosen for this run", fix="choose the extract file (key s)")
        if not Path(source).is_file():
            raise InputError("the legacy extract is not a file", where=str(source), fix="choose an existing file")
        if mapping is not None and not Path(mapping).is_file():
            raise InputError("the mapping file is not a file", where=str(mapping), fix="choose an existing file")
        date = cutover_date or dt.datetime.now(dt.UTC).date().isoformat()
        return await asyncio.to_thread(RunInputs.of, Path(source), mapping, date)

    def _open_session(self, *, on_code: Any = None, cancel: Any = None):
        return open_session(self.profile, self.workspace, write_pool=True, on_code=on_code, cancel=cancel)

    async def events(
        self,
        inputs: RunInputs,
        operator: Operator,
        options: RunOptions,
        *,
        on_code: Callable[[str, str, str], Any] | None = None,
        cancel: asyncio.Event | None = None,
    ) -> AsyncIterator[EngineEvent | Connected | WorldPrepared]:
        """Open the environment and run (or resume) the runbook; yields the engine's events."""
        if not self.holding:
            raise CutoverError(
                "this window watches the run read-only; another process is the writer",
                fix="close the other window first, then reopen this one",
            )
        opener = self._opener or self._open_session
        async with opener(on_code=on_code, cancel=cancel) as session:
            where = "(no session)"
            if session is not None:
                await session.whoami()  # sign in now, while the operator looks at the device code
                where = session.sim_url or session.dataverse_root
            yield Connected(self.env, where)
            perform = self.can_perform_in_simulator and options.perform_in_simulator
            ctx = RunContext(
                env=self.env,
                profile=self.profile,
                workspace=self.workspace,
                journal=self.journal,
                session=session,
                inputs=inputs,
                rehearsal=perform,
            )
            faults = [f for f in options.faults if f in FAULTS_OFFERED]
            if perform and faults:
                done = await prepare_world(ctx, faults)
                if done:
                    yield WorldPrepared(tuple(done))
            async for event in run(self.runbook(options), ctx, operator):
                yield event
