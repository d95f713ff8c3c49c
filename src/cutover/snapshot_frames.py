"""Pages of F&O rows to exact polars frames to Parquet part files: the snapshot's data path.

- Each page becomes a frame column by column with an explicit schema (:data:`AR_SCHEMA`,
  :data:`GL_LINE_SCHEMA`, :data:`GL_ENTRY_SCHEMA`): money is ``Decimal(38, 16)`` whether F&O
  wrote ``5000`` (an int after :func:`cutover.odata.loads`) or ``1234.56`` (a Decimal); values
  pass to polars as decimal text, never through a float. F&O stores reals as NUMERIC(32,16),
  so 16 decimals and 22 integer digits hold every amount it can send, and sums of millions of
  them; a value beyond that (or a float, or text) is refused — polars would silently round the
  one and turn the other into null.
- A value of another column that does not have its type raises :class:`SnapshotReadError`.
- :class:`Parts` collects frames and writes a Parquet part file every ``batch_rows`` rows, off
  the event loop, so a snapshot holds at most one batch per entity in memory.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import polars as pl

from . import money
from .errors import EnvironmentProblem

__all__ = [
    "AR_COLUMNS",
    "AR_SCHEMA",
    "GL_COLUMNS",
    "GL_ENTRY_SCHEMA",
    "GL_LINE_SCHEMA",
    "ROW_GROUP_ROWS",
    "SNAPSHOT_SCALE",
    "Parts",
    "SnapshotReadError",
    "page_frame",
]


class SnapshotReadError(EnvironmentProblem):
    """F&O answered a row whose value does not have the type the entity promises."""


# F&O stores reals as NUMERIC(32,16): 16 decimals and 16 integer digits. Decimal(38, 16) holds
# every such value exactly, and sums of millions of them.
SNAPSHOT_SCALE = 16
ROW_GROUP_ROWS = 25_000  # Parquet row groups: small units keep the final concatenation's memory low

_S, _I = pl.Utf8, pl.Int64
AR_SCHEMA = money.polars_schema(
    {
        "dataAreaId": _S,
        "RecId": _I,
        "AccountNum": _S,
        "Voucher": _S,
        "TransDate": _S,
        "AmountCur": _S,
        "AmountMst": _S,
        "CurrencyCode": _S,
        "Invoice": _S,
        "TransType": _S,
    },
    ("AmountCur", "AmountMst"),
    scale=SNAPSHOT_SCALE,
)
GL_LINE_SCHEMA = money.polars_schema(
    {
        "SourceKey": _I,
        "GeneralJournalEntry": _I,
        "MainAccount": _S,
        "LedgerAccount": _S,
        "AccountingCurrencyAmount": _S,
        "TransactionCurrencyAmount": _S,
        "TransactionCurrencyCode": _S,
        "Text": _S,
    },
    ("AccountingCurrencyAmount", "TransactionCurrencyAmount"),
    scale=SNAPSHOT_SCALE,
)
GL_ENTRY_SCHEMA = pl.Schema(
    {
        "SourceKey": _I,
        "AccountingDate": _S,
        "SubledgerVoucher": _S,
        "SubledgerVoucherDataAreaId": _S,
        "JournalNumber": _S,
    }
)
AR_COLUMNS = ("legal_entity", *AR_SCHEMA.names())
GL_COLUMNS = (
    "legal_entity",
    "SourceKey",
    "GeneralJournalEntry",
    "AccountingDate",
    "SubledgerVoucher",
    "JournalNumber",
    "MainAccount",
    "LedgerAccount",
    "AccountingCurrencyAmount",
    "TransactionCurrencyAmount",
    "TransactionCurrencyCode",
    "Text",
)


# --- pages to frames -------------------------------------------------------------------------------


def _unkept(entity: str, name: str, index: int, value: object) -> money.MoneyError:
    return money.MoneyError(
        f"{entity} row {index} of a page, {name}: {value!r} cannot be kept exactly "
        f"(a snapshot keeps exact decimals of at most {SNAPSHOT_SCALE} decimals and "
        f"{money.MONEY_PRECISION - SNAPSHOT_SCALE} integer digits; never a float)",
        where=entity,
    )


_LOST_DIGIT = rf"\.\d{{{SNAPSHOT_SCALE}}}\d*[1-9]"  # a non-zero digit beyond the scale


_MONEY_TYPES = {Decimal, int, type(None)}  # what odata.loads gives for a number (bool is not int here)


def _money_series(rows: list[dict], name: str, dtype: pl.Decimal, entity: str) -> pl.Series:
    """A money column, exactly: values go to polars as decimal text (never through a float);
    text with a non-zero digit beyond the scale, or too many integer digits, is refused —
    polars would round the one and turn the other into null."""
    values = [row.get(name) for row in rows]
    kinds = set(map(type, values))
    if not kinds <= _MONEY_TYPES:  # a float, text, a bool: not an amount F&O sends
        index = next(i for i, v in enumerate(values) if type(v) not in _MONEY_TYPES)
        raise _unkept(entity, name, index, values[index])
    texts = [None if v is None else str(v) for v in values] if type(None) in kinds else list(map(str, values))
    series = pl.Series(name, texts, dtype=pl.Utf8)
    scientific = series.str.contains("E", literal=True)
    if scientific.any():  # str(Decimal) writes 1E+3 and 1E-7: plain notation for polars
        for index in scientific.arg_true().to_list():
            value = values[index]
            texts[index] = format(value, "f") if value.is_finite() else "not finite"
        series = pl.Series(name, texts, dtype=pl.Utf8)
    lost = series.str.contains(_LOST_DIGIT)
    if lost.any():
        index = int(lost.arg_max())
        raise _unkept(entity, name, index, values[index])
    try:
        return series.cast(dtype, strict=True)
    except pl.exceptions.PolarsError:
        failed = series.cast(dtype, strict=False).is_null() & series.is_not_null()
        index = int(failed.arg_max())
        raise _unkept(entity, name, index, values[index]) from None


def page_frame(rows: list[dict], schema: pl.Schema, entity: str = "page") -> pl.DataFrame:
    """One page of OData rows (parsed by :func:`cutover.odata.loads`) as a frame with `schema`,
    column by column: money columns Decimal whether a row says ``5000`` or ``1234.56``
    (:func:`_money_series`); other keys of the rows ignored, missing ones null."""
    columns = []
    for name, dtype in schema.items():
        if isinstance(dtype, pl.Decimal):
            columns.append(_money_series(rows, name, dtype, entity))
            continue
        try:
            columns.append(pl.Series(name, [row.get(name) for row in rows], dtype=dtype, strict=True))
        except (TypeError, pl.exceptions.PolarsError):
            raise SnapshotReadError(
                f"{entity}.{name} holds a value that is not {dtype} (first row: {rows[0].get(name)!r})",
                where=entity,
                fix="check that the profile's F&O URL is the environment's OData root (…/data/)",
            ) from None
    return pl.DataFrame(columns)


class Parts:
    """Frames in, Parquet part files out, every `batch_rows` rows (written off the event loop)."""

    def __init__(self, directory: Path, schema: pl.Schema, batch_rows: int):
        self.directory = directory
        self.schema = schema
        self.batch_rows = batch_rows
        self.frames: list[pl.DataFrame] = []
        self.pending = 0
        self.rows = 0
        self.paths: list[Path] = []
        self.directory.mkdir(parents=True, exist_ok=True)

    async def add(self, frame: pl.DataFrame) -> None:
        if frame.height:
            self.frames.append(frame)
            self.pending += frame.height
            self.rows += frame.height
        if self.pending >= self.batch_rows:
            await self.flush()

    async def flush(self) -> None:
        if not self.frames:
            return
        batch = pl.concat(self.frames, how="vertical")
        self.frames, self.pending = [], 0
        path = self.directory / f"part-{len(self.paths):05d}.parquet"
        await asyncio.to_thread(batch.write_parquet, path, row_group_size=ROW_GROUP_ROWS)
        self.paths.append(path)

    def files(self) -> list[Path]:
        """The part files written (one empty file with the schema if no row came)."""
        if not self.paths:
            path = self.directory / "part-empty.parquet"
            pl.DataFrame(schema=self.schema).write_parquet(path)
            self.paths.append(path)
        return list(self.paths)
