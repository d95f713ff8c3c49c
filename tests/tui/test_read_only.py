"""A second window on the same run opens read-only, names the writer, follows the journal,
and takes over once the writer has let go."""

from __future__ import annotations

import os

from cutover.journal import Journal, WriterLock

from .helpers import runbook, screen_text, status, text_of, until
from .synthetic import ENV, production_workspace, synthetic_app


async def test_a_second_window_watches_read_only_and_names_the_holder(tmp_path):
    ws = production_workspace(tmp_path / "ws", kind="sandbox")
    world = {"maps": {}}
    writer = WriterLock(ws, ENV, command="cutover tui --env night")
    writer.acquire()
    try:
        app = synthetic_app(ws, world)
        async with app.run_test(size=(120, 40)) as pilot:
            screen = runbook(app)
            banner = text_of(screen, "#readonly-banner")
            assert banner.startswith("READ-ONLY — environment 'night'")
            assert f"pid {os.getpid()}" in banner and "`cutover tui --env night`" in banner
            assert "READ-ONLY" in screen_text(app)
            await pilot.press("r")  # cannot run: nothing happens
            await pilot.pause()
            assert not screen.running and "loaded" not in world
            with Journal.open(ws) as journal:  # the writer goes on
                journal.append("step.started", env=ENV, step="load", data={"title": "Load milestones"})
            await until(pilot, lambda: "◐ load" in screen_text(app), 5, "the journal to be followed")
        writer.release()
        app = synthetic_app(ws, world)
        writer.acquire()
        async with app.run_test(size=(120, 40)) as pilot:
            screen = runbook(app)
            assert screen.read_only
            writer.release()
            await until(pilot, lambda: screen.read_only is None, 5, "the take-over")
            assert not screen.query_one("#readonly-banner").display
            assert status(app).startswith("The run was interrupted in load")
    finally:
        writer.release()
