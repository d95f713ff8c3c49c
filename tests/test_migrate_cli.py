"""`cutover migrate` as an operator meets it: messages, exit codes, the error file, the request
log — and a real `cutover migrate` process killed with SIGKILL in the middle of its load, then
run again: every legacy id exactly once.

The simulator runs over a real loopback socket (uvicorn in a thread); the profile names its URL,
so each command signs in through the same msal path as on the night."""

from __future__ import annotations

import csv
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from cutover.cli import main
from cutover.sim.server import running
from tests.test_migrate_plan import extract_path, validated_from_world

pytestmark = pytest.mark.socket

CUTOVER_DATE = "2026-12-01"
WRITE_METHODS = ("POST", "PATCH", "PUT", "DELETE")


class Served:
    """A simulator on a socket, with a synchronous admin client."""

    def __init__(self, url: str, token: str, db: Path):
        self.url, self.db = url, db
        self.admin = httpx.Client(
            base_url=url, headers={"X-Cutover-Admin": token, "Content-Type": "application/json"}, timeout=30
        )

    def put(self, path: str, body: dict) -> None:
        self.admin.put(f"/_sim/{path}", json=body).raise_for_status()

    def log(self) -> list[dict]:
        return self.admin.get("/_sim/requests").json()

    def writes(self) -> list[dict]:
        return [e for e in self.log() if e["method"] in WRITE_METHODS and "/_sim/" not in e["path"]]

    def milestones(self) -> tuple[int, int]:
        conn = sqlite3.connect(self.db)
        try:
            return conn.execute(
                "SELECT count(*), count(DISTINCT msdyn_contractlinescheduleofvalueid) FROM dv_msdyn_contractlinescheduleofvalues"
            ).fetchone()
        finally:
            conn.close()


@pytest.fixture
def served(world_db: Path) -> Iterator[Served]:
    with running(world_db) as url:
        s = Served(str(url), url.admin_token, world_db)
        try:
            yield s
        finally:
            s.admin.close()


@pytest.fixture
def workspace(tmp_path: Path, served: Served) -> Path:
    ws = tmp_path / "ws"
    add = cli(
        "env",
        "add",
        "night",
        "--kind",
        "rehearsal",
        "--dataverse-url",
        served.url,
        "--fno-url",
        served.url,
        "--workspace",
        str(ws),
    )
    assert add.exit_code == 0, add.output
    return ws


def cli(*args: str, env: dict | None = None):
    return CliRunner().invoke(main, list(args), env=env)


def migrate(ws: Path, source: Path, *more: str, env: dict | None = None):
    args = ["migrate", "--source", str(source), "--cutover-date", CUTOVER_DATE, "--workspace", str(ws), *more]
    if "--env" not in more:
        env = {"CUTOVER_ENV": "night", **(env or {})}
    return cli(*args, env=env)


def test_dry_run_prints_the_plan_and_writes_nothing(served: Served, workspace: Path):
    source = extract_path(served.db)
    result = migrate(workspace, source, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "plan: 150 to create, 0 to update, 0 already identical, 0 conflicts, 50 excluded" in result.output
    assert "map check: milestone map does NOT run a cutover version (1.0.0.5)" in result.output
    assert "dry run: nothing was written" in result.output
    assert served.writes() == [] and served.milestones() == (0, 0)
    assert not (workspace / "runs").exists()  # nothing to report: no error file


def test_load_then_rerun_writes_nothing_and_says_so(served: Served, workspace: Path):
    source = extract_path(served.db)
    first = migrate(workspace, source, "--env", "night", "--skip-map-check")
    assert first.exit_code == 0, first.output
    assert "load: 150 created, 0 updated" in first.output
    assert "Dataverse: 150 of 150 milestones" in first.output
    assert "150 arrived as Registered, not Invoiced" in first.output
    assert served.milestones() == (150, 150)
    before = len(served.writes())
    second = migrate(workspace, source, "--skip-map-check")
    assert second.exit_code == 0, second.output
    assert "nothing to write: 150 milestones already identical" in second.output
    assert len(served.writes()) == before


def test_the_map_check_refuses_a_plain_world_with_exit_1(served: Served, workspace: Path):
    result = migrate(workspace, extract_path(served.db))
    assert result.exit_code == 1
    assert "the load was refused" in result.output and "--skip-map-check" in result.output
    assert served.writes() == [] and served.milestones() == (0, 0)


def test_bad_input_is_exit_2_with_an_error_file_whatever_the_environment(
    served: Served, workspace: Path, tmp_path: Path
):
    with open(extract_path(served.db), newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    rows[1][rows[0].index("amount")] = "12.345"  # three decimals: not an exact amount of the currency
    bad = tmp_path / "bad.csv"
    with open(bad, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    # the environment is unreachable: input is judged first, the same way
    cli(
        "env",
        "add",
        "gone",
        "--kind",
        "rehearsal",
        "--dataverse-url",
        "http://127.0.0.1:9",
        "--fno-url",
        "http://127.0.0.1:9",
        "--workspace",
        str(workspace),
    )
    for env in ("night", "gone"):
        for dry in ((), ("--dry-run",)):
            result = migrate(workspace, bad, "--env", env, *dry)
            assert result.exit_code == 2, result.output
            assert "problem(s)" in result.output
    files = sorted((workspace / "runs").glob("*.errors.csv"))
    assert len(files) == 4  # one new file per run
    assert "amount" in files[0].read_text(encoding="utf-8")


def test_the_error_file_is_created_new_and_never_overwritten(served: Served, workspace: Path, tmp_path: Path):
    existing = tmp_path / "errors.csv"
    existing.write_text("mine\n", encoding="utf-8")
    result = migrate(workspace, extract_path(served.db), "--skip-map-check", "--errors", str(existing))
    assert result.exit_code == 2 and "never overwritten" in result.output
    assert existing.read_text(encoding="utf-8") == "mine\n" and served.writes() == []


def test_production_needs_confirm_production_before_anything_is_sent(tmp_path: Path, served: Served, workspace: Path):
    add = cli(
        "env", "add", "prod", "--kind", "production", "--dataverse-url", "https://contoso.crm.dynamics.com",
        "--fno-url", "https://contoso.operations.dynamics.com", "--tenant", "contoso.onmicrosoft.com",
        "--client-id", "c1", "--auth", "client-secret", "--secret-env", "CUTOVER_SECRET", "--workspace", str(workspace),
    )  # fmt: skip
    assert add.exit_code == 0, add.output
    for extra in ((), ("--confirm-production", "night")):
        result = migrate(workspace, extract_path(served.db), "--env", "prod", *extra)
        assert result.exit_code == 2
        assert "--confirm-production prod" in result.output


def test_env_is_required(served: Served, workspace: Path):
    result = cli(
        "migrate", "--source", str(extract_path(served.db)), "--workspace", str(workspace), env={"CUTOVER_ENV": ""}
    )
    assert result.exit_code == 2 and "--env" in result.output


def test_kill_9_in_the_middle_of_the_load_then_resume_lands_every_legacy_id_once(served: Served, workspace: Path):
    """A real `cutover migrate` process, slowed down (1 s per CreateMultiple, 5 records each),
    is killed with SIGKILL after a few chunks landed; the same command run again finishes the
    job: every legacy id exactly once, nothing missing, and a third run writes nothing."""
    source = extract_path(served.db)
    served.put("faults", {"latency_ms": 1000, "path_contains": "CreateMultiple"})
    cmd = [sys.executable, "-m", "cutover.cli", "migrate", "--env", "night", "--source", str(source), "--cutover-date",
           CUTOVER_DATE, "--workspace", str(workspace), "--skip-map-check", "--chunk", "5"]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while served.milestones()[0] < 20:
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "the load did not start"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    interrupted = served.milestones()
    assert 20 <= interrupted[0] < 150 and interrupted[0] == interrupted[1]

    served.put("faults", {})
    time.sleep(1.2)  # requests the killed process left in flight finish (they may land after the plan: read back)
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Dataverse: 150 of 150 milestones" in again.stdout
    assert served.milestones() == (150, 150)
    conn = sqlite3.connect(served.db)
    landed = {
        r[0]
        for r in conn.execute("SELECT msdyn_contractlinescheduleofvalueid FROM dv_msdyn_contractlinescheduleofvalues")
    }
    conn.close()
    assert landed == set(validated_from_world(served.db).rows["milestone_id"].to_list())
    third = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert third.returncode == 0 and "nothing to write: 150" in third.stdout
