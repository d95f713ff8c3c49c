"""The runbook screen: the steps with their states beside the selected step in full.

What it shows comes from the journal (the core's ``step_states``, the entries) and from the
engine's live events; what it does is start, stop and answer the engine:

- ``r`` runs from the first unfinished step on (after a failure: the retry — the engine
  re-checks an interrupted step first), ``n`` runs the next step only, ``x`` stops the run
  (the worker is cancelled; the journal keeps everything, every step is idempotent). There is
  no skip: a failed check offers retry (``r``) or investigate (``i``), nothing else.
- A gated step that may not start says why (the engine's ``StepBlocked``), in the list (■),
  the detail and the status line.
- A second window on the same run opens read-only: the writer lock names the holder, and the
  screen follows the journal once a second; when the holder is gone, this window takes over.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, OptionList, Static
from textual.worker import Worker

from cutover.report_reader import latest_report
from cutover.runbook.events import (
    EngineEvent,
    RunFinished,
    RunStarted,
    StepBlocked,
    StepDone,
    StepFailed,
    StepProgress,
    StepStarted,
)

from ..engine_worker import FAULTS_OFFERED, Connected, RunDriver, RunOptions, WorldPrepared
from ..modals.device_code import DeviceCodeModal
from ..modals.faults import FaultsModal, RehearsalChoice
from ..modals.source import SourceChoice, SourceModal
from ..modals.text import TextModal
from ..operator import TuiOperator
from ..widgets.present import display_state, figures_text, is_progress, journal_line, progress_text
from ..widgets.step_detail import StepDetail
from ..widgets.step_list import StepList
from .results import RESULTS, SIGNOFF, ResultsScreen
from .signoff import SignoffScreen

POLL_SECONDS = 1.0
VERIFY = "verify"  # the runbook step whose evidence pack the results screen shows


class RunbookScreen(Screen):
    BINDINGS = [
        Binding("r", "run", "Run/retry", id="run.continue", tooltip="Run from the first unfinished step on"),
        Binding("n", "run_next", "Next", id="run.next", tooltip="Run the next unfinished step only"),
        Binding("x", "stop", "Stop", id="run.stop", tooltip="Stop the run (nothing is lost; r resumes)"),
        Binding("i", "investigate", "Investigate", id="step.investigate", tooltip="The step's journal and error"),
        Binding("c", "copy", "Copy", id="step.copy", show=False, tooltip="Copy the step id and its error (OSC 52)"),
        Binding("j", "journal", "Journal", id="run.journal", show=False, tooltip="The whole run's journal"),
        Binding("s", "choose_source", "Extract", id="run.source", show=False, tooltip="Choose the legacy extract"),
        Binding("f", "rehearsal", "Rehearsal", id="rehearsal.options", tooltip="Perform in simulator, faults"),
        Binding("e", "environments", "Envs", id="app.environments", show=False, tooltip="Pick another environment"),
        Binding(RESULTS.key, "results", "Results", id=RESULTS.id, show=False, tooltip=RESULTS.tooltip),
        Binding(SIGNOFF.key, "signoff", "Sign-off", id=SIGNOFF.id, show=False, tooltip=SIGNOFF.tooltip),
    ]

    class EngineMessage(Message):
        """An event of the engine (or of opening the environment), for this screen."""

        def __init__(self, event: Any):
            super().__init__()
            self.event = event

    class RunEnded(Message):
        """The run's worker ended (finished, stopped, cancelled or failed)."""

    def __init__(
        self,
        driver: RunDriver,
        *,
        source: Path | None = None,
        mapping: Path | None = None,
        cutover_date: str | None = None,
        claim: bool = True,
        ask_for_source: bool = True,
    ):
        super().__init__(classes="runbook")
        self.claim = claim
        self.ask_for_source = ask_for_source
        self.driver = driver
        self.source = source
        self.mapping = mapping
        self.cutover_date = cutover_date
        self.read_only: str | None = None
        self.running_step: str | None = None
        self.worker: Worker | None = None
        self.progress: dict[str, dict[str, Any]] = {}
        self.rehearsal = RehearsalChoice(perform_in_simulator=True, faults=())
        self.operator: TuiOperator | None = None  # made on mount (it needs the app)
        self.last_finished: RunFinished | None = None
        self._device_modal: DeviceCodeModal | None = None
        self._seen_seq = 0
        self._stopped_in: str | None = None
        self._detail_dirty = False
        self._snapshots: dict[str, dict | None] = {}
        self._verified_in_run = False  # the verify step ended in this run: show its results after

    # --- layout ----------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static("", id="title", markup=False)
        if self.driver.production:
            yield Static(
                f"PRODUCTION  ·  {self.driver.env}  ·  every writing step asks for the environment's name",
                id="production-banner",
                markup=False,
            )
        yield Static("", id="readonly-banner", markup=False)
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield StepList(id="steps")
            yield StepDetail(id="detail")
        yield Static("", id="status", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.operator = TuiOperator(self.app)
        self.query_one("#readonly-banner").display = False
        self.read_only = self.driver.claim() if self.claim else None
        if self.read_only:
            self._show_read_only()
        self.set_interval(POLL_SECONDS, self._poll)
        self.set_interval(0.5, self._refresh_detail_if_dirty)
        self.refresh_all()
        current = self.current_step()
        if current:
            self.query_one(StepList).select_step(current)
        self.query_one(StepList).focus()
        self._say_where_we_are()
        steps = self.query_one(StepList)
        steps.border_title = "Runbook"
        steps.border_subtitle = "◇ gated  ◆ no return"
        if self.ask_for_source and not self.read_only and self.driver.recorded_inputs() is None and self.source is None:
            self.call_after_refresh(self.action_choose_source)

    # --- state ----------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.worker is not None and self.worker.is_running

    def current_step(self) -> str | None:
        return self.running_step or self.driver.first_unfinished()

    def display_states(self) -> dict[str, str]:
        states = self.driver.states()
        return {sid: display_state(st, sid == self.running_step) for sid, st in states.items()}

    def refresh_all(self) -> None:
        self._seen_seq = self.driver.head_seq()
        self._title()
        self.query_one(StepList).show(list(self.driver.runbook()), self.display_states(), self.current_step())
        self.refresh_detail()

    def refresh_detail(self) -> None:
        self._detail_dirty = False
        step_id = self.query_one(StepList).highlighted_step or self.current_step()
        if step_id is None:
            return
        book = self.driver.runbook(self._options())
        step = book.step(step_id) if step_id in book.ids else self.driver.runbook().step(step_id)
        state = self.driver.states()[step_id]
        entries = [e for e in self.driver.entries() if e.step == step_id]
        progress = self.progress.get(step_id)
        if progress is None:  # not live: the last progress the journal recorded for it
            recorded = [e.data.get("figures") or {} for e in entries if e.kind == "step.progress"]
            recorded = [f for f in recorded if is_progress(f)]
            progress = recorded[-1] if recorded and not state.finished else None
        snapshot = None
        if step_id.startswith("snapshot.") and state.finished:
            label = step_id.split(".", 1)[1]
            if label not in self._snapshots:
                try:
                    self._snapshots[label] = self.driver.snapshot_summary(label)
                except Exception as exc:  # a damaged snapshot is the check's business; say it here too
                    self._snapshots[label] = None
                    self.notify(f"snapshot '{label}' cannot be read: {exc}", severity="warning")
            snapshot = self._snapshots[label]
        ids = list(self.driver.runbook().ids)
        rehearsal_note = None
        if step.rehearse is not None:
            rehearsal_note = (
                "Rehearsal: the tool performs this step in the simulator first; you attest it (f changes this)."
            )
        elif step.kind != "auto" and self.driver.can_perform_in_simulator:
            rehearsal_note = "Rehearsal: you perform this step yourself in the simulator (f changes this)."
        self.query_one(StepDetail).show(
            step,
            display_state(state, step_id == self.running_step),
            state.attested_by,
            entries,
            progress,
            snapshot,
            step_number=ids.index(step_id) + 1,
            total_steps=len(ids),
            note=rehearsal_note,
        )

    def _refresh_detail_if_dirty(self) -> None:
        if self._detail_dirty:
            self.refresh_detail()

    def _title(self) -> None:
        d = self.driver
        inputs = d.recorded_inputs()
        extract = (
            Path(inputs.extract_path).name if inputs else (self.source.name if self.source else "no extract chosen")
        )
        date = inputs.cutover_date if inputs else (self.cutover_date or "today")
        parts = [f"cutover · {d.env} ({d.profile.kind})", extract, f"cutover date {date}"]
        if self.read_only:
            parts.append("READ-ONLY")
        if d.can_perform_in_simulator and self.rehearsal.faults:
            parts.append(f"faults: {', '.join(self.rehearsal.faults)}")
        self.query_one("#title", Static).update(" · ".join(parts))

    def _status(self, text: str | Text) -> None:
        self.query_one("#status", Static).update(text)

    def _say_where_we_are(self) -> None:
        if self.read_only:
            return
        states = self.driver.states()
        current = self.driver.first_unfinished()
        if current is None:
            self._status("Every step is done. j shows the journal.")
            return
        st = states[current]
        if st.failed:
            last = [e for e in self.driver.entries() if e.step == current and e.kind in ("step.failed", "step.blocked")]
            why = journal_line(last[-1].at, last[-1].kind, last[-1].actor, last[-1].data)[9:] if last else ""
            self._status(f"{current} stopped: {why}  —  r retries, i investigates")
        elif st.started:
            self._status(f"The run was interrupted in {current}; r resumes there (the step is checked first).")
        elif any(s.finished for s in states.values()):
            self._status(f"Resume at {current}: r runs on, n runs this step only.")
        else:
            self._status(f"Ready: r runs the runbook from {current}, n runs one step at a time.")

    # --- read-only watching -------------------------------------------------------------------

    def _show_read_only(self) -> None:
        banner = self.query_one("#readonly-banner", Static)
        banner.update(f"READ-ONLY — {self.read_only}")
        banner.display = True
        self._status("Watching the journal; this window cannot run steps while the other one holds the run.")
        self._title()

    def _poll(self) -> None:
        if self.claim and self.read_only and self.driver.holder() is None and self.driver.claim() is None:
            self.read_only = None
            self.query_one("#readonly-banner").display = False
            self.notify("The other window has let go of the run: this one can run the steps now.")
            self.refresh_all()
            self._say_where_we_are()
            self.refresh_bindings()
            return
        if not self.running and self.driver.head_seq() != self._seen_seq:
            self.refresh_all()

    # --- running -----------------------------------------------------------------------------------

    def _options(self, until: str | None = None) -> RunOptions:
        return RunOptions(
            perform_in_simulator=self.rehearsal.perform_in_simulator,
            faults=self.rehearsal.faults,
            until=until,
        )

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("run", "run_next"):
            if self.read_only or self.running or self.driver.first_unfinished() is None:
                return None
        elif action == "stop":
            return True if self.running else None
        elif action == "rehearsal":
            return self.driver.can_perform_in_simulator and not self.running
        elif action == "choose_source":
            return (not self.read_only and not self.running and self.driver.recorded_inputs() is None) or None
        elif action == "environments":
            return None if self.running else True
        return True

    def action_run(self) -> None:
        if not self.claim:
            return
        self._start(None)

    def action_run_next(self) -> None:
        self._start(self.driver.first_unfinished())

    def _start(self, until: str | None) -> None:
        if self.read_only or self.running:
            return
        if self.driver.recorded_inputs() is None and self.source is None:
            self.action_choose_source()
            return
        self.last_finished = None
        self._stopped_in = None
        self._verified_in_run = False
        self._status("Opening the environment…" + (" (starting the simulator)" if self.driver.profile.embedded_simulator else ""))  # fmt: skip
        options = self._options(until)
        self.worker = self.app.start_work(self._run(options), name="run", description=f"run {self.driver.env}")
        self.refresh_bindings()

    async def _run(self, options: RunOptions) -> None:
        assert self.operator is not None
        self.operator.performed = self.driver.can_perform_in_simulator and options.perform_in_simulator
        cancel = asyncio.Event()

        async def on_code(message: str, user_code: str, verification_uri: str) -> None:
            self._device_modal = DeviceCodeModal(message, user_code, verification_uri, cancel)
            await self.app.push_screen(self._device_modal)

        try:
            inputs = await self.driver.inputs(self.source, self.mapping, self.cutover_date)
            async for event in self.driver.events(inputs, self.operator, options, on_code=on_code, cancel=cancel):
                if isinstance(event, Connected) and self._device_modal is not None:
                    if self._device_modal.is_current:
                        self._device_modal.dismiss(None)
                    self._device_modal = None
                self.post_message(self.EngineMessage(event))
        finally:
            self.post_message(self.RunEnded())

    def action_stop(self) -> None:
        if self.running and self.worker is not None:
            self._stopped_in = self.running_step or "the run"
            self.worker.cancel()
            self._status(self._stopped_text())

    def _stopped_text(self) -> str:
        return f"Stopped by you in {self._stopped_in}; nothing is lost: r resumes there (it is checked first)."

    @on(EngineMessage)
    def _engine_event(self, message: EngineMessage) -> None:
        event: EngineEvent | Any = message.event
        if self._stopped_in is not None:  # events still queued when the operator stopped the run
            self.refresh_all()
            return
        if isinstance(event, Connected):
            self._status(f"Connected to {event.env} at {event.where}.")
            return
        if isinstance(event, WorldPrepared):
            self.notify("Rehearsal: " + "; ".join(event.done))
            return
        if isinstance(event, RunStarted):
            self._status(f"Running{' from ' + event.resumed_at if event.resumed_at else ''}…")
            return
        if isinstance(event, StepProgress):
            if is_progress(event.figures):
                self.progress[event.step] = event.figures
                self._status(f"{event.step}: {figures_text(event.figures)}")
            else:
                said = progress_text(event.message, event.figures)
                if said:
                    self._status(f"{event.step}: {said}")
            if event.step == self.query_one(StepList).highlighted_step:
                self.query_one(StepDetail).query_one("#progress").show(self.progress.get(event.step))
                self._detail_dirty = True
            return
        if isinstance(event, StepStarted):
            self.running_step = event.step
            self.query_one(StepList).select_step(event.step)
            self._status(f"{event.step}: {event.title}{' (resumed: checked first)' if event.resumed else ''}")
        elif isinstance(event, StepDone):
            self.progress.pop(event.step, None)
            self.running_step = None
            self._verified_in_run |= event.step == VERIFY
        elif isinstance(event, (StepFailed, StepBlocked)):
            self.running_step = None
            self._verified_in_run |= event.step == VERIFY and isinstance(event, StepFailed)
        elif isinstance(event, RunFinished):
            self.running_step = None
            self.last_finished = event
            if event.ok:
                last = self.driver.first_unfinished()
                self._status(
                    "The run is complete: every step is done."
                    if last is None
                    else f"Done up to here; next: {last} (r runs on, n one step)."
                )
            else:
                if event.stopped_at:
                    self.query_one(StepList).select_step(event.stopped_at)
                self._status(f"Stopped at {event.stopped_at}: {event.reason}  —  r retries, i investigates")
        self.refresh_all()

    @on(RunEnded)
    def _run_ended(self) -> None:
        self.running_step = None
        self.refresh_all()
        if self._stopped_in is not None:
            self._status(self._stopped_text())
        elif self.last_finished is None:  # the run ended on an error (the error modal says which)
            self._say_where_we_are()
        self.refresh_bindings()
        if self._verified_in_run:  # after the verify step: its results, once the run has stopped
            self._verified_in_run = False
            if self.is_current:
                self.action_results()

    # --- selection ----------------------------------------------------------------------------------

    @on(OptionList.OptionHighlighted, "#steps")
    def _highlighted(self) -> None:
        self.refresh_detail()

    # --- investigate, copy, journal -----------------------------------------------------------------

    def _selected(self) -> str | None:
        return self.query_one(StepList).highlighted_step or self.current_step()

    def _step_problem(self, step_id: str) -> str:
        lines = [
            journal_line(e.at, e.kind, e.actor, e.data)[9:]
            for e in self.driver.entries()
            if e.step == step_id and e.kind in ("step.failed", "step.blocked", "check.failed")
        ]
        return lines[-1] if lines else ""

    def action_investigate(self) -> None:
        step_id = self._selected()
        if step_id is None:
            return
        entries = [e for e in self.driver.entries() if e.step == step_id]
        lines = [f"row {e.seq}  {journal_line(e.at, e.kind, e.actor, e.data)}" for e in entries]
        problem = self._step_problem(step_id)
        text = (f"Last problem: {problem}\n\n" if problem else "") + ("\n".join(lines) or "Nothing in the journal yet.")
        text += "\n\nNothing is skipped: correct the cause, then r retries (the step is checked first)."
        self.app.push_screen(TextModal(f"Investigate {step_id}", text, purpose="investigate"))

    def action_copy(self) -> None:
        step_id = self._selected()
        if step_id is None:
            return
        problem = self._step_problem(step_id)
        self.app.copy_to_clipboard(f"{step_id}: {problem}" if problem else step_id)
        self.notify(f"copied {step_id}" + (" and its error" if problem else "") + " (OSC 52)")

    def action_journal(self) -> None:
        lines = [
            f"{e.seq:>5} {journal_line(e.at, e.kind, e.actor, e.data)}  {e.step or ''}" for e in self.driver.entries()
        ]
        head = self.driver.journal.head()
        footer = f"\n\nHead: {head}" if head else ""
        self.app.push_screen(
            TextModal(f"Journal of {self.driver.env}", ("\n".join(lines) or "empty") + footer, purpose="journal")
        )

    # --- inputs and rehearsal options ---------------------------------------------------------------

    def action_choose_source(self) -> None:
        if self.read_only or self.driver.recorded_inputs() is not None:
            return
        folder = self.source.parent if self.source else Path.cwd()

        def chosen(choice: SourceChoice | None) -> None:
            if choice is None:
                self._status("No extract chosen: s chooses it; nothing runs without one.")
                return
            self.source, self.mapping, self.cutover_date = choice.extract, choice.mapping, choice.cutover_date
            self._title()
            self._say_where_we_are()

        self.app.push_screen(
            SourceModal(folder, extract=self.source, mapping=self.mapping, cutover_date=self.cutover_date), chosen
        )

    def action_rehearsal(self) -> None:
        if not self.driver.can_perform_in_simulator:
            return

        def chosen(choice: RehearsalChoice | None) -> None:
            if choice is not None:
                self.rehearsal = choice
                self._title()
                self.refresh_detail()

        self.app.push_screen(FaultsModal(FAULTS_OFFERED, self.rehearsal), chosen)

    def action_environments(self) -> None:
        if not self.running:
            self.app.action_environments()

    # --- verification results and sign-off ----------------------------------------------------------

    def action_results(self) -> None:
        self.app.start_work(self._open_pack(ResultsScreen), name="open-pack", description="find the evidence pack")

    def action_signoff(self) -> None:
        self.app.start_work(self._open_pack(SignoffScreen), name="open-pack", description="find the evidence pack")

    async def _open_pack(self, screen_class: type[ResultsScreen] | type[SignoffScreen]) -> None:
        """The newest evidence pack of this environment, on the results or the sign-off screen."""
        report = await asyncio.to_thread(latest_report, self.driver.workspace, self.driver.env)
        if report is None:
            self.notify(
                f"No evidence pack of {self.driver.env} yet: the verify step writes one (or `cutover verify`).",
                severity="warning",
            )
            return
        if self.is_current:
            await self.app.push_screen(screen_class(report, self.driver.env))

    def on_unmount(self) -> None:
        self.driver.close()
