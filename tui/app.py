"""``cutover tui``: the full-screen operator console over the core's runbook engine.

The app is a thin view (harlequin's shape): the engine decides, the app shows and asks.

- **One worker pattern.** Every piece of I/O — a run of the engine, opening an environment —
  goes through :meth:`CutoverApp.start_work` (``exclusive`` per group, ``exit_on_error=False``),
  so the input never freezes.
- **One error path.** A worker that fails reaches :meth:`CutoverApp.on_worker_state_changed`,
  which opens the :class:`~cutover.tui.modals.error.ErrorModal` with the error's message, where
  and fix (a :class:`cutover.errors.CutoverError`), or says it is a bug and writes the traceback
  to ``<workspace>/logs/``.
- **Keys** carry ids; ``[keys]`` in ``cutover.toml`` remaps them (:mod:`cutover.keys` checks the
  table); the help screen (``?``/``f1``) and the command palette (``ctrl+p``) are generated
  from the bindings in force. Nothing is bound to a key tmux, screen or terminals swallow.
- **Leaves nothing running.** The rehearsal simulator lives inside a run's session, so quitting,
  Ctrl+C or a dropped SSH connection (SIGHUP, handled like SIGTERM: a clean exit) stops it;
  if this process dies outright, the simulator notices its parent is gone and stops itself.

Entry points for the CLI: :func:`run_tui` and :func:`screenshot`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import tempfile
import threading
import traceback
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from textual import on
from textual.app import App
from textual.binding import Binding
from textual.worker import Worker, WorkerState

from cutover.config import load_config
from cutover.errors import EXIT_ENVIRONMENT, EXIT_OK, CutoverError
from cutover.keys import load_keymap

from .commands import ActionCommands
from .engine_worker import RunDriver
from .modals.confirm import ConfirmModal
from .modals.error import ErrorModal, ErrorReport
from .screens.environments import EnvironmentScreen
from .screens.help import HelpScreen, binding_rows
from .screens.results import ResultsScreen, ScenarioScreen
from .screens.runbook import RunbookScreen
from .screens.signoff import SignoffScreen


#: id -> default keys of every binding the operator may remap (checked by cutover.keys).
def remappable_bindings() -> dict[str, str]:
    found: dict[str, str] = {}
    for owner in (CutoverApp, RunbookScreen, ResultsScreen, ScenarioScreen, SignoffScreen):
        for binding in owner.BINDINGS:
            if isinstance(binding, Binding) and binding.id:
                found[binding.id] = binding.key
    return found


HANG_UP_GRACE_S = 3.0  # seconds a hung-up console gets to exit cleanly
_watchdog: threading.Timer | None = None


def _start_watchdog() -> None:
    """End the process after :data:`HANG_UP_GRACE_S` unless it has ended cleanly by then."""
    global _watchdog
    if _watchdog is None:
        _watchdog = threading.Timer(HANG_UP_GRACE_S, os._exit, args=(EXIT_ENVIRONMENT,))
        _watchdog.daemon = True
        _watchdog.start()


class CutoverApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "cutover"
    COMMANDS = App.COMMANDS | {ActionCommands}
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", id="app.quit", priority=True, tooltip="Quit (asks first while a step runs)"),
        Binding("question_mark,f1", "help", "Help", id="app.help", tooltip="Every key and action"),
    ]

    def __init__(
        self,
        workspace: Path,
        env: str | None = None,
        source: Path | None = None,
        mapping: Path | None = None,
        *,
        cutover_date: str | None = None,
        handle_signals: bool = False,
        claim: bool = True,
        driver_factory: Callable[[Path, str], RunDriver] | None = None,
    ):
        super().__init__()
        self.driver_factory = driver_factory or RunDriver
        self.workspace = Path(workspace)
        self.env = env
        self.source = source
        self.mapping = mapping
        self.cutover_date = cutover_date
        self.handle_signals = handle_signals
        self.claim = claim  # False: never take the writer lock (a screenshot)
        self.keymap_problem: CutoverError | None = None

    # --- start -------------------------------------------------------------------------------

    def on_mount(self) -> None:
        if self.handle_signals:
            loop = asyncio.get_running_loop()

            def on_signal(signum, frame) -> None:
                # A plain handler, not loop.add_signal_handler: it runs even when the event loop
                # is stuck (a write to a terminal that went away), and starts the watchdog first.
                _start_watchdog()
                loop.call_soon_threadsafe(self._hang_up)

            for signum in (signal.SIGHUP, signal.SIGTERM):
                signal.signal(signum, on_signal)
        try:
            self.set_keymap(load_keymap(self.workspace, remappable_bindings()))
        except CutoverError as exc:
            self.keymap_problem = exc
            self.show_error(exc)
        if self.env:
            self.open_environment(self.env)
        else:
            self.action_environments()

    def _hang_up(self) -> None:
        """SIGHUP (the SSH connection dropped) or SIGTERM: leave cleanly; the journal has everything.

        With the terminal gone, restoring it can block on a dead tty; so a watchdog ends the
        process if the clean exit has not happened within a few seconds. Nothing is lost: every
        journal row is committed when written, and the simulator child exits with its parent."""
        _start_watchdog()
        for worker in self.workers:
            worker.cancel()
        self.exit(EXIT_ENVIRONMENT)

    def open_environment(self, env: str) -> None:
        try:
            driver = self.driver_factory(self.workspace, env)
        except CutoverError as exc:
            self.show_error(exc)
            if not isinstance(self.screen, EnvironmentScreen):
                self.action_environments()
            return
        self.env = env
        screen = RunbookScreen(
            driver,
            source=self.source,
            mapping=self.mapping,
            cutover_date=self.cutover_date,
            claim=self.claim,
            ask_for_source=self.claim,
        )
        if isinstance(self.screen, (EnvironmentScreen, RunbookScreen)):
            self.switch_screen(screen)
        else:
            self.push_screen(screen)

    def action_environments(self) -> None:
        try:
            profiles = load_config(self.workspace).profiles
        except CutoverError as exc:
            self.show_error(exc)
            profiles = {}
        screen = EnvironmentScreen(dict(profiles), str(self.workspace))
        if isinstance(self.screen, RunbookScreen):
            self.switch_screen(screen)
        else:
            self.push_screen(screen)

    # --- the one worker pattern and the one error path ------------------------------------------

    def start_work(self, work: Coroutine[Any, Any, Any], *, name: str, description: str = "", group: str | None = None) -> Worker:  # fmt: skip
        return self.run_worker(
            work, name=name, group=group or name, description=description, exclusive=True, exit_on_error=False
        )

    @on(Worker.StateChanged)
    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR and event.worker.error is not None:
            self.show_error(event.worker.error)

    def show_error(self, error: BaseException) -> None:
        log = None if isinstance(error, CutoverError) else self._crash_log(error)
        self.push_screen(ErrorModal(ErrorReport.of(error, log=str(log) if log else None)))

    def _crash_log(self, error: BaseException) -> Path | None:
        folder = self.workspace / "logs" if self.workspace.is_dir() else Path(tempfile.gettempdir())
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"cutover-tui-crash-{stamp}-{os.getpid()}.log"
            with open(path, "x", encoding="utf-8") as f:
                f.write("".join(traceback.format_exception(error)))
            return path
        except OSError:
            return None

    # --- help and quit ----------------------------------------------------------------------------

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(binding_rows(self.screen)))

    @property
    def step_running(self) -> bool:
        return any(w.name == "run" and w.is_running for w in self.workers)

    async def action_quit(self) -> None:
        if not self.step_running:
            self.exit(EXIT_OK)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                for worker in self.workers:
                    worker.cancel()
                self.exit(EXIT_OK)

        await self.push_screen(
            ConfirmModal(
                "Quit while a step runs?",
                "The run stops where it is. Nothing is lost: the journal holds every event, and reopening "
                "resumes at this step (it is checked first).",
                confirm="Quit",
                cancel="Keep running",
                danger=True,
                purpose="confirm-quit",
            ),
            answered,
        )


def run_tui(
    workspace: Path,
    env: str | None,
    source: Path | None,
    mapping: Path | None,
    *,
    cutover_date: str | None = None,
) -> int:
    """Run the TUI in this terminal until the operator quits; returns the exit code."""
    app = CutoverApp(workspace, env, source, mapping, cutover_date=cutover_date, handle_signals=True)
    code = app.run()
    return EXIT_OK if code is None else int(code)


async def _screenshot(workspace: Path, env: str | None, path: Path, size: tuple[int, int]) -> Path:
    app = CutoverApp(workspace, env, claim=False)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        await pilot.wait_for_scheduled_animations()
        await pilot.pause()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(app.export_screenshot(), encoding="utf-8")
    return path


def screenshot(workspace: Path, env: str | None, path: Path, *, size: tuple[int, int] = (120, 40)) -> Path:
    """Render the runbook screen (the environment picker without ``env``) headless into an SVG."""
    return asyncio.run(_screenshot(Path(workspace), env, Path(path), size))


__all__ = ["CutoverApp", "remappable_bindings", "run_tui", "screenshot"]
