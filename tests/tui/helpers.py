"""Driving the TUI as an operator would: wait for what shows, answer the modals, read the screen."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from cutover.config import Profile, update_config
from cutover.runbook.steps import CUTOVER
from cutover.tui.app import CutoverApp
from cutover.tui.engine_worker import RunDriver
from cutover.tui.modals.attest import AttestModal
from cutover.tui.modals.confirm import ConfirmModal
from cutover.tui.screens.runbook import RunbookScreen

CUTOVER_DATE = "2026-12-01"  # the seeded world's go-live date
OPERATOR = "Dana Night"


def rehearsal_workspace(world_db: Path, ws: Path, name: str = "rehearsal") -> Path:
    update_config(ws, lambda c: c.add(Profile(name=name, kind="rehearsal", sim_db=str(world_db)), replace=True))
    return ws


def demo_app(world_db: Path, ws: Path, **kw) -> CutoverApp:
    """The console on a rehearsal of the cutover procedure (through ``snapshot.after``; the
    verify and signoff steps are tested with the validation suite)."""
    kw.setdefault("driver_factory", lambda workspace, env: RunDriver(workspace, env, runbook=CUTOVER))
    return CutoverApp(ws, "rehearsal", world_db.with_suffix(".csv"), None, cutover_date=CUTOVER_DATE, **kw)


def screen_text(app: CutoverApp) -> str:
    """What the terminal shows now, as plain text (all screens of the stack, the top one last)."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, color_system=None,
                      record=True, legacy_windows=False, safe_box=False)  # fmt: skip
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()


def text_of(screen, selector: str) -> str:
    """The text a Static shows (whole, however the terminal wraps it)."""
    content = screen.query_one(selector).content
    return getattr(content, "plain", None) or str(content)


def status(app: CutoverApp) -> str:
    return text_of(runbook(app), "#status")


def detail(app: CutoverApp) -> str:
    screen = runbook(app)
    return text_of(screen, "#detail-head") + "\n" + text_of(screen, "#detail-body")


async def until(pilot, predicate: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}:\n{screen_text(pilot.app)}")
        await pilot.pause(0.05)


async def press_button(pilot, selector: str) -> None:
    """Click a button of the modal on top, once it is there."""
    await until(pilot, lambda: bool(pilot.app.screen.query(selector)) and pilot.app.screen.is_current, 5, selector)
    await pilot.pause()
    await pilot.click(selector)
    await pilot.pause()


def runbook(app: CutoverApp) -> RunbookScreen:
    return next(s for s in app.screen_stack if isinstance(s, RunbookScreen))


async def attest(pilot, name: str = OPERATOR) -> str:
    """Fill in the attestation modal on screen as an operator does: name, tick, Attest."""
    modal = pilot.app.screen
    assert isinstance(modal, AttestModal), type(modal)
    step = modal.step.id
    field = modal.query_one("#attest-name")
    if field.value != name:  # the modal remembers the last name typed; type it only the first time
        field.value = ""
        await pilot.click("#attest-name")
        await pilot.press(*name)
    await pilot.press("enter")  # to the statement
    await pilot.press("space")  # tick it
    await press_button(pilot, "#confirm")
    return step


async def drive_run(pilot, *, stop_when: Callable[[], bool] | None = None, timeout: float = 120.0) -> list[str]:
    """Answer every modal the run shows (attest by name, confirm the point of no return) until
    the run's worker ends; returns the ids of the attested steps and "point-of-no-return"."""
    app = pilot.app
    screen = runbook(app)
    answered: list[str] = []
    deadline = time.monotonic() + timeout
    await until(pilot, lambda: screen.running or isinstance(app.screen, (AttestModal, ConfirmModal)), 10, "the run")
    while screen.running:
        if stop_when is not None and stop_when():
            return answered
        top = app.screen
        if isinstance(top, AttestModal):
            answered.append(await attest(pilot))
        elif isinstance(top, ConfirmModal) and top.purpose == "point-of-no-return":
            await press_button(pilot, "#confirm")
            answered.append("point-of-no-return")
        if time.monotonic() > deadline:
            raise AssertionError(f"the run did not end:\n{screen_text(app)}")
        await pilot.pause(0.05)
    await asyncio.sleep(0)
    await pilot.pause()
    return answered
