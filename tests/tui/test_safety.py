"""Safety in the UI on a production profile with synthetic steps: the red banner, the name typed
before a write, the attestation by name, the gate that blocks and says why, the point of no
return asked once more, a failed check that offers retry or investigate — never a skip."""

from __future__ import annotations

from cutover.journal import Journal
from cutover.tui.modals.attest import AttestModal
from cutover.tui.modals.confirm import ConfirmModal
from cutover.tui.modals.confirm_production import ConfirmProductionModal
from cutover.tui.modals.text import TextModal

from .helpers import attest, detail, press_button, runbook, screen_text, status, until
from .synthetic import ENV, production_workspace, synthetic_app

STOPPED = {"milestones": "stopped", "actuals": "stopped", "invoices": "stopped"}


def kinds(ws, step=None):
    with Journal.open(ws) as journal:
        return [e.kind for e in journal.entries(ENV) if step is None or e.step == step]


async def confirm_production(pilot, typed: str) -> None:
    await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmProductionModal), 5, "the production modal")
    await pilot.press(*typed)
    await pilot.press("enter")
    await pilot.pause()


async def test_production_shows_a_red_banner_and_a_write_needs_the_name_typed(tmp_path):
    ws = production_workspace(tmp_path / "ws")
    world = {"maps": dict(STOPPED)}
    app = synthetic_app(ws, world)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = runbook(app)
        assert "PRODUCTION  ·  night" in screen_text(app)
        await pilot.press("r")
        await confirm_production(pilot, "nigth")  # a typo writes nothing
        assert isinstance(app.screen, ConfirmProductionModal)
        assert "'nigth' is not 'night': nothing was written" in screen_text(app)
        assert "loaded" not in world
        await pilot.press("escape")  # not now: the run stops at the step, without failing it
        await until(pilot, lambda: not screen.running, 5, "the run to stop")
        assert status(app).startswith("Stopped at load: the production write was not confirmed")
        assert "loaded" not in world and "step.failed" not in kinds(ws)

        await pilot.press("r")
        await pilot.press(*"")
        modal_text = ""
        await until(pilot, lambda: isinstance(app.screen, ConfirmProductionModal), 5)
        field = app.screen.query_one("#environment-name")
        field.value = ""
        await confirm_production(pilot, "night")
        await until(pilot, lambda: isinstance(app.screen, AttestModal), 10, "the manual step")
        modal_text = screen_text(app)
        assert "Click path:" in modal_text and "1. Data management" in modal_text and "3. Stop" in modal_text
        await press_button(pilot, "#confirm")  # no name, nothing ticked: nothing is attested
        await pilot.pause()
        assert "type your name" in screen_text(app) and isinstance(app.screen, AttestModal)
        await attest(pilot, "Dana Night")
        # the invoice step writes: production asks again, then the point of no return asks once more
        await confirm_production(pilot, "night")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), 5, "the point of no return")
        assert app.screen.purpose == "point-of-no-return"
        assert "This cannot be undone" in screen_text(app)
        await pilot.press("enter")  # the focus is on "No": a reflex Enter stops
        await until(pilot, lambda: not screen.running, 5)
        assert "invoiced" not in world
        assert status(app).startswith("Stopped at invoice: the point of no return was not confirmed")
    with Journal.open(ws) as journal:
        attested = [e for e in journal.entries(ENV) if e.kind == "step.attested"]
    assert attested[0].actor == "Dana Night" and attested[0].step == "maps.stop"


async def test_a_gate_that_does_not_hold_blocks_the_step_and_says_why(tmp_path):
    ws = production_workspace(tmp_path / "ws", kind="sandbox")
    world = {"maps": dict(STOPPED)}
    app = synthetic_app(ws, world)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = runbook(app)
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, AttestModal), 10)
        await attest(pilot)
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), 5)
        world["maps"]["actuals"] = "running"  # someone restarts a map before invoicing
        await press_button(pilot, "#cancel")
        await until(pilot, lambda: not screen.running, 5)
        await pilot.press("r")
        await until(pilot, lambda: not screen.running and "■" in screen_text(app), 10, "the blocked step")
        text = screen_text(app)
        assert "■ invoice" in text
        assert "no invoice before the three maps are stopped: actuals still running" in status(app)
        assert "invoiced" not in world
        await pilot.press("i")  # investigate: the step's journal and the reason
        await until(pilot, lambda: isinstance(app.screen, TextModal), 5)
        assert "Last problem: step.blocked: no invoice before the three maps are stopped" in screen_text(app)
        await pilot.press("escape")
        await pilot.press("r")  # retry: blocked again, never skipped
        await until(pilot, lambda: not screen.running and kinds(ws, "invoice").count("step.blocked") == 2, 10)
        assert "invoiced" not in world


async def test_a_failed_check_offers_retry_or_investigate_and_the_retry_goes_on(tmp_path):
    ws = production_workspace(tmp_path / "ws", kind="sandbox")
    world = {"maps": {"milestones": "stopped", "actuals": "stopped", "invoices": "running"}}
    app = synthetic_app(ws, world)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = runbook(app)
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, AttestModal), 10)
        await attest(pilot)
        await until(pilot, lambda: not screen.running, 5)
        text = screen_text(app)
        assert "✗ maps.stop" in text, text
        assert "✗ the attestation is contradicted by live state: invoices still running" in detail(app)
        assert status(app) == (
            "Stopped at maps.stop: the attestation is contradicted by live state: invoices still running"
            "  —  r retries, i investigates"
        )
        assert not any("skip" in b.binding.action for b in app.screen.active_bindings.values())
        world["maps"]["invoices"] = "stopped"  # the operator stops it for real
        await pilot.press("r")  # the engine checks the interrupted step first: now it holds
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), 10)
        assert kinds(ws, "maps.stop")[-2:] == ["check.passed", "step.finished"]
        await press_button(pilot, "#confirm")
        await until(pilot, lambda: not screen.running, 5)
        assert status(app) == "The run is complete: every step is done."
        assert world["invoiced"] == 1


async def test_quitting_while_a_step_runs_asks_first_and_the_reopened_run_resumes_there(tmp_path):
    ws = production_workspace(tmp_path / "ws", kind="sandbox")
    world = {"maps": dict(STOPPED), "hold_at": 2}
    app = synthetic_app(ws, world)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = runbook(app)
        await pilot.press("r")
        await until(pilot, lambda: "held" in world and screen.running_step == "load", 10, "the step to run")
        await until(pilot, lambda: "1 / 3" in screen_text(app), 5, "its progress")
        assert "ETA 0:02" in screen_text(app)
        await pilot.press("ctrl+q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), 5, "the question")
        assert "Quit while a step runs?" in screen_text(app)
        await pilot.press("escape")  # keep running
        assert screen.running
        await pilot.press("ctrl+q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), 5)
        await press_button(pilot, "#confirm")
    assert app.return_code == 0
    assert kinds(ws, "load") == ["step.started", "step.progress"]

    world.pop("hold_at")
    app = synthetic_app(ws, world)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = runbook(app)
        text = screen_text(app)
        assert "› ◐ load" in text and status(app).startswith("The run was interrupted in load; r resumes there")
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, AttestModal), 10)
        started = [k for k in kinds(ws, "load") if k == "step.started"]
        assert len(started) == 2
