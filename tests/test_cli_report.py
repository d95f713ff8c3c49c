"""`cutover verify`, `cutover signoff` and `cutover journal` through the real command line."""

from __future__ import annotations

import sqlite3

from click.testing import CliRunner

from cutover.cli import main
from tests import verify_worlds

worlds = verify_worlds.worlds  # the session's shared cache of rehearsed worlds (a fixture)


def cli(*args: str):
    return CliRunner().invoke(main, list(args))


def test_verify_then_two_people_sign_the_pack(worlds, tmp_path):
    world = worlds.world()
    report = tmp_path / "pack"
    result = cli(
        "verify",
        "--env",
        "rehearsal",
        "--source",
        str(world.extract),
        "--workspace",
        str(world.workspace),
        "--report",
        str(report),
    )
    assert result.exit_code == 0, result.output
    assert (report / "report.html").is_file() and (report / "manifest.json").is_file()

    again = cli(
        "verify",
        "--env",
        "rehearsal",
        "--source",
        str(world.extract),
        "--workspace",
        str(world.workspace),
        "--report",
        str(report),
    )
    assert again.exit_code == 2, again.output
    assert "not empty" in again.output.lower() or "exists" in again.output.lower()

    first = cli("signoff", "--report", str(report), "--name", "Ana Controller", "--role", "finance controller")
    assert first.exit_code == 0, first.output
    assert "signed by Ana Controller" in first.output
    assert cli("signoff", "--check", str(report)).exit_code == 1, "one signature is not four eyes"
    twice = cli("signoff", "--report", str(report), "--name", "Ana Controller", "--role", "finance controller")
    assert twice.exit_code == 1 and "Ana Controller" in twice.output
    second = cli("signoff", "--report", str(report), "--name", "Ben Auditor", "--role", "acceptance tester")
    assert second.exit_code == 0, second.output
    checked = cli("signoff", "--check", str(report))
    assert checked.exit_code == 0 and checked.output.startswith("ACCEPTED: ")

    (report / "report.html").write_text("<html>changed</html>")
    tampered = cli("signoff", "--check", str(report))
    assert tampered.exit_code == 1 and "report.html" in tampered.output
    assert cli("signoff", "--check", str(report), "--name", "X").exit_code == 2


def test_journal_verify_and_export_through_the_command(worlds, tmp_path):
    world = worlds.world()
    ws = tmp_path / "ws"
    ws.mkdir()
    for name in ("journal.sqlite", "journal.head.json"):
        (ws / name).write_bytes((world.workspace / name).read_bytes())
    ok = cli("journal", "verify", "--workspace", str(ws))
    assert ok.exit_code == 0 and ok.output.startswith("journal ok: ")

    out = tmp_path / "journal.csv"
    exported = cli("journal", "export", "--format", "csv", "--output", str(out), "--workspace", str(ws))
    assert exported.exit_code == 0 and out.read_text().startswith("seq,at,env,kind,step,actor,data,prev,hash")
    refused = cli("journal", "export", "--output", str(out), "--workspace", str(ws))
    assert refused.exit_code == 2 and "already exists" in refused.output

    conn = sqlite3.connect(ws / "journal.sqlite")
    conn.execute("DROP TRIGGER journal_no_update")
    conn.execute("UPDATE journal SET actor = 'mallory' WHERE seq = 5")
    conn.commit()
    conn.close()
    bad = cli("journal", "verify", "--workspace", str(ws))
    assert bad.exit_code == 1 and "row 5 was edited" in bad.output


def test_journal_commands_need_a_journal(tmp_path):
    result = cli("journal", "verify", "--workspace", str(tmp_path))
    assert result.exit_code == 2 and "there is no journal" in result.output
