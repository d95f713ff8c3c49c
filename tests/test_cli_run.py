"""`cutover run`, `status`, `snapshot`, `invoice` and `rollback` as an operator meets them:
messages, exit codes, the journal and the simulator's SQLite. The environment is a rehearsal
profile over a private copy of the seeded world; each command starts its simulator itself."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from cutover.cli import main, runbook_commands
from cutover.engine import step_states
from cutover.journal import Journal, WriterLock
from cutover.runbook.steps import RUNBOOK

CUTOVER_DATE = "2026-12-01"


def cli(*args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), input=input, env={"CUTOVER_ENV": "", "CUTOVER_WORKSPACE": ""})


@pytest.fixture
def ws(world_db: Path, tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    added = cli("env", "add", "rehearsal", "--kind", "rehearsal", "--sim-db", str(world_db), "--workspace", str(ws))
    assert added.exit_code == 0, added.output
    return ws


def run(ws: Path, *args: str, input: str | None = None):
    return cli("run", "--env", "rehearsal", "--workspace", str(ws), *args, input=input)


def states(ws: Path):
    with Journal.open(ws, create=False) as journal:
        return step_states(journal, "rehearsal", RUNBOOK)


def milestones(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT count(*) FROM dv_msdyn_contractlinescheduleofvalues").fetchone()[0]
    finally:
        conn.close()


def test_without_a_terminal_the_run_stops_at_the_first_manual_step_waiting(ws, world_db):
    result = run(ws, "--source", str(world_db.with_suffix(".csv")), "--cutover-date", CUTOVER_DATE)
    assert result.exit_code == 1, result.output
    assert "[1/" in result.output and "preflight.environment" in result.output
    assert "done — journal head: row " in result.output
    assert "waiting for attestation: preflight.version" in result.output
    st = states(ws)
    assert st["preflight.environment"].finished and not st["preflight.version"].finished

    status = cli("status", "--env", "rehearsal", "--workspace", str(ws))
    assert status.exit_code == 0, status.output
    out = status.output
    assert "done     preflight.environment" in out
    assert "next: preflight.version" in out
    assert "last run stopped at preflight.version: waiting for the operator's attestation" in out
    assert f"cutover date {CUTOVER_DATE}" in out
    assert "journal head: row " in out and "journal chain verifies" in out

    # resuming with the extract from the journal (no --source): same stop, nothing redone
    again = run(ws)
    assert again.exit_code == 1 and "resuming the run of 'rehearsal' at preflight.version" in again.output


def test_a_resume_with_a_changed_extract_is_refused(ws, world_db, tmp_path):
    extract = world_db.with_suffix(".csv")
    assert run(ws, "--source", str(extract), "--cutover-date", CUTOVER_DATE).exit_code == 1
    changed = tmp_path / "changed.csv"
    changed.write_text(
        extract.read_text(encoding="utf-8").replace("Invoiced,LEG-INV", "Invoiced,LEG-INV-X", 1), encoding="utf-8"
    )
    refused = run(ws, "--source", str(changed))
    assert refused.exit_code == 2, refused.output
    assert "this run started with other inputs; changed: the extract" in refused.output


def test_a_second_writer_is_refused_naming_the_holder(ws, world_db):
    with WriterLock(ws, "rehearsal", command="cutover tui --env rehearsal"):
        result = run(ws, "--source", str(world_db.with_suffix(".csv")), "--cutover-date", CUTOVER_DATE)
    assert result.exit_code == 3, result.output
    assert "is being worked on by another process" in result.output
    assert "`cutover tui --env rehearsal`" in result.output
    assert not (ws / "journal.sqlite").exists() or not states(ws)["preflight.environment"].started


def test_at_a_terminal_the_operator_attests_by_name(ws, world_db, monkeypatch):
    monkeypatch.setattr(runbook_commands, "_stdin_is_terminal", lambda: True)
    result = run(
        ws,
        "--source", str(world_db.with_suffix(".csv")),
        "--cutover-date", CUTOVER_DATE,
        "--until", "preflight.maintenance",
        input="Ada Lovelace\nyes\n\nyes\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "attested by Ada Lovelace" in result.output
    assert "run finished (through preflight.maintenance)" in result.output
    st = states(ws)
    assert st["preflight.version"].attested_by == "Ada Lovelace" == st["preflight.maintenance"].attested_by
    status = cli("status", "--env", "rehearsal", "--workspace", str(ws)).output
    assert "attested by Ada Lovelace" in status and "next: preflight.source" in status


def test_a_refused_attestation_stops_the_run_without_failing_the_step(ws, world_db, monkeypatch):
    monkeypatch.setattr(runbook_commands, "_stdin_is_terminal", lambda: True)
    result = run(ws, "--source", str(world_db.with_suffix(".csv")), "--cutover-date", CUTOVER_DATE, input="Ada\nno\n")
    assert result.exit_code == 1, result.output
    assert "stopped at preflight.version: waiting for the operator's attestation" in result.output
    assert not states(ws)["preflight.version"].failed


def test_unattended_and_faults_are_for_rehearsal_profiles_only(ws, world_db):
    prod = cli(
        "env", "add", "night", "--kind", "production", "--dataverse-url", "https://contoso.crm.dynamics.com",
        "--fno-url", "https://contoso.operations.dynamics.com", "--tenant", "contoso.onmicrosoft.com",
        "--client-id", "00000000-0000-0000-0000-000000000001", "--auth", "client-secret", "--secret-env", "NIGHT_SECRET",
        "--workspace", str(ws),
    )  # fmt: skip
    assert prod.exit_code == 0, prod.output
    source = str(world_db.with_suffix(".csv"))
    unattended = cli("run", "--env", "night", "--workspace", str(ws), "--source", source, "--unattended")
    assert unattended.exit_code == 2 and "--unattended is for rehearsal profiles" in unattended.output
    wrong = cli("run", "--env", "night", "--workspace", str(ws), "--source", source, "--confirm-production", "nigth")
    assert wrong.exit_code == 2 and "is not its name" in wrong.output
    fault = run(ws, "--source", source, "--rehearsal-fault", "throttle-storm")
    assert fault.exit_code == 2 and "go with --unattended" in fault.output
    invoicing = cli("invoice", "--env", "night", "--workspace", str(ws), "--create")
    assert invoicing.exit_code == 2 and "needs --confirm-production night" in invoicing.output


def test_the_cli_operator_on_production_needs_the_name_again():
    class Step:
        id, title, what = "migrate.milestones", "Create the milestones", "…"

    given = runbook_commands.CliOperator(confirm_production="night", interactive=False)
    assert asyncio.run(given.confirm_production(Step, "night")) is True
    headless = runbook_commands.CliOperator(interactive=False)
    assert asyncio.run(headless.confirm_production(Step, "night")) is False
    assert "--confirm-production night" in headless.declined
    assert asyncio.run(headless.confirm_point_of_no_return(Step)) is False
    assert asyncio.run(headless.acknowledge_not_verified(Step, None)) is None


@pytest.fixture
def rehearsed(world_db: Path, tmp_path: Path):
    """A rehearsal through invoice.create: milestones migrated, drafts made, nothing confirmed."""
    folder = tmp_path / "r"
    result = cli("rehearse", "--world", str(world_db), "--workspace", str(folder), "--until", "invoice.create")
    assert result.exit_code == 0, result.output
    return folder


def test_invoice_shows_the_state_then_rollback_undoes_the_run(rehearsed, seeded_template):
    ws = rehearsed
    db = ws / "rehearsal.sqlite"
    shown = cli("invoice", "--env", "rehearsal", "--workspace", str(ws))
    assert shown.exit_code == 0, shown.output
    assert "20 contract(s):" in shown.output
    assert shown.output.count("Draft; milestones: ") == 20 and "next: confirm" in shown.output

    snap = cli("snapshot", "--env", "rehearsal", "--label", "before", "--workspace", str(ws))
    assert snap.exit_code == 2 and "already exists" in snap.output
    retaken = cli("snapshot", "--env", "rehearsal", "--label", "before", "--retake", "--workspace", str(ws))
    assert retaken.exit_code == 0, retaken.output
    assert "legal entities: " in retaken.output and "snapshot 'before': 500 AR and 5,000 GL rows" in retaken.output
    assert len(list((ws / "snapshots" / "rehearsal").glob("before.*"))) == 1  # the earlier one, kept aside

    result = cli(
        "rollback", "--env", "rehearsal", "--workspace", str(ws), "--source", str(ws / "legacy-milestones.csv")
    )
    out = result.output
    assert "deleted 20 draft invoice(s) and 150 milestone(s)" in out
    assert "Dataverse: none of this run's milestones or drafts is left" in out
    assert "AR/GL: equal to the 'before' snapshot" in out
    # the simulator does not propagate deletes to F&O: those rows are listed for a person, so not ok
    assert "F&O: 150 ProjectContractLineMilestones row(s) with this run's ids remain" in out
    assert result.exit_code == 1 and "rollback incomplete" in out
    assert milestones(db) == milestones(seeded_template)
    st = states(ws)
    assert not st["migrate.milestones"].finished and st["snapshot.before"].finished

    status = cli("status", "--env", "rehearsal", "--workspace", str(ws)).output
    assert "next: migrate.milestones" in status


def test_invoice_refuses_while_the_maps_run(world_db, tmp_path, seeded_template):
    folder = tmp_path / "r"
    done = cli("rehearse", "--world", str(world_db), "--workspace", str(folder), "--until", "migrate.verify-fno")
    assert done.exit_code == 0, done.output
    refused = cli(
        "invoice", "--env", "rehearsal", "--workspace", str(folder), "--create", "--maps-stopped-attested", "Ada"
    )
    assert refused.exit_code == 1, refused.output
    assert "running" in refused.output and "maps.stop-three" in refused.output
    conn = sqlite3.connect(folder / "rehearsal.sqlite")
    assert conn.execute("SELECT count(*) FROM dv_invoices").fetchone()[0] == 0
    conn.close()


def test_rollback_is_refused_past_the_point_of_no_return(world_db, tmp_path):
    folder = tmp_path / "r"
    done = cli("rehearse", "--world", str(world_db), "--workspace", str(folder), "--until", "invoice.confirm")
    assert done.exit_code == 0, done.output
    refused = cli("rollback", "--env", "rehearsal", "--workspace", str(folder))
    assert refused.exit_code == 1, refused.output
    assert "confirm" in refused.output
    assert milestones(folder / "rehearsal.sqlite") > 0
