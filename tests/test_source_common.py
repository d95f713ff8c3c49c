"""Helpers for the tests of cutover.source (no tests here): the seed's extract as a frame of
text, writers for every dialect, and read-only clients over the in-process simulator."""

from __future__ import annotations

import io
import sqlite3
from decimal import Decimal
from pathlib import Path

import polars as pl

from cutover.dataverse import DataverseClient
from cutover.domain import deterministic_id
from cutover.fno import FnoClient
from cutover.source import Reference, fetch_reference, read_extract, validate, validate_file
from cutover.source.model import COLUMNS
from cutover.tokens import StaticToken
from cutover.transport import Transport
from tests.conftest import DV, FNO, READER
from tests.dataverse_harness import HarnessToken, no_sleep

CUTOVER = "2026-12-01"  # the seeded world's go-live date (seed.WORLD_DATE)
WRITES = ("POST", "PATCH", "PUT", "DELETE")


def seed_frame(world_db: Path) -> pl.DataFrame:
    """The seed's legacy extract, every column as text (empty cells as "")."""
    return pl.read_csv(world_db.with_suffix(".csv"), infer_schema=False).with_columns(pl.all().fill_null(""))


def csv_text(frame: pl.DataFrame, separator: str = ",") -> str:
    return frame.write_csv(separator=separator, quote_style="necessary", line_terminator="\n")


def write_csv(frame: pl.DataFrame, path: Path, *, separator: str = ",", encoding: str = "utf-8") -> Path:
    path.write_bytes(csv_text(frame, separator).encode(encoding))
    return path


def invoiced_index(frame: pl.DataFrame, n: int = 0) -> int:
    """The 0-based index of the n-th invoiced row (its spreadsheet row is index + 2)."""
    return frame.with_row_index().filter(pl.col("legacy_status") == "Invoiced")["index"][n]


def set_cell(frame: pl.DataFrame, index: int, column: str, value: str) -> pl.DataFrame:
    return frame.with_columns(
        pl.when(pl.int_range(pl.len()) == index).then(pl.lit(value)).otherwise(pl.col(column)).alias(column)
    )


def row_of(index: int) -> int:
    return index + 2


def dv_client(sim) -> DataverseClient:
    t = Transport(
        f"{sim.client.base_url}{DV}",
        HarnessToken(sim, READER),
        environment="rehearsal",
        read_only=True,
        client=sim.client,
        sleep=no_sleep,
    )
    return DataverseClient([t])


def fno_client(sim, token: str | None = None) -> FnoClient:
    source = StaticToken(token) if token is not None else HarnessToken(sim, READER)
    t = Transport(
        f"{sim.client.base_url}{FNO}",
        source,
        environment="rehearsal",
        read_only=True,
        client=sim.client,
        sleep=no_sleep,
    )
    return FnoClient(t)


async def reference_for(sim, raw) -> Reference:
    return await fetch_reference(dv_client(sim), fno_client(sim), raw)


async def check(sim, path: Path, mapping=None, cutover_date: str = CUTOVER):
    raw = read_extract(path, mapping)
    ref = await reference_for(sim, raw)
    return validate(raw, ref, mapping=mapping, cutover_date=cutover_date)


def check_file(path: Path, mapping=None, cutover_date: str = CUTOVER):
    return validate_file(read_extract(path, mapping), mapping, cutover_date)


def found(validated) -> list[tuple[str, int | None]]:
    """(rule, row) of every problem."""
    return [(p.rule, p.row) for p in validated.problems]


def comparable(rows: pl.DataFrame) -> pl.DataFrame:
    """Validated rows without the file name (dialects differ in it)."""
    return rows.drop("_file")


async def writes(sim, since: int = 0) -> list[dict]:
    return [e for e in await sim.log(since) if e["method"] in WRITES and not e["path"].startswith("/_sim")]


def add_milestone(
    conn: sqlite3.Connection,
    legacy_id: str,
    line_id: str,
    amount: Decimal,
    *,
    status: int,
    name: str = "x",
    date: str = "2026-01-01",
    tax: Decimal = Decimal(0),
) -> str:
    """A milestone already in Dataverse (written straight into the simulator's table)."""
    key = deterministic_id(legacy_id)
    conn.execute(
        'INSERT INTO "dv_msdyn_contractlinescheduleofvalues" (msdyn_contractlinescheduleofvalueid, msdyn_name, msdyn_amount, msdyn_tax, '
        "msdyn_invoicedate, msdyn_invoicestatus, msdyn_transactionclassification, _msdyn_contractlineid_value) VALUES (?,?,?,?,?,?,?,?)",
        (key, name, int(amount * 10_000), int(tax * 10_000), date, status, 192350003, line_id),
    )
    conn.commit()
    return key


def line_id_of(conn: sqlite3.Connection, contract_number: str, line: int) -> str:
    return conn.execute(
        "SELECT d.salesorderdetailid FROM dv_salesorderdetails d JOIN dv_salesorders o ON o.salesorderid = d._salesorderid_value "
        "WHERE o.ordernumber = ? AND d.lineitemnumber = ?",
        (contract_number, line),
    ).fetchone()[0]


__all__ = [
    "COLUMNS",
    "CUTOVER",
    "add_milestone",
    "check",
    "check_file",
    "comparable",
    "csv_text",
    "dv_client",
    "fno_client",
    "found",
    "invoiced_index",
    "io",
    "line_id_of",
    "reference_for",
    "row_of",
    "seed_frame",
    "set_cell",
    "write_csv",
    "writes",
]
