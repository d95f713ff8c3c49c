"""The headless screenshot, the device-code sign-in modal, the one error path, and NO_COLOR."""

from __future__ import annotations

import asyncio

from textual.app import App

from cutover.errors import SimulatorStartError
from cutover.tui.app import screenshot
from cutover.tui.modals.device_code import DeviceCodeModal
from cutover.tui.modals.error import ErrorModal

from .helpers import demo_app, rehearsal_workspace, screen_text, until


def test_screenshot_renders_the_runbook_screen_without_taking_the_run(world_db, tmp_path):
    ws = rehearsal_workspace(world_db, tmp_path / "ws")
    out = screenshot(ws, "rehearsal", tmp_path / "shots" / "runbook.svg", size=(80, 24))
    svg = out.read_text(encoding="utf-8")
    assert svg.startswith("<svg") and "preflight.environment" in svg and "snapshot.after" in svg
    assert not (ws / ".locks" / "rehearsal.holder.json").exists()


async def test_the_device_code_is_shown_and_cancelling_stops_the_sign_in():
    cancel = asyncio.Event()

    class Host(App):
        def on_mount(self) -> None:
            self.push_screen(DeviceCodeModal("To sign in, use a web browser…", "ABCD-1234", "https://microsoft.com/devicelogin", cancel))  # fmt: skip

    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        text = screen_text(app)
        assert "https://microsoft.com/devicelogin" in text and "ABCD-1234" in text
        await pilot.press("escape")
        await pilot.pause()
        assert cancel.is_set() and not isinstance(app.screen, DeviceCodeModal)


async def test_a_failing_worker_opens_the_error_modal_with_message_where_and_fix(world_db, tmp_path):
    ws = rehearsal_workspace(world_db, tmp_path / "ws")
    world_db.unlink()  # the simulator database is gone: opening the environment fails
    app = demo_app(world_db, ws)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ErrorModal), 15, "the error modal")
        report = app.screen.report
        assert report.title == SimulatorStartError.__name__
        assert f"the simulator database {world_db} does not exist" in report.message
        assert report.fix and "cutover sim seed" in report.fix
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, ErrorModal)


async def test_no_color_still_tells_the_states_apart(world_db, tmp_path, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    ws = rehearsal_workspace(world_db, tmp_path / "ws")
    app = demo_app(world_db, ws)
    assert app.no_color
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert "› ○ preflight.environment" in screen_text(app)
