"""The verification results and the sign-off, on evidence packs of rehearsed worlds.

The packs are the validation suite's own (tests/verify_worlds.py: a clean world, and one whose
invoices map was left running, so balances moved and vouchers were posted). Each test works on
a copy inside its workspace's ``reports/``, so signing never touches the shared pack."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from textual.widgets import DataTable

from cutover.signoff import sign
from cutover.tui.modals.error import ErrorModal
from cutover.tui.modals.sign import SignModal
from cutover.tui.screens.results import ResultsScreen, ScenarioScreen
from cutover.tui.screens.signoff import SignoffScreen

from .. import verify_worlds
from .helpers import demo_app, rehearsal_workspace, screen_text, text_of, until
from .snapshots import assert_snapshot

worlds = verify_worlds.worlds  # the session's shared cache of rehearsed worlds (a fixture)

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]
FAULT = "invoices-map-left-running"
STAMP = "20261201T230000000000Z"  # the copied pack's folder name (reports/<UTC timestamp>/)
SIGNED_AT = dt.datetime(2026, 12, 1, 23, 30, tzinfo=dt.UTC)


def pack_in(ws: Path, result) -> Path:
    target = ws / "reports" / STAMP
    shutil.copytree(result.report_dir, target)
    return target


@pytest.fixture
def clean(worlds):
    """The clean world's verification (made outside the test's event loop: it runs its own)."""
    return worlds.verified()


@pytest.fixture
def faulted(worlds):
    return worlds.verified(FAULT)


@pytest.fixture
def ws(world_db, tmp_path) -> Path:
    return rehearsal_workspace(world_db, tmp_path / "ws")


async def settle(pilot) -> None:
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()


async def open_results(pilot) -> ResultsScreen:
    app = pilot.app
    await settle(pilot)
    await pilot.press("v")
    await until(pilot, lambda: isinstance(app.screen, ResultsScreen) and app.screen.results is not None, 10, "results")
    await settle(pilot)
    return app.screen


def shown(screen: ResultsScreen) -> list[str]:
    return [s.outcome for s in screen.shown]


async def test_a_clean_pack_reads_passed_for_every_scenario(clean, world_db, ws):
    result = clean
    pack_in(ws, result)
    app = demo_app(world_db, ws)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_results(pilot)
        assert "verification ✓ PASSED" in text_of(screen, "#title")
        assert shown(screen) == ["passed"] * len(result.scenarios) and len(result.scenarios) == 10
        assert "matched 150" in text_of(screen, "#headline")
        await pilot.press("o")  # failed only
        assert shown(screen) == [] and "0 of 10 · failed" in screen_text(app)
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, ResultsScreen), 5, "back to the runbook")


async def test_a_faulted_pack_names_the_failing_scenarios_and_their_mismatch_rows(faulted, world_db, ws):
    result = faulted
    pack_in(ws, result)
    failing = [s.title for s in result.scenarios if s.outcome == "failed"]
    assert len(failing) == 4
    app = demo_app(world_db, ws)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_results(pilot)
        assert "verification ✗ FAILED (6 passed, 4 failed)" in text_of(screen, "#title")
        await pilot.press("o")
        assert [s.title for s in screen.shown] == failing
        await pilot.press("o", "o", "o")  # not verified, passed, back to all
        assert len(screen.shown) == 10
        await pilot.press("t")  # worst first
        assert shown(screen)[:4] == ["failed"] * 4 and screen.sort == "worst first"
        await pilot.press("t")  # by name
        assert [s.title for s in screen.shown] == sorted((s.title for s in screen.shown), key=str.casefold)
        await pilot.press("t", "o")  # run order, failed only
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ScenarioScreen) and app.screen.tables, 10, "the rows")
        scenario = app.screen
        assert scenario.scenario.title == failing[0]
        table = scenario.query_one("#mismatch-0", DataTable)
        await until(pilot, lambda: table.row_count == scenario.scenario.tables[0].total_rows, 5, "every row")
        assert table.row_count == 10
        assert "DE-001" in screen_text(app) and "customer balance(s) moved" in screen_text(app)
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen, 5, "back to the list")


async def test_no_pack_yet_says_so(world_db, ws):
    app = demo_app(world_db, ws)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("v")
        await until(pilot, lambda: any("No evidence pack of rehearsal yet" in n.message for n in app._notifications), 5, "the notice")  # fmt: skip
        assert not isinstance(app.screen, ResultsScreen)


async def sign_as(pilot, name: str, role: str) -> None:
    app = pilot.app
    await pilot.press("g")
    await until(pilot, lambda: isinstance(app.screen, SignModal), 5, "the sign modal")
    await pilot.press(*name, "enter", *role, "enter")
    await until(pilot, lambda: isinstance(app.screen, (SignoffScreen, ErrorModal)), 5, "signed")
    await until(pilot, lambda: not any(w.group == "signoff" and w.is_running for w in app.workers), 10, "the worker")
    await settle(pilot)


async def test_two_people_sign_and_the_same_name_twice_is_refused(clean, world_db, ws):
    pack_in(ws, clean)
    app = demo_app(world_db, ws)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await until(
            pilot, lambda: isinstance(app.screen, SignoffScreen) and app.screen.pack is not None, 10, "sign-off"
        )
        screen = app.screen
        assert "✗ NOT ACCEPTED" in text_of(screen, "#pack-state")
        assert "2 more signature(s)" in text_of(screen, "#pack-problems")
        await sign_as(pilot, "Ada Controller", "Finance controller")
        assert [s.name for s in screen.pack.signatures] == ["Ada Controller"] and not screen.pack.accepted
        await sign_as(pilot, "ada controller", "CFO")
        assert isinstance(app.screen, ErrorModal)
        assert "already signed this pack" in screen_text(app) and "four eyes" in screen_text(app)
        await pilot.press("escape")
        assert len(screen.pack.signatures) == 1
        await sign_as(pilot, "Bob Auditor", "Internal audit")
        assert screen.pack.accepted and "✓ ACCEPTED" in text_of(screen, "#pack-state")
        assert "Bob Auditor" in screen_text(app) and "Internal audit" in screen_text(app)
        await pilot.press("v")  # the same pack's results, and back
        await until(pilot, lambda: isinstance(app.screen, ResultsScreen), 5, "results")
        await pilot.press("a")
        await until(pilot, lambda: app.screen is screen, 5, "back to the sign-off")


async def test_a_tampered_pack_is_named_and_cannot_be_signed(clean, world_db, ws):
    pack = pack_in(ws, clean)
    sign(pack, "Ada Controller", "Finance controller")
    (pack / "report.html").write_text("<h1>Verdict: PASSED</h1>", encoding="utf-8")
    app = demo_app(world_db, ws)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await until(
            pilot, lambda: isinstance(app.screen, SignoffScreen) and app.screen.pack is not None, 10, "sign-off"
        )
        screen = app.screen
        assert "✗ report.html was changed" in text_of(screen, "#pack-problems")
        await sign_as(pilot, "Bob Auditor", "Internal audit")
        assert isinstance(app.screen, ErrorModal) and "report.html was changed" in screen_text(app)
        assert len(screen.pack.signatures) == 1 and not screen.pack.accepted


@pytest.mark.parametrize("size", SIZES)
async def test_results_and_scenario_snapshots(faulted, world_db, ws, size):
    pack_in(ws, faulted)
    app = demo_app(world_db, ws)
    async with app.run_test(size=size) as pilot:
        screen = await open_results(pilot)
        assert_snapshot(app, "results")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ScenarioScreen) and app.screen.tables, 10, "the rows")
        await settle(pilot)
        assert_snapshot(app, "scenario")
        assert screen is not None


@pytest.mark.parametrize("size", SIZES)
async def test_signoff_snapshot(faulted, world_db, ws, size):
    pack = pack_in(ws, faulted)
    sign(pack, "Ada Controller", "Finance controller", now=SIGNED_AT)
    app = demo_app(world_db, ws)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await until(
            pilot, lambda: isinstance(app.screen, SignoffScreen) and app.screen.pack is not None, 10, "sign-off"
        )
        await settle(pilot)
        assert_snapshot(app, "signoff")
