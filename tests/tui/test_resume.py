"""Resume against the simulator: the run is stopped in the middle of the milestone load (the
worker is cancelled, as ``x`` does, and the app quits), and the reopened TUI shows the same run
at that step with its history, resumes there and finishes — with nothing left running."""

from __future__ import annotations

import os
from pathlib import Path

from cutover.journal import Journal
from cutover.runbook.steps import CUTOVER as RUNBOOK  # through snapshot.after
from cutover.simprocess import serving
from cutover.tui.screens.runbook import RunbookScreen

from .helpers import demo_app, drive_run, rehearsal_workspace, runbook, screen_text, status, until


def simulators_of(db: Path) -> list[int]:
    """Processes serving ``db`` (``python -m cutover.sim serve --db DB``), by their command line."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"cutover.sim" in cmd and str(db).encode() in cmd:
            found.append(int(pid))
    return found


async def test_a_run_stopped_mid_migration_resumes_at_that_step(world_db, tmp_path):
    ws = rehearsal_workspace(world_db, tmp_path / "ws")
    stopped: list[str] = []

    def stop_on_first_load_progress(message) -> None:
        event = getattr(message, "event", None)
        if (
            isinstance(message, RunbookScreen.EngineMessage)
            and getattr(event, "kind", "") == "step.progress"
            and event.step == "migrate.milestones"
            and not stopped
        ):
            stopped.append(event.step)
            runbook(app).action_stop()  # what `x` does: cancel the run's worker, right here

    app = demo_app(world_db, ws)
    async with app.run_test(size=(80, 24), message_hook=stop_on_first_load_progress) as pilot:
        await pilot.press("r")
        await drive_run(pilot)
        assert stopped == ["migrate.milestones"]
        assert status(app).startswith("Stopped by you in migrate.milestones; nothing is lost")
        await pilot.press("ctrl+q")  # nothing runs: quits at once
    assert not simulators_of(world_db) and serving(world_db) is None, "the simulator stopped with the run"

    with Journal.open(ws) as journal:
        load = [e.kind for e in journal.entries("rehearsal") if e.step == "migrate.milestones"]
    assert load[0] == "step.started" and "step.finished" not in load and "step.failed" not in load

    app = demo_app(world_db, ws)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = runbook(app)
        text = screen_text(app)
        assert "› ◐ migrate.milestones" in text
        assert "✓ map.save-cutover-version" in text and "✓ preflight.environment" in text  # the history
        assert status(app).startswith("The run was interrupted in migrate.milestones; r resumes there")
        assert screen.query_one("#steps").highlighted_step == "migrate.milestones"
        await pilot.press("r")
        await drive_run(pilot)
        assert status(app) == "The run is complete: every step is done."
        await until(pilot, lambda: not simulators_of(world_db), 10, "the simulator to stop")
    with Journal.open(ws) as journal:
        entries = list(journal.entries("rehearsal"))
    restarted = [e for e in entries if e.step == "migrate.milestones" and e.kind == "step.started"]
    assert [e.data["resumed"] for e in restarted] == [False, True]
    assert [e.step for e in entries if e.kind == "step.finished"] == list(RUNBOOK.ids)
    passed = [e.data["summary"] for e in entries if e.step == "migrate.milestones" and e.kind == "check.passed"]
    assert passed and "every line's totals match" in passed[-1]  # each milestone once, not twice
    assert not simulators_of(world_db)
