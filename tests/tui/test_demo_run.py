"""A whole rehearsal from the TUI, as an operator drives it: every step from the first to
``snapshot.after`` against the simulator, every manual step attested by name in its modal."""

from __future__ import annotations

from cutover.journal import Journal
from cutover.runbook.steps import CUTOVER as RUNBOOK  # through snapshot.after

from .helpers import OPERATOR, demo_app, drive_run, rehearsal_workspace, runbook, screen_text, until


async def test_the_whole_runbook_runs_from_the_tui(world_db, tmp_path):
    ws = rehearsal_workspace(world_db, tmp_path / "ws")
    app = demo_app(world_db, ws)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = runbook(app)
        await until(pilot, lambda: "Ready: r runs the runbook" in screen_text(app), 10, "the ready line")
        assert "› ○ preflight.environment" in screen_text(app)
        await pilot.press("r")
        answered = await drive_run(pilot)
        text = screen_text(app)
        assert "The run is complete: every step is done." in text, text
        assert "✗" not in text and "○" not in text
        manual = [s.id for s in RUNBOOK if s.kind != "auto"]
        assert [a for a in answered if a != "point-of-no-return"] == manual
        assert answered.count("point-of-no-return") == 1
        assert screen.last_finished is not None and screen.last_finished.ok

        # the snapshot summary and the check results are on the step's detail
        screen.query_one("#steps").select_step("snapshot.after")
        await pilot.pause()
        text = screen_text(app)
        assert "Snapshot:" in text and "AR rows" in text and "✓ snapshot 'after'" in text

    with Journal.open(ws) as journal:
        finished = [e.step for e in journal.entries("rehearsal") if e.kind == "step.finished"]
        attested = {e.step: e.actor for e in journal.entries("rehearsal") if e.kind == "step.attested"}
        assert journal.verify().ok
    assert finished == list(RUNBOOK.ids)
    assert set(attested.values()) == {OPERATOR} and set(attested) == set(manual)
