"""`cutover rehearse` end to end: a copy of the seeded template world, the run as a real child
process (`python -m cutover.cli run --unattended`), each fault seen at the step that should see
it, crashes killed with SIGKILL and resumed, and what is left behind for `cutover verify`.

Cheap faults run `--until` the step that catches them (the steps after it cannot change where
the run stops); the clean run, the blind ones and the crashes run through `snapshot.after`."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from cutover.cli import main
from cutover.engine import step_states
from cutover.journal import Journal
from cutover.runbook.steps import RUNBOOK

LAST = "snapshot.after"
THROUGH = RUNBOOK.until(LAST).ids


def cli(*args: str):
    return CliRunner().invoke(main, list(args), env={"CUTOVER_ENV": "", "CUTOVER_WORKSPACE": ""})


def rehearse(folder: Path, world: Path, *args: str):
    return cli("rehearse", "--world", str(world), "--workspace", str(folder), *args)


def states(ws: Path):
    with Journal.open(ws, create=False) as journal:
        return step_states(journal, "rehearsal", RUNBOOK)


def kinds(ws: Path) -> list[str]:
    with Journal.open(ws, create=False) as journal:
        return [e.kind for e in journal.entries("rehearsal")]


def count(db: Path, sql: str) -> tuple:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchone()
    finally:
        conn.close()


def dv_counts(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(db)
    try:
        tables = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' AND name LIKE 'dv_%'")
            if not r[0].startswith("dv_msdyn_dualwrite")  # the simulator's own view of its maps, filled as it starts
        ]
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
    finally:
        conn.close()


def invoiced_ids(extract: Path) -> set[str]:
    from cutover.domain import deterministic_id

    with open(extract, newline="", encoding="utf-8") as f:
        return {deterministic_id(r["legacy_id"]) for r in csv.DictReader(f) if r["legacy_status"] == "Invoiced"}


def milestones_once(db: Path, extract: Path) -> None:
    """Every invoiced legacy id exactly once in the simulator's Dataverse, nothing else."""
    total, distinct = count(
        db,
        "SELECT count(*), count(DISTINCT msdyn_contractlinescheduleofvalueid) FROM dv_msdyn_contractlinescheduleofvalues",
    )
    assert total == distinct
    conn = sqlite3.connect(db)
    ids = {
        r[0]
        for r in conn.execute("SELECT msdyn_contractlinescheduleofvalueid FROM dv_msdyn_contractlinescheduleofvalues")
    }
    conn.close()
    assert ids == invoiced_ids(extract)


def test_a_clean_rehearsal_runs_every_step_and_leaves_a_workspace_to_verify(world_db, tmp_path):
    ws = tmp_path / "r1"
    result = rehearse(ws, world_db)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "step timings (step.started → step.finished):" in out
    assert f"rehearsal finished: every step through {LAST} done (1 run(s))" in out
    assert f"next: cutover verify --workspace {ws} --env rehearsal --source {ws / 'legacy-milestones.csv'}" in out
    for step in THROUGH:
        assert f"  {step} " in out  # a line of the timing table
    st = states(ws)
    assert all(st[s].finished for s in THROUGH)
    assert not st["verify"].started
    assert (ws / "snapshots" / "rehearsal" / "after" / "manifest.json").is_file()
    milestones_once(ws / "rehearsal.sqlite", ws / "legacy-milestones.csv")
    assert count(ws / "rehearsal.sqlite", "SELECT count(*) FROM dv_invoices")[0] == 20

    # the folder is taken now: a second rehearsal there is refused before anything is made
    again = rehearse(ws, world_db)
    assert again.exit_code == 2 and "not empty" in again.output

    # a short second rehearsal, timed beside the first
    short = rehearse(tmp_path / "r2", world_db, "--until", "preflight.source", "--compare", str(ws))
    assert short.exit_code == 0, short.output
    table = short.output.split("step timings")[1]
    assert "compared" in table
    total = next(ln.split() for ln in table.splitlines() if ln.strip().startswith("total"))
    assert len(total) == 3 and float(total[1]) < float(total[2])  # a shorter run than the first
    snapshot_line = next(ln for ln in table.splitlines() if ln.strip().startswith("snapshot.after"))
    assert snapshot_line.split()[1] == "-"  # not run in the short one, timed in the first

    # what the rehearsal left is what `cutover verify` needs, as the rehearsal's last line says
    verified = cli(
        "verify", "--workspace", str(ws), "--env", "rehearsal", "--source", str(ws / "legacy-milestones.csv")
    )
    assert verified.exit_code == 0, verified.output


@pytest.mark.parametrize(
    ("fault", "until", "step", "says"),
    [
        ("skip-cutover-version", "map.save-cutover-version", "map.save-cutover-version", "TRANSSTATUS"),
        (
            "milestone-map-left-running",
            "maps.stop-three",
            "maps.stop-three",
            "msdyn_contractlinescheduleofvalues reads",
        ),
        ("invoices-map-left-running", "maps.stop-three", "maps.stop-three", "invoices reads"),
        ("actuals-map-left-running", "maps.stop-three", "maps.stop-three", "msdyn_actuals reads"),
        ("map-version-not-reverted", "maps.revert-version", "maps.revert-version", "version"),
        ("maps-not-restarted", "maps.restart-three", "maps.restart-three", "running"),
        ("invoice-integration-async", "invoice.create", "invoice.create", "asynchronous invoice integration"),
    ],
)
def test_a_mistake_stops_the_rehearsal_at_the_step_that_sees_it(world_db, tmp_path, fault, until, step, says):
    ws = tmp_path / "r"
    result = rehearse(ws, world_db, "--fault", fault, "--until", until)
    assert result.exit_code == 1, result.output
    stopped = result.output.split(f"rehearsal stopped at {step}: ")[1].splitlines()[0]
    assert says in stopped
    st = states(ws)
    assert st[step].failed and not st[step].finished
    assert all(st[s].finished for s in RUNBOOK.ids[: RUNBOOK.ids.index(step)])


def test_an_uninvoiced_row_in_the_extract_stops_validation_before_any_write(world_db, seeded_template, tmp_path):
    ws = tmp_path / "r"
    result = rehearse(ws, world_db, "--fault", "uninvoiced-row-in-extract")
    assert result.exit_code == 1, result.output
    assert "relabelled Invoiced, its legacy invoice number emptied" in result.output
    stopped = result.output.split("rehearsal stopped at preflight.source: ")[1].splitlines()[0]
    assert "the extract has" in stopped and "nothing was written" in stopped
    assert dv_counts(ws / "rehearsal.sqlite") == dv_counts(seeded_template)  # zero writes to Dataverse data
    assert not (ws / "snapshots").exists()
    assert list((ws / "runs").glob("extract-problems-*.csv"))


def test_a_throttle_storm_slows_the_load_but_it_completes(world_db, tmp_path):
    ws = tmp_path / "r"
    result = rehearse(ws, world_db, "--fault", "throttle-storm", "--until", "migrate.milestones")
    assert result.exit_code == 0, result.output
    assert "rehearsal finished: every step through migrate.milestones done" in result.output
    milestones_once(ws / "rehearsal.sqlite", ws / "legacy-milestones.csv")


def test_blind_a_map_left_running_goes_through_and_map_state_is_shown_again(world_db, tmp_path):
    ws = tmp_path / "r"
    result = rehearse(ws, world_db, "--blind", "--fault", "invoices-map-left-running")
    assert result.exit_code == 0, result.output
    assert "map state and map versions withheld from every identity" in result.output
    assert "map state shown again, so the validation suite can read it" in result.output
    with Journal.open(ws, create=False) as journal:
        not_verified = [e for e in journal.entries("rehearsal") if e.kind == "check.not-verified"]
    assert any(e.step == "maps.stop-three" for e in not_verified)
    conn = sqlite3.connect(ws / "rehearsal.sqlite")
    hidden = conn.execute("SELECT value FROM sim_settings WHERE key = 'map_state_hidden_from'").fetchone()
    conn.close()
    assert hidden is None or hidden[0] in ("[]", "")


def test_blind_a_skipped_cutover_version_is_still_caught_in_fno(world_db, tmp_path):
    ws = tmp_path / "r"
    result = rehearse(ws, world_db, "--blind", "--fault", "skip-cutover-version", "--until", "migrate.verify-fno")
    assert result.exit_code == 1, result.output
    stopped = result.output.split("rehearsal stopped at migrate.verify-fno: ")[1].splitlines()[0]
    assert "not Invoiced" in stopped and "cutover version" in stopped


def test_crashes_mid_load_and_mid_invoicing_resume_with_no_duplicates(world_db, tmp_path):
    ws = tmp_path / "r"
    result = rehearse(
        ws,
        world_db,
        "--fault", "crash-mid-load",
        "--fault", "crash-mid-invoicing",
        "--long-running",
        "--background-delay", "0.2",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = result.output
    assert "invoice create and confirm run in the background (0.2 s)" in out
    assert "fault crash-mid-load: killed the run with SIGKILL after the milestone load wrote its first chunk" in out
    assert "fault crash-mid-invoicing: killed the run with SIGKILL after the first invoice create was sent" in out
    assert "resuming the run of 'rehearsal' at migrate.milestones" in out
    assert "resuming the run of 'rehearsal' at invoice.create" in out
    assert "contracts done; checking again" in out  # background jobs polled to their end
    assert "(3 run(s))" in out
    assert kinds(ws).count("run.started") == 3
    st = states(ws)
    assert all(st[s].finished for s in THROUGH)
    db = ws / "rehearsal.sqlite"
    milestones_once(db, ws / "legacy-milestones.csv")
    invoices, contracts = count(db, "SELECT count(*), count(DISTINCT _salesorderid_value) FROM dv_invoices")
    assert invoices == contracts == 20  # one invoice per contract, none twice


def test_unknown_fault_and_missing_compare_are_refused_before_anything_is_made(world_db, tmp_path):
    bad = rehearse(tmp_path / "a", world_db, "--fault", "no-such-fault")
    assert bad.exit_code == 2 and "unknown fault no-such-fault" in bad.output
    assert not (tmp_path / "a").exists()
    nothing = rehearse(tmp_path / "b", world_db, "--compare", str(tmp_path))
    assert nothing.exit_code == 2 and "has no journal" in nothing.output
