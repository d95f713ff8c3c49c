"""Every supported format and encoding reads to the same validated rows as the seed's own CSV:
a German Excel export (semicolon, decimal comma, thousands dots, day-first dates, cp1252,
legacy column names and status values, CRLF) through a mapping file; tab; pipe; UTF-8 with a
BOM; UTF-16 LE and BE with a BOM; XLSX with real date and numeric cells, first sheet and a
named one; Parquet with Decimal and with double columns."""

from __future__ import annotations

import codecs
import datetime as dt
from decimal import Decimal
from pathlib import Path

import openpyxl
import polars as pl
import pytest

from cutover.source import load_mapping, read_extract
from tests.test_source_common import CUTOVER, check, check_file, comparable, csv_text, seed_frame, write_csv, writes

GERMAN_NAMES = {
    "legacy_id": "Meilenstein-ID",
    "legal_entity": "Buchungskreis",
    "contract_number": "Vertrag",
    "contract_line": "Position",
    "customer_account": "Debitor",
    "milestone_name": "Bezeichnung",
    "milestone_date": "Datum",
    "amount": "Betrag netto",
    "tax_amount": "Steuer",
    "currency": "Währung",
    "legacy_status": "Status",
    "legacy_invoice_number": "Rechnung",
}
GERMAN_MAPPING = """\
# a German Excel export ("CSV (Trennzeichen-getrennt)")
[columns]
{columns}

[status]
invoiced = ["Fakturiert"]
not_invoiced = ["Offen"]

[format]
encoding = "cp1252"
delimiter = ";"
decimal_separator = ","
thousands_separator = "."
date_format = "%d.%m.%Y"
""".format(columns="\n".join(f'"{legacy}" = "{ours}"' for ours, legacy in GERMAN_NAMES.items()))


@pytest.fixture
def seed(world_db) -> pl.DataFrame:
    return seed_frame(world_db)


@pytest.fixture
def expected(world_db) -> pl.DataFrame:
    validated = check_file(world_db.with_suffix(".csv"))
    assert validated.problems == [] and validated.rows.height == 150
    return comparable(validated.rows)


def _german_number(text: str) -> str:
    whole, _, cents = text.partition(".")
    groups = f"{int(whole):,}".replace(",", ".")
    return f"{groups},{cents}"


def german(seed: pl.DataFrame) -> pl.DataFrame:
    return seed.with_columns(
        pl.col("amount").map_elements(_german_number, return_dtype=pl.String()),
        pl.col("tax_amount").map_elements(_german_number, return_dtype=pl.String()),
        pl.col("milestone_date").str.to_date().dt.strftime("%d.%m.%Y"),
        pl.col("legacy_status").replace({"Invoiced": "Fakturiert", "NotInvoiced": "Offen"}),
    ).rename(GERMAN_NAMES)


def test_german_excel_export_with_a_mapping_file(seed, expected, tmp_path):
    frame = german(seed)
    assert frame["Betrag netto"].str.contains(r"^\d{1,3}(\.\d{3})+,\d\d$").sum() > 100  # thousands dots, decimal comma
    path = tmp_path / "export.csv"
    path.write_bytes(csv_text(frame, ";").replace("\n", "\r\n").encode("cp1252"))
    (tmp_path / "mapping.toml").write_text(GERMAN_MAPPING, encoding="utf-8")
    mapping = load_mapping(tmp_path / "mapping.toml")
    raw = read_extract(path, mapping)
    assert raw.details == {"encoding": "cp1252", "delimiter": "semicolon"}
    validated = check_file(path, mapping)
    assert validated.problems == []
    assert comparable(validated.rows).equals(expected)
    assert validated.excluded.height == 50 and set(validated.excluded["legacy_status"]) == {"Offen"}


async def test_german_export_validates_against_the_environment_too(sim, world_db, seed, tmp_path):
    path = tmp_path / "export.csv"
    path.write_bytes(csv_text(german(seed), ";").encode("cp1252"))
    (tmp_path / "mapping.toml").write_text(GERMAN_MAPPING, encoding="utf-8")
    mapping = load_mapping(tmp_path / "mapping.toml")
    native = await check(sim, world_db.with_suffix(".csv"))
    validated = await check(sim, path, mapping)
    assert validated.problems == [] and validated.loadable
    assert comparable(validated.rows).equals(comparable(native.rows))
    assert await writes(sim) == []


@pytest.mark.parametrize(
    ("separator", "encoding", "bom", "newline", "details"),
    [
        ("\t", "utf-8", b"", "\n", {"encoding": "utf-8", "delimiter": "tab"}),
        ("|", "utf-8", b"", "\n", {"encoding": "utf-8", "delimiter": "pipe"}),
        (";", "utf-8", b"", "\r\n", {"encoding": "utf-8", "delimiter": "semicolon"}),
        (",", "utf-8", codecs.BOM_UTF8, "\r\n", {"encoding": "utf-8-sig", "delimiter": "comma"}),
        (",", "utf-16-le", codecs.BOM_UTF16_LE, "\r\n", {"encoding": "utf-16-le", "delimiter": "comma"}),
        (";", "utf-16-be", codecs.BOM_UTF16_BE, "\n", {"encoding": "utf-16-be", "delimiter": "semicolon"}),
        ("\t", "utf-16-le", codecs.BOM_UTF16_LE, "\r", {"encoding": "utf-16-le", "delimiter": "tab"}),
    ],
    ids=["tab", "pipe", "semicolon-crlf", "utf-8-sig", "utf-16-le", "utf-16-be", "utf-16-tab-cr"],
)
def test_text_dialects_are_sniffed(seed, expected, tmp_path, separator, encoding, bom, newline, details):
    path = tmp_path / "extract.txt"
    path.write_bytes(bom + csv_text(seed, separator).replace("\n", newline).encode(encoding))
    raw = read_extract(path)
    assert raw.format == "csv" and raw.details == details and raw.problems == []
    validated = check_file(path)
    assert validated.problems == []
    assert comparable(validated.rows).equals(expected)


def _workbook(
    seed: pl.DataFrame, path: Path, *, sheets: tuple[str, ...] = ("Milestones",), data_sheet: str = "Milestones"
) -> Path:
    """An XLSX as Excel would hold it: numbers in numeric cells, dates in date cells."""
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for name in sheets:
        ws = wb.create_sheet(name)
        if name != data_sheet:
            ws.append(["nothing", "to", "see"])
            continue
        ws.append(seed.columns)
        for row in seed.iter_rows(named=True):
            cells = dict(row)
            cells["contract_line"] = int(row["contract_line"])
            cells["amount"] = float(row["amount"])
            cells["tax_amount"] = float(row["tax_amount"])
            cells["milestone_date"] = dt.date.fromisoformat(row["milestone_date"])
            cells["legacy_invoice_number"] = row["legacy_invoice_number"] or None
            ws.append([cells[c] for c in seed.columns])
        for cell in ws["G"][1:]:
            cell.number_format = "yyyy-mm-dd"
    wb.save(path)
    return path


def test_xlsx_with_date_and_numeric_cells(seed, expected, tmp_path):
    path = _workbook(seed, tmp_path / "extract.xlsx")
    sheet = openpyxl.load_workbook(path).active
    assert isinstance(sheet["H2"].value, float) and isinstance(sheet["G2"].value, dt.datetime)
    raw = read_extract(path)
    assert raw.format == "xlsx" and raw.details == {"sheet": "Milestones"} and raw.problems == []
    validated = check_file(path)
    assert validated.problems == []
    assert comparable(validated.rows).equals(expected)


def test_xlsx_named_sheet(seed, expected, tmp_path):
    path = _workbook(seed, tmp_path / "extract.xlsx", sheets=("Notes", "Milestones"), data_sheet="Milestones")
    (tmp_path / "m.toml").write_text('[format]\nsheet = "Milestones"\n', encoding="utf-8")
    mapping = load_mapping(tmp_path / "m.toml")
    validated = check_file(path, mapping)
    assert validated.problems == []
    assert comparable(validated.rows).equals(expected)
    # without the mapping the first sheet is read, and it is not an extract
    assert {p.rule for p in check_file(path).problems} >= {"column.missing", "column.unknown"}


def test_xlsx_with_a_german_mapping_renders_numeric_cells_with_its_decimal_comma(seed, expected, tmp_path):
    path = _workbook(seed, tmp_path / "extract.xlsx")
    (tmp_path / "m.toml").write_text('[format]\ndecimal_separator = ","\nthousands_separator = "."\n', encoding="utf-8")
    validated = check_file(path, load_mapping(tmp_path / "m.toml"))
    assert validated.problems == []
    assert comparable(validated.rows).equals(expected)


def _typed(seed: pl.DataFrame, money: pl.DataType) -> pl.DataFrame:
    return seed.with_columns(
        pl.col("contract_line").cast(pl.Int64()),
        pl.col("milestone_date").str.to_date(),
        pl.col("amount").cast(pl.Decimal(38, 2)).cast(money),
        pl.col("tax_amount").cast(pl.Decimal(38, 2)).cast(money),
        pl.col("legacy_invoice_number").replace("", None),
    )


@pytest.mark.parametrize("money", [pl.Decimal(38, 2), pl.Float64()], ids=["decimal", "double"])
def test_parquet(seed, expected, tmp_path, money):
    path = tmp_path / "extract.parquet"
    _typed(seed, money).write_parquet(path)
    raw = read_extract(path)
    assert raw.format == "parquet" and raw.problems == []
    validated = check_file(path)
    assert validated.problems == []
    assert comparable(validated.rows).equals(expected)


def test_the_format_is_found_by_content_not_by_name(seed, expected, tmp_path):
    path = tmp_path / "extract.csv"  # a Parquet file with the wrong extension
    _typed(seed, pl.Decimal(38, 2)).write_parquet(path)
    assert read_extract(path).format == "parquet"
    assert comparable(check_file(path).rows).equals(expected)


def test_quoted_fields_with_delimiters_quotes_and_line_breaks(seed, tmp_path):
    index = 0
    name = 'Phase 1, "Go-live"\nsign-off'
    frame = seed.with_columns(
        pl.when(pl.int_range(pl.len()) == index)
        .then(pl.lit(name))
        .otherwise(pl.col("milestone_name"))
        .alias("milestone_name")
    )
    path = write_csv(frame, tmp_path / "x.csv")
    assert '"Phase 1, ""Go-live""\nsign-off"' in path.read_text()
    validated = check_file(path)
    assert validated.problems == []
    row = validated.rows.filter(pl.col("_row") == 2).row(0, named=True)
    assert row["milestone_name"] == name
    # the row after the two-line record is still row 3 (a spreadsheet user's count)
    assert seed["legacy_status"][1] == "Invoiced"
    assert validated.rows.filter(pl.col("_row") == 3)["legacy_id"].to_list() == [seed["legacy_id"][1]]
    assert validated.rows["amount"].dtype == pl.Decimal(38, 4)
    assert validated.rows["amount"].sum() == sum(
        Decimal(a) for a, s in zip(seed["amount"], seed["legacy_status"]) if s == "Invoiced"
    )


def test_dates_in_iso_are_accepted_beside_the_mappings_format(seed, tmp_path):
    path = write_csv(seed, tmp_path / "x.csv")
    (tmp_path / "m.toml").write_text('[format]\ndate_format = "%d/%m/%Y"\n', encoding="utf-8")
    assert check_file(path, load_mapping(tmp_path / "m.toml"), CUTOVER).problems == []
