"""Rollback before the point of no return (issue #10 item 7), rehearsed against the simulator:
the runbook runs in-process up to a step, then `cutover.rollback.rollback` undoes the run."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from cutover.config import Profile, load_config, update_config
from cutover.domain import InvoiceStatus, ProjectInvoiceStatus
from cutover.engine import RunContext, run
from cutover.invoicing import Polling
from cutover.journal import Journal, RunInputs
from cutover.migrate import milestone_records
from cutover.rehearsal import RehearsalOperator, SimulatorAdmin, rehearsal_runbook
from cutover.rollback import (
    FNO_REMOVAL_PATH,
    RollbackRefused,
    rollback,
)
from cutover.runbook.events import RunFinished
from cutover.runbook.steps import RUNBOOK
from cutover.session import open_session
from cutover.source import load_and_validate

CUTOVER_DATE = "2026-12-01"  # the seeded world's go-live date
ENV = "rehearsal"
FAST = Polling(timeout_s=1.0, first_wait_s=0.05, max_wait_s=0.2)
MILESTONES = "dv_msdyn_contractlinescheduleofvalues"


def _profile(world_db: Path, ws: Path) -> Profile:
    update_config(ws, lambda c: c.add(Profile(name=ENV, kind="rehearsal", sim_db=str(world_db)), replace=True))
    return load_config(ws).get(ENV)


async def _rehearse(session, profile, world_db: Path, ws: Path, until: str) -> RunFinished:
    journal = Journal.open(ws)
    try:
        ctx = RunContext(
            env=ENV,
            profile=profile,
            workspace=ws,
            journal=journal,
            session=session,
            inputs=RunInputs.of(world_db.with_suffix(".csv"), None, CUTOVER_DATE),
            rehearsal=True,
        )
        events = [e async for e in run(rehearsal_runbook(RUNBOOK.until(until)), ctx, RehearsalOperator())]
    finally:
        journal.close()
    finished = events[-1]
    assert isinstance(finished, RunFinished) and finished.ok, finished
    return finished


async def _log(session, since: int = 0) -> list[dict]:
    base, headers = session.simulator_admin()
    return await SimulatorAdmin(base, headers).call("GET", f"requests?since={since}")


def _deletes(log: list[dict], entity_set: str) -> list[str]:
    return [e["path"] for e in log if e["method"] == "DELETE" and f"/{entity_set}(" in e["path"]]


def _db(world_db: Path, sql: str, *args) -> list[tuple]:
    with closing(sqlite3.connect(world_db)) as conn:
        return conn.execute(sql, args).fetchall()


def _ledgers(world_db: Path) -> tuple:
    """AR and GL as the simulator's own tables hold them: row counts and sums."""
    return (
        _db(world_db, 'SELECT count(*), sum("AmountCur"), sum("AmountMst") FROM "fno_CustTransactions"')[0],
        _db(
            world_db, 'SELECT count(*), sum("AccountingCurrencyAmount") FROM "fno_GeneralJournalAccountEntryBiEntities"'
        )[0],
        _db(world_db, 'SELECT count(*) FROM "fno_GeneralJournalEntryBiEntities"')[0],
    )


def _milestone_ids(world_db: Path) -> set[str]:
    return {r[0] for r in _db(world_db, f'SELECT msdyn_contractlinescheduleofvalueid FROM "{MILESTONES}"')}


def _extract_ids(world_db: Path) -> set[str]:
    from cutover.domain import deterministic_id
    from cutover.source import read_extract

    raw = read_extract(world_db.with_suffix(".csv"))
    invoiced = raw.frame.filter(raw.frame["legacy_status"] == "Invoiced")
    return {deterministic_id(x) for x in invoiced["legacy_id"].to_list()}


async def test_rollback_after_the_migration_deletes_the_runs_milestones_and_lists_the_rest(world_db, tmp_path):
    ws = tmp_path / "ws"
    profile = _profile(world_db, ws)
    ledgers_before = _ledgers(world_db)
    milestones_before = _milestone_ids(world_db)
    ours = _extract_ids(world_db)
    assert len(ours) == 150 and not ours & milestones_before

    async with open_session(profile, ws, write_pool=True) as session:
        await _rehearse(session, profile, world_db, ws, "migrate.milestones")
        assert ours <= _milestone_ids(world_db)
        seen = (await _log(session))[-1]["seq"]
        progress = []
        report = await rollback(session, ws, ENV, polling=FAST, progress=progress.append)
        log = await _log(session, seen)

    # Dataverse: exactly the run's 150 milestones deleted, one DELETE each, no invoice touched
    assert _milestone_ids(world_db) == milestones_before
    deleted = _deletes(log, "msdyn_contractlinescheduleofvalues")
    assert len(deleted) == 150 and {p.rsplit("(", 1)[1].rstrip(")") for p in deleted} == ours
    assert not _deletes(log, "invoices")
    assert [e for e in log if e["method"] not in ("GET", "DELETE")] == []
    assert report.created == 150 and report.deleted_milestones == 150 and report.basis == "planned"
    assert report.dataverse_ok and not report.remaining_milestones and not report.kept and not report.unaccounted
    assert progress[-1].phase == "done" and progress[-1].done == 150

    # F&O: the simulator does not propagate deletes, so the 150 rows stay, listed with the click path
    fno = _db(world_db, 'SELECT "ContractLineMilestoneGuid", "TransStatus" FROM "fno_ProjectContractLineMilestones"')
    assert {g for g, _ in fno} >= ours
    assert {r.milestone_id for r in report.fno_rows} == ours
    assert {r.trans_status for r in report.fno_rows} == {"Invoiced"}
    assert report.fno_click_path == FNO_REMOVAL_PATH and not report.fno_ok and not report.ok

    # AR/GL: equal to before, by the tool's snapshot comparison and by the simulator's own tables
    assert report.balances_ok, report.balances.summary()
    assert _ledgers(world_db) == ledgers_before
    assert (ws / "snapshots" / ENV / "rollback" / "manifest.json").is_file()

    # the map steps to undo, version first, each with its undo click path
    undo = {u.step: u for u in report.map_undo}
    assert list(undo) == ["map.save-cutover-version", "map.stop-milestones"]
    assert undo["map.save-cutover-version"].click_path == RUNBOOK.step("maps.revert-version").click_path
    assert undo["map.save-cutover-version"].covers == ("map.add-transstatus",)
    assert undo["map.stop-milestones"].click_path[-1] == "Run"
    assert any("rollback.finished" == e.kind for e in Journal.open(ws).entries(ENV))


async def test_a_second_rollback_does_nothing_and_says_so(world_db, tmp_path):
    ws = tmp_path / "ws"
    profile = _profile(world_db, ws)
    async with open_session(profile, ws, write_pool=True) as session:
        await _rehearse(session, profile, world_db, ws, "migrate.milestones")
        first = await rollback(session, ws, ENV, polling=FAST)
        assert first.deleted_milestones == 150
        seen = (await _log(session))[-1]["seq"]
        second = await rollback(session, ws, ENV, polling=FAST)
        log = await _log(session, seen)
    assert second.nothing_to_do and second.deleted_milestones == 0 and not second.deleted_invoices
    assert second.lines()[0].startswith("nothing to roll back")
    assert [e for e in log if e["method"] != "GET"] == []
    assert second.dataverse_ok and second.balances_ok and len(second.fno_rows) == 150

    # the operator removes the listed F&O rows by hand (the click path); the next rollback succeeds
    with closing(sqlite3.connect(world_db)) as conn:
        conn.executemany(
            'DELETE FROM "fno_ProjectContractLineMilestones" WHERE "ContractLineMilestoneGuid" = ?',
            [(r.milestone_id,) for r in second.fno_rows],
        )
        conn.commit()
    async with open_session(profile, ws, write_pool=True) as session:
        third = await rollback(session, ws, ENV, polling=FAST)
    assert third.nothing_to_do and third.ok, third.lines()


async def test_rollback_after_invoice_create_deletes_the_drafts_first(world_db, tmp_path):
    ws = tmp_path / "ws"
    profile = _profile(world_db, ws)
    ledgers_before = _ledgers(world_db)
    ours = _extract_ids(world_db)
    async with open_session(profile, ws, write_pool=True) as session:
        await _rehearse(session, profile, world_db, ws, "invoice.create")
        drafts = {r[0] for r in _db(world_db, "SELECT invoiceid FROM dv_invoices")}
        assert len(drafts) == 20
        seen = (await _log(session))[-1]["seq"]
        report = await rollback(session, ws, ENV, polling=FAST)
        log = await _log(session, seen)

    deleted_drafts = _deletes(log, "invoices")
    assert {p.rsplit("(", 1)[1].rstrip(")") for p in deleted_drafts} == drafts and len(deleted_drafts) == 20
    first_milestone_delete = min(
        i for i, e in enumerate(log) if "contractlinescheduleofvalues(" in e["path"] and e["method"] == "DELETE"
    )
    last_draft_delete = max(i for i, e in enumerate(log) if "/invoices(" in e["path"] and e["method"] == "DELETE")
    assert last_draft_delete < first_milestone_delete, "drafts go first: a milestone on a draft cannot be deleted"
    assert _db(world_db, "SELECT count(*) FROM dv_invoices") == [(0,)]
    assert _ledgers(world_db) == ledgers_before
    assert not ours & _milestone_ids(world_db)
    assert set(report.deleted_invoices) == drafts and report.deleted_milestones == 150
    assert report.dataverse_ok and report.balances_ok
    assert [u.step for u in report.map_undo][0] == "map.save-cutover-version"
    assert "maps.stop-three" in [u.step for u in report.map_undo]


async def test_rollback_after_invoice_confirm_is_refused_and_deletes_nothing(world_db, tmp_path):
    ws = tmp_path / "ws"
    profile = _profile(world_db, ws)
    async with open_session(profile, ws, write_pool=True) as session:
        await _rehearse(session, profile, world_db, ws, "invoice.confirm")
        seen = (await _log(session))[-1]["seq"]
        with pytest.raises(RollbackRefused) as refused:
            await rollback(session, ws, ENV, polling=FAST)
        log = await _log(session, seen)
    assert refused.value.exit_code == 1
    assert "point of no return" in str(refused.value) and "invoice.confirm sent a confirmation" in str(refused.value)
    assert [e for e in log if e["method"] != "GET"] == []
    assert _db(world_db, "SELECT msdyn_projectinvoicestatus, count(*) FROM dv_invoices GROUP BY 1") == [
        (int(ProjectInvoiceStatus.CONFIRMED), 20)
    ]
    assert dict(_db(world_db, f'SELECT msdyn_invoicestatus, count(*) FROM "{MILESTONES}" GROUP BY 1')) == {
        int(InvoiceStatus.POSTED): 150
    }
    kinds = [e.kind for e in Journal.open(ws).entries(ENV) if e.step == "rollback"]
    assert kinds == ["rollback.started", "rollback.refused"]


async def test_a_milestone_that_existed_before_the_run_is_not_deleted(world_db, tmp_path):
    ws = tmp_path / "ws"
    profile = _profile(world_db, ws)
    async with open_session(profile, ws, write_pool=True) as session:
        _, result = await load_and_validate(world_db.with_suffix(".csv"), session, None, CUTOVER_DATE)
        rows = result.rows.sort("legacy_id")
        identical, changed = milestone_records(rows[0:1])[0], milestone_records(rows[1:2])[0]
        changed["msdyn_name"] = "entered before the cutover"
        entity_set = profile.entity_set("milestones")
        key = "msdyn_contractlinescheduleofvalueid"
        for record in (identical, changed):
            await session.dataverse.upsert(entity_set, record[key], record, create_only=True)
        before = {identical[key], changed[key]}
        assert before <= _milestone_ids(world_db)

        await _rehearse(session, profile, world_db, ws, "migrate.milestones")
        plan = [
            e.data["figures"]["detail"]
            for e in Journal.open(ws).entries(ENV)
            if e.step == "migrate.milestones"
            and e.data.get("figures", {}).get("phase") == "load"
            and "to create" in e.data["figures"].get("detail", "")
        ]
        assert plan == ["148 to create, 1 to update"]  # the identical one is not written at all
        seen = (await _log(session))[-1]["seq"]
        report = await rollback(session, ws, ENV, polling=FAST)
        log = await _log(session, seen)

    deleted = {p.rsplit("(", 1)[1].rstrip(")") for p in _deletes(log, "msdyn_contractlinescheduleofvalues")}
    assert len(deleted) == 148 and not deleted & before
    assert before <= _milestone_ids(world_db)
    assert not (_extract_ids(world_db) - before) & _milestone_ids(world_db)
    # the runbook journals the plan's created and existing ids before writing: both milestones
    # that existed before the run are known to be someone else's, and neither is deleted
    assert report.basis == "planned" and not report.unaccounted
    assert report.created == 148 and report.dataverse_ok and report.balances_ok
