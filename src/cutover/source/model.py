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

    @property
    def place(self) -> str:
        """Where in the extract, in words: ``row 12, amount``, ``row 12`` or ``the whole file``."""
        if self.row is None:
            return "the whole file" if self.column is None else f"column {self.column}"
        return f"row {self.row}" if self.column is None else f"row {self.row}, {self.column}"


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
    # Data rows the file holds (blank rows not counted), including rows that could not be put
    # in ``frame`` (ragged rows, broken quotes: each has its problem).
    records: int = 0

    @property
    def missing_columns(self) -> frozenset[str]:
        """Contract columns the file lacks (``column.missing``): all null in ``frame``."""
        return frozenset(p.column for p in self.problems if p.rule == "column.missing" and p.column)


@dataclass
class ValidatedExtract:
    """What validation produced. Loadable only when ``problems`` is empty."""

    rows: pl.DataFrame  # VALID_SCHEMA: the invoiced rows to migrate
    excluded: pl.DataFrame  # RAW_SCHEMA: rows whose legacy status is "not invoiced"
    problems: list[Problem]
    rows_read: int
    cutover_date: str  # ISO date the run uses (rows dated after it are refused)
    # Checks that could not be made (e.g. F&O refused the dimensions read): said, never skipped silently.
    notes: list[str] = field(default_factory=list)
    # False when only the file was checked (``validate_file``): the rows then carry no
    # Dataverse ids and must not be loaded, whatever ``ok`` says.
    environment_checked: bool = True

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def loadable(self) -> bool:
        """No problem, and checked against the environment: the load may go ahead."""
        return self.ok and self.environment_checked

    def summary(self) -> Summary:
        return Summary(
            rows_read=self.rows_read,
            to_migrate=self.rows.height,
            excluded=self.excluded.height,
            errors=len(self.problems),
            errors_by_rule=self.problems_by_rule(),
            cutover_date=self.cutover_date,
            environment_checked=self.environment_checked,
            notes=list(self.notes),
        )

    def problems_by_rule(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for p in self.problems:
            counts[p.rule] = counts.get(p.rule, 0) + 1
        return dict(sorted(counts.items()))


@dataclass(frozen=True)
class Summary:
    """The one-screen summary of a validation, as data (the CLI and the TUI print it)."""

    rows_read: int
    to_migrate: int  # invoiced rows without a problem
    excluded: int  # rows left out on purpose: not invoiced
    errors: int
    errors_by_rule: dict[str, int]
    cutover_date: str
    environment_checked: bool
    notes: list[str]

    def lines(self) -> list[str]:
        """The summary as lines of text, e.g. for ``click.echo``."""
        out = [
            f"rows read             {self.rows_read:>8,}",
            f"to migrate (invoiced) {self.to_migrate:>8,}",
            f"excluded (not inv.)   {self.excluded:>8,}",
            f"errors                {self.errors:>8,}",
        ]
        out += [f"  {rule:<34} {count:>6,}" for rule, count in self.errors_by_rule.items()]
        out.append(f"cutover date          {self.cutover_date}")
        if not self.environment_checked:
            out.append("environment           not checked (file rules only)")
        out += [f"note: {note}" for note in self.notes]
        return out
