"""Money arrives exact from every format: text is parsed as text, doubles become
``Decimal(repr(x))`` and must then be exact at the currency's scale — never rounded."""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from decimal import Decimal
from pathlib import Path

import openpyxl
import polars as pl
import pytest

from cutover import money
from cutover.source import Mapping, read_extract
from cutover.source.validate import _number
from tests.test_source_common import check_file, invoiced_index, row_of, seed_frame, set_cell, write_csv

AMOUNTS = ("1234567.89", "0.10")


@pytest.fixture
def small(world_db) -> tuple[pl.DataFrame, list[int]]:
    """The seed's first ten rows with 1234567.89 and 0.10 on two invoiced rows."""
    frame = seed_frame(world_db).head(10)
    rows = [invoiced_index(frame, 0), invoiced_index(frame, 1)]
    for index, amount in zip(rows, AMOUNTS):
        frame = set_cell(frame, index, "amount", amount)
    return frame, rows


def _xlsx(frame: pl.DataFrame, path: Path, amount_cell=float) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(frame.columns)
    for row in frame.iter_rows(named=True):
        cells = dict(row)
        cells["amount"] = amount_cell(row["amount"])
        cells["tax_amount"] = float(row["tax_amount"])
        cells["contract_line"] = int(row["contract_line"])
        cells["milestone_date"] = dt.date.fromisoformat(row["milestone_date"])
        ws.append([cells[c] for c in frame.columns])
    wb.save(path)
    return path


def _parquet(frame: pl.DataFrame, path: Path, dtype: pl.DataType) -> Path:
    frame.with_columns(pl.col("amount").cast(dtype), pl.col("tax_amount").cast(pl.Decimal(38, 2))).write_parquet(path)
    return path


def _amounts(validated, rows: list[int]) -> list[Decimal]:
    by_row = dict(zip(validated.rows["_row"], validated.rows["amount"]))
    return [by_row[row_of(i)] for i in rows]


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "parquet-decimal", "parquet-double"])
def test_amounts_arrive_exact_from_every_format(small, tmp_path, fmt):
    frame, rows = small
    if fmt == "csv":
        path = write_csv(frame, tmp_path / "x.csv")
    elif fmt == "xlsx":
        path = _xlsx(frame, tmp_path / "x.xlsx")
    elif fmt == "parquet-decimal":
        path = _parquet(frame, tmp_path / "x.parquet", pl.Decimal(38, 2))
    else:
        path = _parquet(frame, tmp_path / "x.parquet", pl.Float64())
    validated = check_file(path)
    assert validated.problems == []
    amounts = _amounts(validated, rows)
    assert amounts == [Decimal("1234567.89"), Decimal("0.10")]
    assert all(isinstance(a, Decimal) for a in amounts)
    assert validated.rows["amount"].dtype == pl.Decimal(38, 4)


def _patch_xlsx_value(path: Path, old: str, new: str) -> None:
    """Write a cell's stored number as Excel would (openpyxl shortens doubles to 16 digits)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename.startswith("xl/worksheets/"):
                data, n = re.subn(rf"<v>{re.escape(old)}</v>".encode(), f"<v>{new}</v>".encode(), data)
                assert n == 1
            dst.writestr(item, data)
    path.write_bytes(buf.getvalue())


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "parquet-double"])
def test_a_double_that_is_not_exact_at_the_currency_scale_is_refused(small, tmp_path, fmt):
    frame, rows = small
    inexact = 0.1 + 0.2
    assert repr(inexact) == "0.30000000000000004"
    frame = set_cell(frame, rows[1], "amount", "0.30000000000000004")
    if fmt == "csv":
        path = write_csv(frame, tmp_path / "x.csv")
    elif fmt == "xlsx":
        path = _xlsx(set_cell(frame, rows[1], "amount", "0.25"), tmp_path / "x.xlsx")
        _patch_xlsx_value(path, "0.25", repr(inexact))
    else:
        path = _parquet(frame, tmp_path / "x.parquet", pl.Float64())
        assert pl.read_parquet(path)["amount"][rows[1]] == inexact
    raw = read_extract(path)
    assert raw.frame["amount"][rows[1]] == "0.30000000000000004"
    validated = check_file(path)
    assert [(p.rule, p.row) for p in validated.problems] == [("amount.scale", row_of(rows[1]))]
    assert "has 17 decimals" in validated.problems[0].message and "allows 2" in validated.problems[0].message


def test_doubles_are_rendered_in_full_never_as_an_exponent(small, tmp_path):
    frame, rows = small
    values = [1e-7, 1e20]
    typed = frame.head(2).with_columns(pl.Series("amount", values, dtype=pl.Float64()))
    path = tmp_path / "x.parquet"
    typed.write_parquet(path)
    raw = read_extract(path)
    assert raw.frame["amount"].to_list() == ["0.0000001", "100000000000000000000"]
    assert [p.rule for p in check_file(path).problems] == ["amount.scale", "amount.too-large"]


def test_a_whole_double_is_written_without_a_fraction(small, tmp_path):
    frame, _ = small
    path = _xlsx(frame.head(1).with_columns(pl.lit("12500").alias("amount")), tmp_path / "x.xlsx")
    raw = read_extract(path)
    assert raw.frame["amount"].to_list() == ["12500"] and raw.frame["contract_line"][0] == frame["contract_line"][0]


def test_jpy_allows_no_decimals(world_db, tmp_path):
    frame = seed_frame(world_db).head(10)
    index = invoiced_index(frame, 0)
    frame = set_cell(set_cell(frame, index, "currency", "JPY"), index, "tax_amount", "0")
    whole = check_file(write_csv(set_cell(frame, index, "amount", "125000"), tmp_path / "a.csv"))
    assert whole.problems == []
    assert whole.rows.filter(pl.col("_row") == row_of(index))["amount"].to_list() == [Decimal("125000")]
    for amount in ("125000.5", "125000.50"):
        validated = check_file(write_csv(set_cell(frame, index, "amount", amount), tmp_path / f"{amount}.csv"))
        assert [(p.rule, p.row) for p in validated.problems] == [("amount.scale", row_of(index))]
        assert "JPY allows 0" in validated.problems[0].message
    # trailing zeros are not decimals: 125000.00 JPY is 125000
    assert check_file(write_csv(set_cell(frame, index, "amount", "125000.00"), tmp_path / "b.csv")).problems == []


def test_three_decimal_currencies(world_db, tmp_path):
    frame = seed_frame(world_db).head(10)
    index = invoiced_index(frame, 0)
    frame = set_cell(set_cell(frame, index, "currency", "KWD"), index, "amount", "10.125")
    assert check_file(write_csv(frame, tmp_path / "k.csv")).problems == []
    frame = set_cell(frame, index, "amount", "10.1255")
    assert [p.rule for p in check_file(write_csv(frame, tmp_path / "k2.csv")).problems] == ["amount.scale"]


@pytest.mark.parametrize(
    ("decimal", "thousands", "texts"),
    [
        (".", None, ["12500.00", "0.10", "-3", ".5", "5.", "+7.25", "1,234.5", "1e3", "", "12 500.00", "0x10"]),
        (",", ".", ["12.500,00", "0,10", "1.234.567,89", "1.23,4", "12,500.00", "1234,5", "1.2345,6", ",5"]),
        (",", " ", ["12 500,00", "1 234 567,89", "12\u00a0500,00", "1 2,0"]),
        (".", ",", ["12,500.00", "1,234,567.89", "1,23.5", "1234.5"]),
    ],
)
def test_the_frame_parser_agrees_with_money_parse(decimal, thousands, texts):
    """Validation parses money with polars expressions; they accept exactly what
    cutover.money.parse accepts with grouping checked, and give the same value."""
    mapping = Mapping(decimal_separator=decimal, thousands_separator=thousands)
    normal, ok = _number("t", mapping)
    out = pl.DataFrame({"t": texts}).select(normal.alias("n"), ok.alias("ok"))
    for text, n, good in zip(texts, out["n"], out["ok"]):
        try:
            expected = money.parse(text, decimal_separator=decimal, thousands_separator=thousands)
        except money.MoneyError:
            expected = None
        grouped = (
            thousands is None
            or thousands not in text
            or re.fullmatch(rf"[+-]?\d{{1,3}}({re.escape(thousands)}\d{{3}})+({re.escape(decimal)}\d*)?", text)
        )
        if good:
            assert expected is not None and Decimal(n) == expected, text
        else:
            assert expected is None or not grouped, text
