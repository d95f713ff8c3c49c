"""The `cutover` command line as an operator meets it: output, files, exit codes."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import httpx
from click.testing import CliRunner

from cutover.cli import main
from cutover.sim.seed import organization_id


def run(*args: str) -> CliRunner.invoke:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_sim_seed_writes_database_and_extract_next_to_it(tmp_path: Path):
    """`sim seed` reports what it built and writes the legacy extract beside the database."""
    db = tmp_path / "night.sqlite"
    result = run("sim", "seed", "--db", str(db), "--seed", "7")
    assert result.exit_code == 0, result.output
    assert f"organization {organization_id(7)}" in result.output
    extract = tmp_path / "night-legacy-extract.csv"
    assert db.exists() and extract.exists()
    rows = list(csv.DictReader(extract.open(encoding="utf-8")))
    assert sum(r["legacy_status"] == "Invoiced" for r in rows) == 150
    assert sum(r["legacy_status"] == "NotInvoiced" for r in rows) == 50


def test_sim_seed_count_overrides_and_explicit_extract(tmp_path: Path):
    """Counts can be chosen directly; --extract says where the CSV goes."""
    db, extract = tmp_path / "w.sqlite", tmp_path / "out" / "legacy.csv"
    extract.parent.mkdir()
    result = run(
        "sim",
        "seed",
        "--db",
        str(db),
        "--invoiced",
        "12",
        "--uninvoiced",
        "3",
        "--gl-lines",
        "1000",
        "--extract",
        str(extract),
    )
    assert result.exit_code == 0, result.output
    assert "12 invoiced + 3 un-invoiced" in result.output and "1,000 GL lines" in result.output
    assert len(list(csv.DictReader(extract.open(encoding="utf-8")))) == 15


def test_sim_seed_refuses_to_overwrite_without_force(tmp_path: Path):
    """An existing world is never replaced by accident: exit 2 and a hint; --force replaces it."""
    db = tmp_path / "w.sqlite"
    assert run("sim", "seed", "--db", str(db), "--seed", "1").exit_code == 0
    again = CliRunner().invoke(main, ["sim", "seed", "--db", str(db), "--seed", "2"])
    assert again.exit_code == 2
    assert "already exists" in again.output and "--force" in again.output
    forced = run("sim", "seed", "--db", str(db), "--seed", "2", "--force")
    assert forced.exit_code == 0 and organization_id(2) in forced.output


def test_sim_seed_bad_scale_is_a_usage_error(tmp_path: Path):
    """A scale that is not small/medium/large is refused with exit code 2."""
    result = CliRunner().invoke(main, ["sim", "seed", "--db", str(tmp_path / "x.sqlite"), "--scale", "huge"])
    assert result.exit_code == 2
    assert "huge" in result.output


def test_sim_serve_without_database_names_the_fix(tmp_path: Path):
    """Serving a database that does not exist exits 2 and says how to create it."""
    result = CliRunner().invoke(main, ["sim", "serve", "--db", str(tmp_path / "missing.sqlite")])
    assert result.exit_code == 2
    assert "cutover sim seed --db" in result.output


def test_sim_serve_first_line_is_the_url_and_it_answers(tmp_path: Path):
    """`sim serve --port 0` prints `listening on http://127.0.0.1:PORT` first, then serves there."""
    db = tmp_path / "w.sqlite"
    assert run("sim", "seed", "--db", str(db), "--seed", "3").exit_code == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "cutover.cli", "sim", "serve", "--db", str(db), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        first = proc.stdout.readline().strip()
        assert first.startswith("listening on http://127.0.0.1:")
        url = first.split()[-1]
        token = httpx.post(
            f"{url}/_sim/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "cutover-rehearsal",
                "client_secret": "rehearsal-secret",
                "scope": f"{url}/.default",
            },
        ).json()["access_token"]
        who = httpx.get(f"{url}/api/data/v9.2/WhoAmI", headers={"Authorization": f"Bearer {token}"})
        assert who.json()["OrganizationId"] == organization_id(3)
    finally:
        proc.terminate()
        proc.wait(10)


def test_demo_seeds_once_and_serves(tmp_path: Path):
    """`cutover sim demo` seeds a small world into the workspace, then serves it and prints how to reach it."""
    ws = tmp_path / "ws"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cutover.cli", "sim", "demo", "--workspace", str(ws)], stdout=subprocess.PIPE, text=True
    )
    try:
        lines = []
        while not any(line.startswith("Admin token") for line in lines):
            line = proc.stdout.readline()
            assert line, f"demo exited early: {lines}"
            lines.append(line.strip())
        url = next(line for line in lines if line.startswith("listening on")).split()[-1]
        token = lines[-1].split(":", 1)[1].strip()
        assert (ws / "rehearsal.sqlite").exists()
        headers = {"X-Cutover-Admin": token, "Content-Type": "application/json"}
        assert httpx.get(f"{url}/_sim/", headers=headers).json()["counts"]["salesorders"] == 20
        assert httpx.get(f"{url}/_sim/").status_code in (401, 403), "the admin surface wants the token"
    finally:
        proc.terminate()
        proc.wait(10)
