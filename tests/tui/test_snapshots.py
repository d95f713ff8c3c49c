"""The main screens at 80×24 (the smallest supported terminal) and 120×40."""

from __future__ import annotations

from pathlib import Path

import pytest

from cutover.config import Profile, update_config
from cutover.errors import ChecksFailed
from cutover.runbook.steps import CUTOVER as RUNBOOK  # through snapshot.after
from cutover.tui.app import CutoverApp
from cutover.tui.modals.attest import AttestModal
from cutover.tui.modals.error import ErrorModal, ErrorReport
from cutover.tui.screens.help import HelpScreen

from .helpers import demo_app, rehearsal_workspace, until
from .snapshots import assert_snapshot
from .synthetic import production_workspace, synthetic_app

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]


@pytest.fixture
def demo_ws(world_db, tmp_path) -> Path:
    return rehearsal_workspace(world_db, tmp_path / "ws")


async def settle(pilot) -> None:
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES)
async def test_runbook_screen(world_db, demo_ws, size):
    app = demo_app(world_db, demo_ws)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        assert_snapshot(app, "runbook")


@pytest.mark.parametrize("size", SIZES)
async def test_manual_step_attestation(world_db, demo_ws, size):
    app = demo_app(world_db, demo_ws)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        app.push_screen(AttestModal(RUNBOOK.step("map.stop-milestones"), performed=True))
        await settle(pilot)
        assert_snapshot(app, "attest")


@pytest.mark.parametrize("size", SIZES)
async def test_production_confirmation(tmp_path, size):
    ws = production_workspace(tmp_path / "ws")
    app = synthetic_app(ws, {"maps": {}})
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await pilot.press("r")
        await until(pilot, lambda: "PRODUCTION write" in str(app.screen.query(".modal-body").first().border_title or ""), 5)  # fmt: skip
        await settle(pilot)
        assert_snapshot(app, "production")


@pytest.mark.parametrize("size", SIZES)
async def test_help_and_error(world_db, demo_ws, size):
    app = demo_app(world_db, demo_ws)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), 5)
        await settle(pilot)
        assert_snapshot(app, "help")
        await pilot.press("escape")

        app.push_screen(ErrorModal(ErrorReport.of(ChecksFailed("the extract has 3 problem(s); nothing was written",
                                                                 where="legacy-milestones.csv",
                                                                 fix="correct the rows listed in extract-problems.csv"))))  # fmt: skip
        await settle(pilot)
        assert_snapshot(app, "error")


@pytest.mark.parametrize("size", SIZES)
async def test_environment_picker(tmp_path, monkeypatch, size):
    monkeypatch.chdir(tmp_path)
    ws = Path("ws")
    update_config(ws, lambda c: c.add(Profile(name="rehearsal", kind="rehearsal", sim_db="world.sqlite")))
    production_workspace(ws)
    app = CutoverApp(ws)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        assert_snapshot(app, "environments")
