"""The bad-input corpus: one extract per rule and per dialect trap, each built from the seed's
own extract with one thing wrong, each asserting exactly which rule fires on which row (and
that nothing else does). File rules run without an environment (``validate_file``); the
cross-checks run against the seeded simulator and must send no write."""

from __future__ import annotations

import codecs
import io
import zipfile
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import openpyxl
import polars as pl
import pytest

from cutover.source import load_mapping, read_extract
from cutover.source.validate import RULES
from tests.test_source_common import (
    check,
    check_file,
    csv_text,
    found,
    invoiced_index,
    line_id_of,
    row_of,
    seed_frame,
    set_cell,
    write_csv,
    writes,
)

# A case: (name, build(frame, tmp_path) -> (path, mapping or None), expected [(rule, row)]).
# Rows are given as the 0-based index of the seed row they change (row = index + 2), or None.


def _bytes(data: bytes) -> Callable:
    def build(frame: pl.DataFrame, tmp: Path):
        path = tmp / "extract.csv"
        path.write_bytes(data)
        return path, None

    return build


def _cell(column: str, value: str, n: int = 0) -> Callable:
    def build(frame: pl.DataFrame, tmp: Path):
        return write_csv(set_cell(frame, invoiced_index(frame, n), column, value), tmp / "extract.csv"), None

    return build


def _text(edit: Callable[[str], str], encoding: str = "utf-8", mapping: str | None = None) -> Callable:
    def build(frame: pl.DataFrame, tmp: Path):
        path = tmp / "extract.csv"
        path.write_bytes(edit(csv_text(frame)).encode(encoding, errors="strict"))
        m = None
        if mapping is not None:
            (tmp / "mapping.toml").write_text(mapping, encoding="utf-8")
            m = load_mapping(tmp / "mapping.toml")
        return path, m

    return build


def _lines(edit: Callable[[list[str]], list[str]]) -> Callable:
    return _text(lambda text: "\n".join(edit(text.split("\n"))))


def _replace_line(index: int, edit: Callable[[str], str]) -> Callable[[list[str]], list[str]]:
    def apply(lines: list[str]) -> list[str]:
        lines[index + 1] = edit(lines[index + 1])  # +1: the header
        return lines

    return apply


def _frame(edit: Callable[[pl.DataFrame], pl.DataFrame]) -> Callable:
    def build(frame: pl.DataFrame, tmp: Path):
        return write_csv(edit(frame), tmp / "extract.csv"), None

    return build


def _raw_bytes(edit: Callable[[bytes], bytes]) -> Callable:
    def build(frame: pl.DataFrame, tmp: Path):
        path = tmp / "extract.csv"
        path.write_bytes(edit(csv_text(frame).encode("utf-8")))
        return path, None

    return build


def _byte_in_row(index: int, byte: bytes) -> Callable[[bytes], bytes]:
    def edit(data: bytes) -> bytes:
        lines = data.split(b"\n")
        first, rest = lines[index + 1].split(b",", 1)
        lines[index + 1] = first + byte + b"," + rest
        return b"\n".join(lines)

    return edit


def _cp1252_with(byte: bytes, index: int) -> Callable:
    """A cp1252 file (as the mapping declares) with a byte cp1252 does not define, in seed row ``index``."""

    def build(frame: pl.DataFrame, tmp: Path):
        path = tmp / "extract.csv"
        path.write_bytes(_byte_in_row(index, byte)(csv_text(frame).encode("cp1252")))
        (tmp / "mapping.toml").write_text('[format]\nencoding = "cp1252"\n', encoding="utf-8")
        return path, load_mapping(tmp / "mapping.toml")

    return build


def _xlsx(sheets: dict[str, bool], mapping: str | None = None) -> Callable:
    def build(frame: pl.DataFrame, tmp: Path):
        wb = openpyxl.Workbook()
        wb.remove(wb.active)
        for name in sheets:
            ws = wb.create_sheet(name)
            ws.append(frame.columns)
            for row in frame.iter_rows():
                ws.append(list(row))
        path = tmp / "extract.xlsx"
        wb.save(path)
        m = None
        if mapping is not None:
            (tmp / "mapping.toml").write_text(mapping, encoding="utf-8")
            m = load_mapping(tmp / "mapping.toml")
        return path, m

    return build


def _corrupt_xlsx(frame: pl.DataFrame, tmp: Path):
    path = tmp / "extract.xlsx"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("hello.txt", "not a workbook")
    path.write_bytes(buf.getvalue())
    return path, None


# index of the first invoiced row in the seed (row 2): the seed's first row is invoiced
I0 = 0
LONG = "M" * 101

FILE_CASES: list[tuple[str, Callable, list[tuple[str, int | None]]]] = [
    ("empty file", _bytes(b""), [("file.empty", None)]),
    ("only a BOM and blank lines", _bytes(codecs.BOM_UTF8 + b"\r\n \r\n"), [("file.empty", None)]),
    ("header only", _text(lambda t: t.split("\n")[0] + "\n"), [("file.no-rows", None)]),
    ("old xls workbook", _bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100), [("file.format", None)]),
    ("zip that is no workbook", _corrupt_xlsx, [("file.unreadable", None)]),
    (
        "sheet named in the mapping is missing",
        _xlsx({"Data": True}, '[format]\nsheet = "Milestones"\n'),
        [("file.sheet", None)],
    ),
    ("invalid UTF-8 byte", _raw_bytes(_byte_in_row(5, b"\xff")), [("file.encoding", row_of(5))]),
    (
        "Latin-1 byte in a UTF-8 file",
        _raw_bytes(_byte_in_row(9, "é".encode("latin-1"))),
        [("file.encoding", row_of(9))],
    ),
    (
        "byte undefined in cp1252",
        _cp1252_with(b"\x81", 1),
        [("file.encoding", row_of(1))],
    ),
    ("UTF-16 without a BOM", _text(lambda t: t, encoding="utf-16-le"), [("file.encoding", None)]),
    (
        "ragged row: a field too many",
        _lines(_replace_line(3, lambda s: s + ",extra")),
        [("file.ragged-row", row_of(3))],
    ),
    (
        "ragged row: a field short",
        _lines(_replace_line(7, lambda s: s.rsplit(",", 1)[0])),
        [("file.ragged-row", row_of(7))],
    ),
    (
        "text after a closing quote",
        _lines(_replace_line(4, lambda s: '"LEG"X' + s[s.index(",") :])),
        [("file.quote", row_of(4))],
    ),
    ("column missing", _frame(lambda f: f.drop("tax_amount")), [("column.missing", 1)]),
    (
        "column twice",
        _text(lambda t: "\n".join(line + "," + line.split(",")[0] for line in t.split("\n") if line) + "\n"),
        [("column.duplicate", 1)],
    ),
    ("unknown column", _frame(lambda f: f.with_columns(pl.lit("x").alias("remarks"))), [("column.unknown", 1)]),
    ("legacy id empty", _cell("legacy_id", ""), [("legacy_id.empty", row_of(I0))]),
    (
        "legacy id twice",
        _frame(lambda f: set_cell(f, 10, "legacy_id", f["legacy_id"][3])),
        [("legacy_id.duplicate", row_of(3)), ("legacy_id.duplicate", row_of(10))],
    ),
    ("status unknown", _cell("legacy_status", "Paid"), [("legacy_status.unknown", row_of(I0))]),
    (
        "invoiced without invoice number",
        _cell("legacy_invoice_number", ""),
        [("legacy_invoice_number.missing", row_of(I0))],
    ),
    ("legal entity empty", _cell("legal_entity", " "), [("legal_entity.empty", row_of(I0))]),
    ("contract line not a number", _cell("contract_line", "1.5"), [("contract_line.not-a-number", row_of(I0))]),
    ("milestone name empty", _cell("milestone_name", ""), [("milestone_name.empty", row_of(I0))]),
    ("milestone name over 100", _cell("milestone_name", LONG), [("milestone_name.too-long", row_of(I0))]),
    ("date unparseable", _cell("milestone_date", "31/12/2025"), [("milestone_date.unparseable", row_of(I0))]),
    ("date impossible", _cell("milestone_date", "2026-02-30"), [("milestone_date.impossible", row_of(I0))]),
    ("date after cutover", _cell("milestone_date", "2026-12-02"), [("milestone_date.after-cutover", row_of(I0))]),
    ("currency not a code", _cell("currency", "EURO"), [("currency.invalid", row_of(I0))]),
    ("amount empty", _cell("amount", ""), [("amount.empty", row_of(I0))]),
    (
        "amount with thousands separator, none declared",
        _cell("amount", "12,500.00"),
        [("amount.not-a-number", row_of(I0))],
    ),
    ("amount in exponent form", _cell("amount", "1.25e4"), [("amount.not-a-number", row_of(I0))]),
    ("amount zero", _cell("amount", "0.00"), [("amount.zero", row_of(I0))]),
    ("amount negative", _cell("amount", "-100.00"), [("amount.negative", row_of(I0))]),
    ("amount more decimals than EUR", _cell("amount", "100.001"), [("amount.scale", row_of(I0))]),
    ("amount too large for Dataverse", _cell("amount", "1000000000000000.00"), [("amount.too-large", row_of(I0))]),
    ("tax empty", _cell("tax_amount", ""), [("tax_amount.empty", row_of(I0))]),
    ("tax not a number", _cell("tax_amount", "n/a"), [("tax_amount.not-a-number", row_of(I0))]),
    ("tax negative", _cell("tax_amount", "-1.00"), [("tax_amount.negative", row_of(I0))]),
    ("tax more decimals than EUR", _cell("tax_amount", "1.005"), [("tax_amount.scale", row_of(I0))]),
]


def test_the_corpus_is_large_and_names_only_known_rules():
    assert len(FILE_CASES) + len(ENV_CASES) >= 30
    for _, _, expected in FILE_CASES + [(n, b, e) for n, b, e, *_ in ENV_CASES if not isinstance(e, str)]:
        assert all(rule in RULES for rule, _ in expected)


@pytest.mark.parametrize(("name", "build", "expected"), FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_file_rules(name, build, expected, world_db, tmp_path):
    path, mapping = build(seed_frame(world_db), tmp_path)
    validated = check_file(path, mapping)
    assert sorted(found(validated), key=str) == sorted(expected, key=str), [p for p in validated.problems][:5]
    for problem in validated.problems:
        assert problem.file == path.name and problem.message
    assert not validated.ok


def test_a_blank_row_is_skipped_and_still_counts_in_the_row_numbers(world_db, tmp_path):
    frame = seed_frame(world_db)
    lines = csv_text(frame).split("\n")
    lines.insert(3, ",,,,,,,,,,,")  # a spreadsheet's empty row, between seed rows 1 and 2
    bad = invoiced_index(frame, 5)
    lines[bad + 2] = lines[bad + 2].replace("Invoiced", "Paid")
    path = tmp_path / "blank.csv"
    path.write_text("\n".join(lines), encoding="utf-8")
    validated = check_file(path)
    expected_row = row_of(bad) + (1 if bad >= 2 else 0)
    assert found(validated) == [("legacy_status.unknown", expected_row)]
    assert validated.rows_read == frame.height


def test_the_mapping_can_ignore_a_column_explicitly(world_db, tmp_path):
    frame = seed_frame(world_db).with_columns(pl.lit("note").alias("Bemerkung"))
    path = write_csv(frame, tmp_path / "extract.csv")
    (tmp_path / "m.toml").write_text('[ignore]\ncolumns = ["Bemerkung"]\n', encoding="utf-8")
    assert found(check_file(path, load_mapping(tmp_path / "m.toml"))) == []


def test_several_problems_are_all_reported_at_once(world_db, tmp_path):
    frame = seed_frame(world_db)
    a, b = invoiced_index(frame, 0), invoiced_index(frame, 1)
    frame = set_cell(set_cell(frame, a, "amount", "abc"), b, "milestone_date", "2026-13-01")
    frame = set_cell(frame, b, "currency", "XX")
    validated = check_file(write_csv(frame, tmp_path / "x.csv"))
    assert found(validated) == [
        ("amount.not-a-number", row_of(a)),
        ("currency.invalid", row_of(b)),
        ("milestone_date.impossible", row_of(b)),
    ]
    assert validated.rows.height == 148 and validated.summary().errors_by_rule == {
        "amount.not-a-number": 1,
        "currency.invalid": 1,
        "milestone_date.impossible": 1,
    }


def test_a_not_invoiced_row_is_excluded_not_checked(world_db, tmp_path):
    frame = seed_frame(world_db)
    index = frame.with_row_index().filter(pl.col("legacy_status") == "NotInvoiced")["index"][0]
    frame = set_cell(frame, index, "amount", "garbage")
    validated = check_file(write_csv(frame, tmp_path / "x.csv"))
    assert validated.problems == [] and validated.excluded.height == 50


# --- cross-checks against the seeded world --------------------------------------------------------


def _row(frame: pl.DataFrame, index: int) -> dict:
    return frame.row(index, named=True)


def _other_legal_entity(frame, tmp, sim):
    row = _row(frame, I0)
    other = "USMF" if row["legal_entity"] == "DEMF" else "DEMF"
    return write_csv(set_cell(frame, I0, "legal_entity", other), tmp / "x.csv")


def _tm_line(frame, tmp, sim):
    row = _row(frame, I0)
    number = sim.conn.execute(
        "SELECT d.lineitemnumber FROM dv_salesorderdetails d JOIN dv_salesorders o ON o.salesorderid = d._salesorderid_value "
        "WHERE o.ordernumber = ? AND d.msdyn_billingmethod = 192350000 ORDER BY 1 LIMIT 1",
        (row["contract_number"],),
    ).fetchone()[0]
    return write_csv(set_cell(frame, I0, "contract_line", str(number)), tmp / "x.csv")


def _other_customer(frame, tmp, sim):
    row = _row(frame, I0)
    other = sim.conn.execute(
        "SELECT accountnumber FROM dv_accounts WHERE accountnumber <> ? ORDER BY 1 LIMIT 1", (row["customer_account"],)
    ).fetchone()[0]
    return write_csv(set_cell(frame, I0, "customer_account", other), tmp / "x.csv")


def _other_currency(frame, tmp, sim):
    row = _row(frame, I0)
    return write_csv(set_cell(frame, I0, "currency", "GBP" if row["currency"] != "GBP" else "USD"), tmp / "x.csv")


def _rows_on_line(frame: pl.DataFrame, index: int) -> list[int]:
    row = _row(frame, index)
    same = frame.with_row_index().filter(
        (pl.col("contract_number") == row["contract_number"])
        & (pl.col("contract_line") == row["contract_line"])
        & (pl.col("legacy_status") == "Invoiced")
    )
    return [row_of(i) for i in same["index"]]


def _no_dimensions(frame, tmp, sim):
    row = _row(frame, I0)
    sim.conn.execute(
        "UPDATE fno_ProjectContractLines SET DefaultDimensionDisplayValue = '' WHERE ContractLineGuid = ?",
        (line_id_of(sim.conn, row["contract_number"], int(row["contract_line"])),),
    )
    sim.conn.commit()
    return write_csv(frame, tmp / "x.csv")


def _line_over_value(frame, tmp, sim):
    row = _row(frame, I0)
    line_id = line_id_of(sim.conn, row["contract_number"], int(row["contract_line"]))
    invoiced = [Decimal(_row(frame, r - 2)["amount"]) for r in _rows_on_line(frame, I0)]
    value = sum(invoiced) - Decimal("0.01")
    sim.conn.execute(
        "UPDATE dv_salesorderdetails SET extendedamount = ? WHERE salesorderdetailid = ?",
        (int(value * 10_000), line_id),
    )
    sim.conn.commit()
    return write_csv(frame, tmp / "x.csv")


def _lower_case_contract(frame, tmp, sim):
    return write_csv(set_cell(frame, I0, "contract_number", _row(frame, I0)["contract_number"].lower()), tmp / "x.csv")


ENV_CASES = [
    ("legal entity unknown", _cell("legal_entity", "XXMF"), [("legal_entity.unknown", row_of(I0))], None),
    ("contract unknown", _cell("contract_number", "PRJC-999999"), [("contract_number.unknown", row_of(I0))], None),
    (
        "contract in another legal entity",
        None,
        [("contract_number.other-legal-entity", row_of(I0))],
        _other_legal_entity,
    ),
    ("contract line unknown", _cell("contract_line", "99"), [("contract_line.unknown", row_of(I0))], None),
    ("contract line not fixed price", None, [("contract_line.not-fixed-price", row_of(I0))], _tm_line),
    ("customer unknown", _cell("customer_account", "ZZ-999"), [("customer_account.unknown", row_of(I0))], None),
    ("customer not the contract's", None, [("customer_account.not-contract-customer", row_of(I0))], _other_customer),
    ("currency unknown", _cell("currency", "CHF"), [("currency.unknown", row_of(I0))], None),
    ("currency not the contract's", None, [("currency.not-contract-currency", row_of(I0))], _other_currency),
    ("contract number in lower case is the same contract", None, [], _lower_case_contract),
    ("line dimensions missing in F&O", None, "dimensions", _no_dimensions),
    ("line value exceeded", None, "over-value", _line_over_value),
]


@pytest.mark.parametrize(("name", "build", "expected", "setup"), ENV_CASES, ids=[c[0] for c in ENV_CASES])
async def test_cross_checks(name, build, expected, setup, sim, world_db, tmp_path):
    frame = seed_frame(world_db)
    log = await sim.log()
    since = log[-1]["seq"] if log else 0
    path = setup(frame, tmp_path, sim) if setup else build(frame, tmp_path)[0]
    if expected == "dimensions":
        expected = [("contract_line.dimensions-missing", r) for r in _rows_on_line(frame, I0)]
    elif expected == "over-value":
        expected = [("contract_line.over-value", r) for r in _rows_on_line(frame, I0)]
    validated = await check(sim, path)
    assert sorted(found(validated), key=str) == sorted(expected, key=str), validated.problems[:5]
    assert await writes(sim, since) == []
    # the file rules alone see nothing wrong in these files
    assert check_file(path).problems == []


async def test_a_cross_checked_problem_names_what_to_fix(sim, world_db, tmp_path):
    frame = seed_frame(world_db)
    path = _other_customer(frame, tmp_path, sim)
    validated = await check(sim, path)
    (problem,) = validated.problems
    assert problem.column == "customer_account" and problem.value == read_extract(path).frame["customer_account"][I0]
    assert "customer is " + _row(frame, I0)["customer_account"] in problem.message


def test_a_problem_says_where_it_is_in_words(world_db, tmp_path):
    # what `cutover verify` quotes when the extract cannot be the truth: never "row None"
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    (whole,) = check_file(*_bytes(b"\x00\x01 not a csv \xff\xfe\n")(seed_frame(world_db), tmp_path / "a")).problems
    assert whole.place == "the whole file"
    (cell,) = check_file(*_cell("amount", "")(seed_frame(world_db), tmp_path / "b")).problems
    assert cell.place == f"row {row_of(I0)}, amount"
