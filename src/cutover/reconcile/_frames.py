"""Plumbing shared by the reconciliation modules: the money type, ids as 128-bit keys, text.

- Money in reconciliation is ``Decimal(38, 16)`` (:data:`MONEY`): F&O stores reals as
  NUMERIC(32,16) and Dataverse and the extract hold at most 4 decimals, so every input widens
  to it exactly and nothing is ever rounded (polars rounds silently when a Decimal is cast to a
  smaller scale, so this module never narrows one). A float column is refused.
- Milestone ids are joined as one ``UInt128`` (two ``UInt64`` columns where polars has no
  ``UInt128``), parsed once from the GUID text: case, braces and hyphens do not matter; text
  that is not exactly 32 hex digits gives a null key, which joins nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import polars as pl

from ..money import MONEY_PRECISION, MoneyError

SCALE = 16
MONEY = pl.Decimal(MONEY_PRECISION, SCALE)

Frame = pl.DataFrame | pl.LazyFrame

# One UInt128 key column where polars has the type; two UInt64 halves otherwise.
WIDE_KEY = hasattr(pl, "UInt128")


def lazy(frame: Frame) -> pl.LazyFrame:
    return frame.lazy() if isinstance(frame, pl.DataFrame) else frame


def key_columns(wide: bool | None = None) -> list[str]:
    """The names of the key columns :func:`with_key` adds."""
    return ["_key"] if (WIDE_KEY if wide is None else wide) else ["_key_hi", "_key_lo"]


def with_key(frame: pl.LazyFrame, column: str = "milestone_id", wide: bool | None = None) -> pl.LazyFrame:
    """``frame`` with the 128-bit key of its GUID column (null where the text is not a GUID)."""
    hex32 = pl.col(column).cast(pl.String).str.strip_chars("{} ").str.replace_all("-", "", literal=True)
    # 32 characters that parse as base 16 are 32 hex digits, but for a leading sign (which
    # str.to_integer takes): cheaper than a regular expression over every id.
    valid = (hex32.str.len_bytes() == 32) & ~hex32.str.starts_with("+")
    if WIDE_KEY if wide is None else wide:
        parsed = [hex32.str.to_integer(base=16, dtype=pl.UInt128, strict=False).alias("_key")]
    else:
        parsed = [
            hex32.str.slice(0, 16).str.to_integer(base=16, dtype=pl.UInt64, strict=False).alias("_key_hi"),
            hex32.str.slice(16, 16).str.to_integer(base=16, dtype=pl.UInt64, strict=False).alias("_key_lo"),
        ]
    return frame.with_columns(pl.when(valid).then(e).otherwise(None).alias(e.meta.output_name()) for e in parsed)


def mask(height: int, rows: pl.Series) -> pl.Series:
    """``height`` booleans, true at ``rows``."""
    return pl.repeat(False, height, dtype=pl.Boolean, eager=True).scatter(rows, True)


def money_column(frame: pl.LazyFrame, name: str, schema: pl.Schema, where: str) -> pl.Expr:
    """``name`` as :data:`MONEY`, exactly: a Decimal widened, decimal text parsed (a value with
    more than 16 decimals refused), an integer as is; a float is a :class:`MoneyError`."""
    dtype = schema[name]
    col = pl.col(name)
    if isinstance(dtype, pl.Decimal):
        if dtype.scale is not None and dtype.scale > SCALE:
            raise MoneyError(f"{where}.{name} is {dtype}: more than {SCALE} decimals cannot be reconciled exactly")
        return col.cast(MONEY)
    if dtype.is_integer() or dtype == pl.Null:
        return col.cast(MONEY)
    if dtype == pl.String:
        return col.str.strip_chars().cast(MONEY, strict=True)
    raise MoneyError(f"{where}.{name} is {dtype}; money must be Decimal (or exact decimal text), never a float")


def rows_frame(rows: Iterable[Mapping[str, Any]], schema: Mapping[str, pl.DataType], where: str) -> pl.DataFrame:
    """API rows (dicts) as a frame of ``schema``, every column given as text or int: money and
    dates stay text here (converted by the caller, exactly); a float anywhere is refused."""
    rows = list(rows)
    columns = {}
    for name, dtype in schema.items():
        values = []
        for index, row in enumerate(rows):
            value = row.get(name)
            if isinstance(value, float):
                raise MoneyError(f"{where} row {index}, {name}: {value!r} is a binary float; money is Decimal")
            if isinstance(value, Decimal):
                value = format(value, "f")
            elif dtype == pl.String and value is not None and not isinstance(value, str):
                value = str(value)
            values.append(value)
        columns[name] = pl.Series(name, values, dtype=dtype, strict=False)
    return pl.DataFrame(columns, schema=dict(schema))


def money_text(expr: pl.Expr) -> pl.Expr:
    """A Decimal as text without the trailing zeros of the wide scale (at least two decimals):
    ``100.0000000000000000`` → ``100.00``, ``1.2345600000000000`` → ``1.23456``."""
    return expr.cast(pl.String).str.replace(r"^(-?\d+\.\d\d\d*?)0+$", "${1}")


def signed_money_text(expr: pl.Expr) -> pl.Expr:
    text = money_text(expr)
    return pl.when(expr > 0).then(pl.lit("+") + text).otherwise(text)


def decimal_text(value: Decimal) -> str:
    """A tolerance as text in the same style as :func:`money_text`."""
    text = format(value, "f")
    if "." not in text:
        text += ".00"
    whole, frac = text.split(".")
    frac = frac.rstrip("0")
    return f"{whole}.{frac.ljust(2, '0')}"
