"""Validation against the environment: the seeded world's extract is valid, the reference is
read with a few set-based GETs and nothing is written; conflicts, line values, dimensions."""

from __future__ import annotations

import math
import time
from decimal import Decimal
from types import SimpleNamespace

import polars as pl
import pytest

from cutover.domain import InvoiceStatus, deterministic_id
from cutover.errors import InputError
from cutover.source import check_file, fetch_reference, load_and_validate, read_extract, validate, write_problems
from tests.test_source_common import (
    CUTOVER,
    add_milestone,
    check,
    dv_client,
    fno_client,
    invoiced_index,
    line_id_of,
    row_of,
    seed_frame,
    set_cell,
    write_csv,
    writes,
)


async def test_the_seed_extract_is_valid_in_its_world_and_nothing_is_written(sim, world_db):
    log = await sim.log()
    since = log[-1]["seq"] if log else 0
    t = time.perf_counter()
    validated = await check(sim, world_db.with_suffix(".csv"))
    elapsed = time.perf_counter() - t
    assert validated.problems == [], validated.problems[:5]
    assert validated.ok and validated.loadable
    assert (validated.rows_read, validated.rows.height, validated.excluded.height) == (200, 150, 50)
    assert validated.cutover_date == CUTOVER
    assert (
        validated.rows.select(
            "milestone_id", "company_id", "contract_id", "line_id", "project_id", "customer_id", "currency_id"
        )
        .null_count()
        .sum_horizontal()
        .item()
        == 0
    )
    assert await writes(sim, since) == []
    print(elapsed)


# --- what is already in Dataverse -------------------------------------------------------------------


def _first_invoiced(world_db):
    frame = seed_frame(world_db)
    index = invoiced_index(frame, 0)
    return frame, index, frame.row(index, named=True)


@pytest.mark.parametrize(
    ("status", "same", "expected"),
    [
        (InvoiceStatus.POSTED, False, ["milestone.conflict"]),
        (InvoiceStatus.CREATED, False, ["milestone.conflict"]),
        (InvoiceStatus.POSTED, True, []),
        (InvoiceStatus.READY, False, []),
    ],
    ids=["posted-differs", "created-differs", "posted-same", "ready-differs"],
)
async def test_an_existing_milestone_with_the_rows_id(sim, world_db, status, same, expected):
    frame, index, row = _first_invoiced(world_db)
    line = line_id_of(sim.conn, row["contract_number"], int(row["contract_line"]))
    amount = Decimal(row["amount"]) if same else Decimal(row["amount"]) - 1
    add_milestone(
        sim.conn,
        row["legacy_id"],
        line,
        amount,
        status=int(status),
        name=row["milestone_name"],
        date=row["milestone_date"],
        tax=Decimal(row["tax_amount"]),
    )
    validated = await check(sim, world_db.with_suffix(".csv"))
    assert [(p.rule, p.row) for p in validated.problems] == [(r, row_of(index)) for r in expected]
    if expected:
        problem = validated.problems[0]
        assert problem.column == "legacy_id" and "(amount)" in problem.message
        assert deterministic_id(row["legacy_id"]) in problem.message


async def test_a_rerun_does_not_count_its_own_rows_twice_but_counts_others(sim, world_db, tmp_path):
    """The line's value counts milestones already in Dataverse that are not in this extract;
    the extract's own rows (already loaded by an earlier run) are counted once."""
    frame, index, row = _first_invoiced(world_db)
    line = line_id_of(sim.conn, row["contract_number"], int(row["contract_line"]))
    same_line = frame.with_row_index().filter(
        (pl.col("contract_number") == row["contract_number"])
        & (pl.col("contract_line") == row["contract_line"])
        & (pl.col("legacy_status") == "Invoiced")
    )
    in_file = sum(Decimal(a) for a in same_line["amount"])
    sim.conn.execute(
        "UPDATE dv_salesorderdetails SET extendedamount = ? WHERE salesorderdetailid = ?",
        (int((in_file + 100) * 10_000), line),
    )
    sim.conn.commit()
    # an earlier run loaded these very rows (Ready for invoicing): not counted again
    for r in same_line.iter_rows(named=True):
        add_milestone(
            sim.conn,
            r["legacy_id"],
            line,
            Decimal(r["amount"]),
            status=int(InvoiceStatus.READY),
            name=r["milestone_name"],
            date=r["milestone_date"],
        )
    assert (await check(sim, world_db.with_suffix(".csv"))).problems == []
    # a milestone entered by hand on the line (not in the extract) is counted: 100.01 > 100 headroom
    add_milestone(sim.conn, "HAND-ENTERED-1", line, Decimal("100.01"), status=int(InvoiceStatus.READY))
    validated = await check(sim, world_db.with_suffix(".csv"))
    assert {(p.rule, p.row) for p in validated.problems} == {
        ("contract_line.over-value", row_of(i)) for i in same_line["index"]
    }
    assert "+ 100.0100 already in Dataverse" in validated.problems[0].message


async def test_the_reference_is_read_with_a_few_set_based_gets(sim, world_db):
    """Keys go in chunks: the number of GETs follows the number of keys / chunk, not of rows."""
    raw = read_extract(world_db.with_suffix(".csv"))
    assert raw.frame.height == 200 and raw.frame["contract_number"].n_unique() == 20

    async def requests(chunk: int) -> tuple[int, object]:
        log = await sim.log()
        since = log[-1]["seq"] if log else 0
        ref = await fetch_reference(dv_client(sim), fno_client(sim), raw, chunk=chunk)
        log = [e for e in await sim.log(since) if not e["path"].startswith("/_sim")]
        assert all(e["method"] == "GET" for e in log) and len(log) == ref.requests
        return len(log), ref

    n, ref = await requests(100)
    # companies, currencies, contracts, lines, customers, milestones by line, by id (200 ids: 2), F&O lines
    assert n == 9
    assert ref.lines.height == 100 and ref.dimensions is not None and ref.dimensions.height == 100
    n, _ = await requests(7)
    customers = raw.frame["customer_account"].n_unique()
    assert n == 2 + 3 + 3 + math.ceil(customers / 7) + math.ceil(100 / 7) + math.ceil(200 / 7) + math.ceil(100 / 7)


async def test_when_fno_refuses_the_dimensions_read_a_note_says_so(sim, world_db):
    raw = read_extract(world_db.with_suffix(".csv"))
    ref = await fetch_reference(dv_client(sim), fno_client(sim, token="not-a-token"), raw)
    assert ref.dimensions is None
    assert len(ref.notes) == 1 and "financial dimensions not checked" in ref.notes[0]
    validated = validate(raw, ref, cutover_date=CUTOVER)
    assert validated.problems == [] and validated.notes == ref.notes
    assert "note: financial dimensions not checked" in "\n".join(validated.summary().lines())


async def test_load_and_validate_with_a_session_and_without(sim, world_db, tmp_path):
    path = world_db.with_suffix(".csv")
    session = SimpleNamespace(dataverse=dv_client(sim), fno=fno_client(sim))
    raw, validated = await load_and_validate(path, session, cutover_date=CUTOVER)
    assert raw.format == "csv" and validated.loadable and validated.rows.height == 150
    raw, offline = await load_and_validate(path, None, cutover_date=CUTOVER)
    assert offline.ok and not offline.loadable and not offline.environment_checked
    assert offline.rows["line_id"].null_count() == 150
    assert offline.rows.drop(
        "milestone_id", "company_id", "contract_id", "line_id", "project_id", "customer_id", "currency_id"
    ).equals(
        validated.rows.drop(
            "milestone_id", "company_id", "contract_id", "line_id", "project_id", "customer_id", "currency_id"
        )
    )
    raw2, same = check_file(path, None, CUTOVER)
    assert same.rows.equals(offline.rows)


def test_a_missing_extract_is_an_input_error(tmp_path):
    with pytest.raises(InputError) as info:
        read_extract(tmp_path / "nope.csv")
    assert info.value.exit_code == 2 and "does not exist" in str(info.value)
    with pytest.raises(InputError):
        read_extract(tmp_path)


def test_the_error_file_is_written_once_never_overwritten(world_db, tmp_path):
    frame = seed_frame(world_db)
    frame = set_cell(set_cell(frame, 0, "amount", "1,5"), 3, "legacy_status", "Paid")
    _, validated = check_file(write_csv(frame, tmp_path / "x.csv"), None, CUTOVER)
    target = write_problems(validated.problems, tmp_path / "errors.csv")
    written = pl.read_csv(target, infer_schema=False)
    assert written.columns == ["file", "row", "column", "value", "rule", "message"]
    assert written.select("file", "row", "column", "value", "rule").rows() == [
        ("x.csv", "2", "amount", "1,5", "amount.not-a-number"),
        ("x.csv", "5", "legacy_status", "Paid", "legacy_status.unknown"),
    ]
    before = target.read_bytes()
    with pytest.raises(InputError, match="never overwritten"):
        write_problems([], target)
    assert target.read_bytes() == before


def test_the_summary_is_data(world_db, tmp_path):
    frame = set_cell(seed_frame(world_db), 0, "amount", "-1")
    _, validated = check_file(write_csv(frame, tmp_path / "x.csv"), None, CUTOVER)
    summary = validated.summary()
    assert (summary.rows_read, summary.to_migrate, summary.excluded, summary.errors) == (200, 149, 50, 1)
    assert summary.errors_by_rule == {"amount.negative": 1} and not summary.environment_checked
    assert len(summary.lines()) <= 24


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", [("file.empty", None)]),
        (b"legacy_id,legal_entity\n", "no-rows"),
    ],
    ids=["empty", "header-only-and-missing-columns"],
)
async def test_a_broken_file_is_reported_through_the_environment_path_too(sim, tmp_path, content, expected):
    path = tmp_path / "x.csv"
    path.write_bytes(content)
    log = await sim.log()
    since = log[-1]["seq"] if log else 0
    validated = await check(sim, path)
    rules = [(p.rule, p.row) for p in validated.problems]
    if expected == "no-rows":
        assert ("file.no-rows", None) in rules and ("column.missing", 1) in rules and len(rules) == 11
    else:
        assert rules == expected
    assert not validated.ok and validated.rows.height == 0 and await writes(sim, since) == []
