"""The journal: append-only, hash-chained, anchored outside, one writer, same inputs."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from cutover.errors import InputError, WorkspaceProblem
from cutover.journal import GENESIS, Head, Journal, RunInputs, WriterBusy, WriterLock, check_same_inputs


def _filled(workspace: Path, n: int = 6) -> Journal:
    journal = Journal.open(workspace)
    for i in range(n):
        journal.append(
            "step.finished", env="night", step=f"s{i}", actor="ops@contoso", data={"i": i, "amount": Decimal("12.50")}
        )
    journal.record_head()
    return journal


def _tamper(workspace: Path, *sql: str) -> None:
    """What someone with sqlite3 and the file can do: drop the guards, then change rows."""
    conn = sqlite3.connect(workspace / "journal.sqlite")
    conn.execute("DROP TRIGGER journal_no_update")
    conn.execute("DROP TRIGGER journal_no_delete")
    for statement in sql:
        conn.execute(statement)
    conn.commit()
    conn.close()


def test_rows_chain_from_genesis_and_verify(tmp_path):
    journal = _filled(tmp_path)
    rows = list(journal.entries())
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[0].prev == GENESIS and all(b.prev == a.hash for a, b in zip(rows, rows[1:]))
    assert rows[2].data == {"i": 2, "amount": "12.50"}, "money travels as exact text"
    result = journal.verify()
    assert result.ok and result.rows == 6 and result.head == Head(6, rows[-1].hash)


def test_the_database_itself_refuses_updates_and_deletes(tmp_path):
    _filled(tmp_path).close()
    conn = sqlite3.connect(tmp_path / "journal.sqlite")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE journal SET actor = 'someone else' WHERE seq = 2")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM journal WHERE seq = 6")


def test_a_float_never_enters_the_journal(tmp_path):
    journal = Journal.open(tmp_path)
    with pytest.raises(TypeError, match="float"):
        journal.append("check", env="night", data={"amount": 0.1})
    assert journal.head() is None


@pytest.mark.parametrize(
    ("tampering", "row", "says"),
    [
        (["UPDATE journal SET actor = 'mallory' WHERE seq = 3"], 3, "row 3 was edited"),
        (["UPDATE journal SET data = '{\"i\":99}' WHERE seq = 5"], 5, "row 5 was edited"),
        (["DELETE FROM journal WHERE seq = 4"], 4, "row 4 is missing"),
        (
            # delete row 4 and renumber the rest: the chain breaks at the row after the hole
            ["DELETE FROM journal WHERE seq = 4", "UPDATE journal SET seq = seq - 1 WHERE seq > 4"],
            4,
            "row 4 was edited",
        ),
        (
            # swap two rows' places
            [
                "UPDATE journal SET seq = 100 WHERE seq = 2",
                "UPDATE journal SET seq = 2 WHERE seq = 3",
                "UPDATE journal SET seq = 3 WHERE seq = 100",
            ],
            2,
            "row 2 was edited",
        ),
        (["DELETE FROM journal WHERE seq = 6"], 6, "rows were removed from the end"),
        (["DELETE FROM journal WHERE seq >= 5"], 5, "rows were removed from the end"),
    ],
)
def test_verify_names_the_first_tampered_row(tmp_path, tampering, row, says):
    _filled(tmp_path).close()
    _tamper(tmp_path, *tampering)
    with Journal.open(tmp_path) as journal:
        result = journal.verify()
    assert not result.ok and result.row == row and says in result.problem


def test_an_inserted_row_with_a_valid_hash_still_breaks_the_chain(tmp_path):
    """A forger who recomputes the inserted row's own hash cannot fix the next row's `prev`."""
    from cutover.journal import _canonical, row_hash

    _filled(tmp_path).close()
    conn = sqlite3.connect(tmp_path / "journal.sqlite")
    rows = conn.execute("SELECT seq, hash FROM journal ORDER BY seq").fetchall()
    conn.close()
    data = _canonical({"forged": True})
    forged_hash = row_hash(7, "2026-12-01T00:00:00Z", "night", "attest", "x", "mallory", data, rows[2][1])
    _tamper(
        tmp_path,
        "UPDATE journal SET seq = seq + 100 WHERE seq > 3",
        "UPDATE journal SET seq = seq - 99 WHERE seq > 100",
        f"INSERT INTO journal VALUES (4, '2026-12-01T00:00:00Z', 'night', 'attest', 'x', 'mallory', '{data}', '{rows[2][1]}', '{forged_hash}')",
    )
    with Journal.open(tmp_path) as journal:
        result = journal.verify(expected_head=None)
    assert not result.ok and result.row in (4, 5)


def test_a_rewritten_tail_is_caught_by_the_recorded_head(tmp_path):
    """Rows removed from the end and new ones appended: the chain is whole, the anchor is not."""
    journal = _filled(tmp_path)
    recorded = journal.recorded_head()
    journal.close()
    _tamper(tmp_path, "DELETE FROM journal WHERE seq >= 5")
    with Journal.open(tmp_path) as journal:
        # recreate triggers are gone; append again as the tool would
        journal.append("step.finished", env="night", step="s4", data={"i": "rewritten"})
        journal.append("step.finished", env="night", step="s5", data={"i": "rewritten"})
        result = journal.verify(expected_head=recorded)
    assert not result.ok and result.row == 6 and "rewritten" in result.problem


def test_export_as_jsonl_and_csv(tmp_path):
    journal = _filled(tmp_path, 3)
    lines = journal.export("jsonl").splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [1, 2, 3]
    csv_text = journal.export("csv")
    assert csv_text.splitlines()[0] == "seq,at,env,kind,step,actor,data,prev,hash" and len(csv_text.splitlines()) == 4
    with pytest.raises(InputError, match="not an export format"):
        journal.export("xml")


def test_resuming_with_other_inputs_is_refused_naming_what_changed(tmp_path):
    extract = tmp_path / "legacy.csv"
    extract.write_text("a,b\n1,2\n")
    first = RunInputs.of(extract, None, "2026-12-01")
    journal = Journal.open(tmp_path / "ws")
    journal.append("run.started", env="night", data={"inputs": first.__dict__})
    assert journal.run_inputs("night") == first
    check_same_inputs(journal.run_inputs("night"), RunInputs.of(extract, None, "2026-12-01"))
    extract.write_text("a,b\n1,3\n")
    with pytest.raises(
        InputError, match=r"changed: the extract .*; the cutover date \(2026-12-01 → 2026-12-02\)"
    ) as caught:
        check_same_inputs(journal.run_inputs("night"), RunInputs.of(extract, None, "2026-12-02"))
    assert caught.value.exit_code == 2


def _hold_lock(workspace: str, ready, release) -> None:
    with WriterLock(workspace, "night", command="cutover run --env night"):
        ready.set()
        release.wait(30)


def test_a_second_writer_is_refused_naming_who_holds_the_lock(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(tmp_path), ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        with pytest.raises(WriterBusy, match=rf"pid {holder.pid} .*`cutover run --env night` since 20") as caught:
            WriterLock(tmp_path, "night").acquire()
        assert isinstance(caught.value, WorkspaceProblem) and caught.value.exit_code == 3
        with WriterLock(tmp_path, "other-env"):  # another environment is another lock
            pass
    finally:
        release.set()
        holder.join(30)
    with WriterLock(tmp_path, "night") as lock:  # free again once the holder ended
        assert lock.holder()["pid"] > 0


def test_a_killed_writer_leaves_no_lock_behind(tmp_path):
    script = (
        "import sys, time\n"
        "from cutover.journal import WriterLock\n"
        "WriterLock(sys.argv[1], 'night').acquire()\n"
        "print('held', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    with pytest.raises(WriterBusy):
        WriterLock(tmp_path, "night").acquire()
    proc.kill()
    proc.wait()
    with WriterLock(tmp_path, "night"):
        pass
