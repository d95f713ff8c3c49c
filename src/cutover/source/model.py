"""The contract between reading, validating and loading the legacy extract.

Reading turns any dialect into a **raw table**: every contract column as text (``pl.String``,
null where the cell is empty), plus ``_file`` (the file's name) and ``_row`` (the row number
as a spreadsheet user counts it: the header is row 1, the first data row is row 2). Nothing is
parsed yet: numbers, dates and status values stay exactly as written (XLSX and Parquet cells
that are typed are rendered as text first: dates as ISO ``YYYY-MM-DD``, doubles by
``repr`` — the shortest text that round-trips — decimals exactly).

Validation turns the raw table into **valid rows** (:data:`VALID_SCHEMA`: typed, with the
Dataverse ids each row resolves to), **excluded rows** (not invoiced: left out on purpose) and
**problems** (:class:`Problem`, each with a stable rule id). Any problem means nothing is
written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from ..money import MONEY_PRECISION

# The column contract (README, "The legacy extract"), in the order the seed writes them.
COLUMNS: tuple[str, ...] = (
    "legacy_id",
    "legal_entity",
    "contract_number",
    "contract_line",
    "customer_account",
    "milestone_name",
    "milestone_date",
    "amount",
    "tax_amount",
    "currency",
    "legacy_status",
    "legacy_invoice_number",
)
FILE = "_file"
ROW = "_row"

MAX_NAME_LENGTH = 100

# Money in validated rows: 4 decimals hold every currency scale Dataverse stores; each row's
# amount is exact at its own currency's scale (validation refuses anything else).
MONEY_SCALE = 4
MONEY = pl.Decimal(MONEY_PRECISION, MONEY_SCALE)

RAW_SCHEMA: dict[str, pl.DataType] = {**{c: pl.String() for c in COLUMNS}, FILE: pl.String(), ROW: pl.Int64()}

VALID_SCHEMA: dict[str, pl.DataType] = {
    "legacy_id": pl.String(),
    "milestone_id": pl.String(),  # cutover.domain.deterministic_id(legacy_id)
    "legal_entity": pl.String(),  # upper case, e.g. USMF
    "company_id": pl.String(),  # cdm_company GUID
    "contract_number": pl.String(),
    "contract_id": pl.String(),  # salesorder GUID
    "contract_line": pl.Int64(),  # salesorderdetail.lineitemnumber
    "line_id": pl.String(),  # salesorderdetail GUID
    "project_id": pl.String(),  # msdyn_project GUID of the line (or the contract)
    "customer_account": pl.String(),
    "customer_id": pl.String(),  # account GUID
    "milestone_name": pl.String(),
    "milestone_date": pl.Date(),
    "amount": MONEY,
    "tax_amount": MONEY,
    "currency": pl.String(),  # ISO 4217, upper case
    "currency_id": pl.String(),  # transactioncurrency GUID
    "legacy_invoice_number": pl.String(),
    FILE: pl.String(),
    ROW: pl.Int64(),
}

PROBLEM_COLUMNS: tuple[str, ...] = ("file", "row", "column", "value", "rule", "message")


@dataclass(frozen=True)
class Problem:
    """One reason the extract cannot be loaded as it is.

    ``rule`` is a stable id (``amount.scale``, ``legacy_id.duplicate``,
    ``contract_line.not-fixed-price``…); ``message`` says what to fix. ``row`` is None for a
    problem of the whole file, ``column`` None for a problem of the whole row."""

    file: str
    row: int | None
    column: str | None
    value: str | None
    rule: str
    message: str

    def as_row(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in PROBLEM_COLUMNS}


def problems_frame(problems: list[Problem]) -> pl.DataFrame:
    """Problems as a frame (the error file, the TUI's table), sorted by file, row, column."""
    schema = {
        "file": pl.String(),
        "row": pl.Int64(),
        "column": pl.String(),
        "value": pl.String(),
        "rule": pl.String(),
        "message": pl.String(),
    }
    frame = (
        pl.DataFrame([p.as_row() for p in problems], schema=schema, orient="row")
        if problems
        else pl.DataFrame(schema=schema)
    )
    return frame.sort(["file", "row", "column", "rule"], nulls_last=False)


@dataclass
class RawExtract:
    """What reading produced: the raw table and how the file was understood."""

    path: Path
    frame: pl.DataFrame  # RAW_SCHEMA
    format: str  # "csv" | "xlsx" | "parquet"
    sha256: str  # of the file's bytes
    details: dict[str, str] = field(default_factory=dict)  # e.g. encoding, delimiter, sheet
    problems: list[Problem] = field(default_factory=list)  # file-level problems found while reading


@dataclass
class ValidatedExtract:
    """What validation produced. Loadable only when ``problems`` is empty."""

    rows: pl.DataFrame  # VALID_SCHEMA: the invoiced rows to migrate
    excluded: pl.DataFrame  # RAW_SCHEMA: rows whose legacy status is "not invoiced"
    problems: list[Problem]
    rows_read: int
    cutover_date: str  # ISO date the run uses (rows dated after it are refused)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problems_by_rule(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for p in self.problems:
            counts[p.rule] = counts.get(p.rule, 0) + 1
        return dict(sorted(counts.items()))
